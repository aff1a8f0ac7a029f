package mcpclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"
)

// startSamplingServer serves a stateful mcp-go server with a quick tool and a tool that samples
// (mcp-go sends sampling requests on the standalone GET stream alone), and counts the GETs.
func startSamplingServer(t *testing.T) (url string, gets *atomic.Int64) {
	t.Helper()
	m := server.NewMCPServer("sampler", "1.0.0")
	m.EnableSampling()
	m.AddTool(mcp.NewTool("quick"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("quick answer"), nil
	})
	m.AddTool(mcp.NewTool("sample"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := m.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
			Messages: []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("sample me")}}, MaxTokens: 20}})
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		tc, _ := res.Content.(mcp.TextContent)
		return mcp.NewToolResultText("sampled: " + tc.Text), nil
	})
	h := server.NewStreamableHTTPServer(m, server.WithStateful(true))
	gets = &atomic.Int64{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp", gets
}

func samplingOptions() Options {
	opts := testOptions()
	opts.SampleFunc = func(ctx context.Context, req SampleRequest) (json.RawMessage, error) {
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"42"},"model":"m","stopReason":"endTurn"}`), nil
	}
	return opts
}

// A session that answers server requests listens from the start, before any call.
func TestListenStreamOpensAtConnect(t *testing.T) {
	t.Parallel()
	url, gets := startSamplingServer(t)
	connect(t, samplingOptions(), Server{URL: url})
	require.Eventually(t, func() bool { return gets.Load() > 0 }, 5*time.Second, 10*time.Millisecond)
}

// A call right after connecting goes out once the GET stream is answered, and does not wait
// longer than that.
func TestListenStreamOpenedByQuickCall(t *testing.T) {
	t.Parallel()
	url, gets := startSamplingServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := connect(t, samplingOptions(), Server{URL: url})
	start := time.Now()
	res, err := s.CallTool(ctx, "quick", nil)
	require.NoError(t, err)
	require.Equal(t, "quick answer", res.Text)
	require.Less(t, time.Since(start), listenReadyWait, "the call waited for the GET's answer in vain")
	require.Positive(t, gets.Load())
}

// A server request sent on the standalone GET stream during a call is answered.
func TestListenStreamOpensForServerRequest(t *testing.T) {
	t.Parallel()
	url, gets := startSamplingServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := connect(t, samplingOptions(), Server{URL: url})
	res, err := s.CallTool(ctx, "sample", nil)
	require.NoError(t, err)
	require.False(t, res.IsError, res.Text)
	require.Equal(t, "sampled: 42", res.Text)
	require.Positive(t, gets.Load())
}
