package mcpclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"
)

// On the legacy SSE transport the answer comes on the shared stream. An answer too large even
// once cut ends that stream; the call waiting for it must fail then, saying why, rather than
// wait out its whole deadline. It is not sent again: the server accepted it.
func TestSSECallFailsWhenItsStreamEnds(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	s := server.NewMCPServer("t", "1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("deep"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		calls.Add(1)
		// Millions of short values: nothing long to cut, so past the ceiling.
		arr := make([]any, 1_500_000)
		for i := range arr {
			arr[i] = 0
		}
		return &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"v": arr}}, nil
	})
	ts := httptest.NewServer(server.NewSSEServer(s))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := Connect(ctx, Options{HTTPClient: &http.Client{}}, Server{URL: ts.URL + "/sse"})
	require.NoError(t, err)
	defer sess.Close()
	require.Equal(t, TransportSSE, sess.Transport())

	start := time.Now()
	_, err = sess.CallTool(ctx, "deep", []byte(`{}`))
	var lost *AnswerLostError
	require.ErrorAs(t, err, &lost)
	require.Contains(t, err.Error(), "lost")
	require.Less(t, time.Since(start), 10*time.Second, "the call waited for an answer the ended stream cannot bring")
	require.Equal(t, int32(1), calls.Load())
}
