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

// A short session that answers server requests never opens the standalone GET stream: its
// quick call gets no server request outside the POST's own stream.
func TestListenStreamNotOpenedForQuickSession(t *testing.T) {
	t.Parallel()
	url, gets := startSamplingServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, samplingOptions(), Server{URL: url})
	require.NoError(t, err)
	res, err := s.CallTool(ctx, "quick", nil)
	require.NoError(t, err)
	require.Equal(t, "quick answer", res.Text)
	require.NoError(t, s.Close())
	time.Sleep(callListenDelay + 50*time.Millisecond) // a GET let out late would arrive by now
	require.Zero(t, gets.Load(), "the session opened the GET stream")
}

// A server request sent on the standalone GET stream during a call is answered: the stream opens
// once the call has waited callListenDelay.
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

// A long session listens without a call in flight, as the stream is meant to.
func TestListenStreamOpensOnLongSession(t *testing.T) {
	t.Parallel()
	url, gets := startSamplingServer(t)
	s := connect(t, samplingOptions(), Server{URL: url})
	require.Eventually(t, func() bool { return gets.Load() > 0 }, sessionListenDelay+5*time.Second, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, "quick", nil)
	require.NoError(t, err)
	require.Equal(t, "quick answer", res.Text)
}
