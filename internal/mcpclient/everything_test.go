package mcpclient

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/testenv"
)

// TestEverythingServer talks to the reference TypeScript server, @modelcontextprotocol/server-everything,
// over Streamable HTTP.
func TestEverythingServer(t *testing.T) {
	t.Parallel()

	url := testenv.StartEverything(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Connect(ctx, testOptions(), Server{URL: url, AllowedTools: []string{"echo"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Equal(t, TransportStreamableHTTP, s.Transport())

	tools, err := s.Tools(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"echo"}, toolNames(tools))
	require.Contains(t, string(tools[0].InputSchema), `"message"`)

	res, err := s.CallTool(ctx, "echo", json.RawMessage(`{"message":"hello from mcpidp"}`))
	require.NoError(t, err)
	require.False(t, res.IsError)
	require.Contains(t, res.Text, "hello from mcpidp")
}
