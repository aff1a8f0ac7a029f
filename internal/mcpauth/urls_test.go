package mcpauth_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

func TestCanonicalServerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://mcp.example.com/mcp":        "https://mcp.example.com/mcp",
		"HTTPS://MCP.Example.COM/mcp":        "https://mcp.example.com/mcp",
		"https://mcp.example.com/":           "https://mcp.example.com",
		"https://mcp.example.com":            "https://mcp.example.com",
		"https://mcp.example.com:443/mcp":    "https://mcp.example.com/mcp",
		"http://mcp.example.com:80/mcp":      "http://mcp.example.com/mcp",
		"https://mcp.example.com:8443":       "https://mcp.example.com:8443",
		"https://mcp.example.com/mcp#frag":   "https://mcp.example.com/mcp",
		"https://mcp.example.com/Server/MCP": "https://mcp.example.com/Server/MCP",
		"https://mcp.example.com/mcp/":       "https://mcp.example.com/mcp/",
		"https://mcp.example.com/mcp?x=1":    "https://mcp.example.com/mcp",
		"http://[::1]:8080/mcp":              "http://[::1]:8080/mcp",
		" https://mcp.example.com/mcp ":      "https://mcp.example.com/mcp",
	} {
		got, err := mcpauth.CanonicalServerURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"mcp.example.com", "ftp://mcp.example.com", "https://user:pw@mcp.example.com/mcp", "https:///mcp", ""} {
		_, err := mcpauth.CanonicalServerURL(bad)
		require.Error(t, err, bad)
	}
}

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	c := mcpauth.ParseChallenge(`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read files:write"`)
	require.Equal(t, "https://mcp.example.com/.well-known/oauth-protected-resource", c.ResourceMetadata)
	require.Equal(t, []string{"files:read", "files:write"}, c.Scopes)
	require.False(t, c.InsufficientScope())

	c = mcpauth.ParseChallenge(`Basic realm="x", Bearer error="insufficient_scope", scope="a b", error_description="need \"more\"", DPoP algs="ES256"`)
	require.True(t, c.InsufficientScope())
	require.Equal(t, []string{"a", "b"}, c.Scopes)
	require.Equal(t, `need "more"`, c.ErrorDescription)

	c = mcpauth.ParseChallenge(`bearer error=invalid_token`)
	require.Equal(t, "invalid_token", c.Error)

	require.Equal(t, mcpauth.Challenge{}, mcpauth.ParseChallenge(`Basic realm="x"`))
	require.Equal(t, mcpauth.Challenge{}, mcpauth.ParseChallenge(""))
}
