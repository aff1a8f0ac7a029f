package chat

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseChatUpstreamBody checks what a request without MCP tools sends
// upstream: the body exactly as the client wrote it (spacing, order,
// numbers) when it carries none of mcpidp's fields, and without them when
// it does.
func TestParseChatUpstreamBody(t *testing.T) {
	var lim Limits
	lim.ApplyDefaults()
	plain := `{ "model": "m",  "temperature": 1.50,
  "messages": [{"role":"user","content":"hi"}], "z": {"b":1, "a":2} }`
	req, err := parseChat([]byte(plain), lim, "")
	require.NoError(t, err)
	require.Equal(t, plain, string(req.body))

	req, err = parseChat([]byte(`{"model":"m", "user":"alice","messages":[{"role":"user","content":"hi"}],"mcp_output":"text","z":1.50}`), lim, "")
	require.NoError(t, err)
	require.Equal(t, `{"model":"m","messages":[{"role":"user","content":"hi"}],"z":1.50}`, string(req.body))
}
