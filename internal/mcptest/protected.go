package mcptest

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
)

// NewProtected starts the same MCP server behind an in-process OAuth
// authorization server: requests need a bearer token issued by it. cfg
// configures the authorization server (its Resource is set here).
func NewProtected(t testing.TB, cfg mcpauthtest.Config) (*Server, *mcpauthtest.Server) {
	t.Helper()
	s, h := newServer(StreamableHTTP)
	cfg.Resource = h
	as := mcpauthtest.New(t, cfg)
	s.URL = as.URL()
	t.Cleanup(s.Release)
	return s, as
}
