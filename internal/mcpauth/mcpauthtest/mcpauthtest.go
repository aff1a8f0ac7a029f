// Package mcpauthtest runs an OAuth authorization server and an
// OAuth-protected MCP-like resource in process, on loopback, for tests of
// the OAuth engine and of everything built on it. The server itself is
// internal/demo/authserver, which `mcpidp demo` runs too; this package ties
// its life to a test.
package mcpauthtest

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/mcpidp/mcpidp/internal/demo/authserver"
)

type (
	// Config configures a Server; see authserver.Config.
	Config = authserver.Config
	// Server is a running authorization server and resource.
	Server = authserver.Server
	// Client is a client registration known to the authorization server.
	Client = authserver.Client
	// PRMMode says where the resource publishes its protected-resource
	// metadata.
	PRMMode = authserver.PRMMode
)

// Where the resource publishes its protected-resource metadata.
const (
	PRMHeader = authserver.PRMHeader
	PRMPath   = authserver.PRMPath
	PRMRoot   = authserver.PRMRoot
	PRMNone   = authserver.PRMNone
)

// New starts a Server, stopped when the test ends.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := authserver.Start(cfg)
	t.Cleanup(s.Close)
	return s
}

// Approve plays a browser that is logged in at the authorization server
// and approves: it GETs the authorization URL without following the
// redirect and returns the query of the redirect back to the client.
func Approve(t testing.TB, authorizationURL string) url.Values {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authorizationURL)
	if err != nil {
		t.Fatalf("mcpauthtest: GET authorization URL: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("mcpauthtest: authorization endpoint answered %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("mcpauthtest: bad Location: %v", err)
	}
	return loc.Query()
}
