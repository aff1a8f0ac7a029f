package mcpproxy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/apisurface"
)

// TestPublicAPI keeps package mcpproxy what a program outside this module
// can build: no exported declaration mentions an internal package (the chat
// engine itself lives in internal/chat), and every exported name is one
// chosen to be public. Adding an export means adding it here on purpose.
func TestPublicAPI(t *testing.T) {
	t.Parallel()

	s, err := apisurface.Read(".")
	require.NoError(t, err)
	require.Empty(t, s.Leaks, "exported declarations mention internal packages")
	require.Equal(t, []string{
		"DefaultDatabaseURL",
		"DefaultTenant",
		"DefaultUpstreamBaseURL",
		"Limits",
		"New",
		"Options",
		"Proxy",
		"Proxy.Close",
		"Proxy.Handler",
		"Proxy.PublicURL",
		"Proxy.RoundTrip",
	}, s.Names)
}
