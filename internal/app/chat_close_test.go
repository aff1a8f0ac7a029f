package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"
)

// startSlowCloseServer serves an echo tool over stateful Streamable HTTP
// whose session DELETE is held until the test ends; deletes receives a
// value for each DELETE that arrives.
func startSlowCloseServer(t *testing.T) (url string, deletes chan struct{}) {
	t.Helper()
	m := server.NewMCPServer("slow-close", "1.0.0")
	m.AddTool(mcp.NewTool("echo", mcp.WithString("message")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("echo: " + req.GetString("message", "")), nil
	})
	h := server.NewStreamableHTTPServer(m, server.WithStateful(true))
	deletes = make(chan struct{}, 16)
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) }) // before ts.Close, which waits for the held DELETE
	return ts.URL + "/mcp", deletes
}

// A chat answer is complete on the wire before the run's MCP sessions are
// closed: a slow DELETE is not the caller's wait.
func TestChatAnswersBeforeSessionsClose(t *testing.T) {
	t.Parallel()
	url, deletes := startSlowCloseServer(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"hi"}`))
		// mcp-go gives its DELETE 5 s: an answer that waited for it would miss this deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		client := env.chatClient(keyAcme)
		resp, err := client.Chat.Completions.New(ctx, chatParams("u", mcpToolParam(url)))
		require.NoError(t, err)
		require.Contains(t, resp.Choices[0].Message.Content, "The tool said: echo: hi")
		select {
		case <-deletes: // the session was still closed, after the answer
		case <-time.After(10 * time.Second):
			t.Fatal("the session was never closed")
		}
	})
}
