package mcpclient

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcptest"
)

// TestCallToolKeepsLittleOfAHugeResult calls a tool whose 50 MB answer streams in, as JSON and as
// an event stream, and checks that the result is cut to the limit and that the call allocated a
// small fraction of the answer. Not parallel: the allocation count is the process's.
func TestCallToolKeepsLittleOfAHugeResult(t *testing.T) {
	const size = 50 << 20
	for _, eventStream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "event-stream"}[eventStream], func(t *testing.T) {
			url := mcptest.NewHuge(t, mcptest.HugeOptions{ResultBytes: size, EventStream: eventStream})
			s := connect(t, testOptions(), Server{URL: url})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res, err := s.CallTool(ctx, "huge", nil)
			runtime.ReadMemStats(&after)
			require.NoError(t, err)

			// Everything the call allocated, the test server's writes included: 50 MB read whole
			// and decoded would be several times the answer.
			allocated := after.TotalAlloc - before.TotalAlloc
			require.Less(t, allocated, uint64(20<<20), "allocated %d bytes", allocated)

			marker := ToolResultMarker(size, DefaultMaxToolResultBytes)
			require.True(t, strings.HasSuffix(res.Text, "xxx"+marker), res.Text[len(res.Text)-200:])
			require.LessOrEqual(t, len(res.Text), DefaultMaxToolResultBytes+len(marker))
			require.Greater(t, len(res.Text), DefaultMaxToolResultBytes-200)
			require.False(t, res.IsError)
		})
	}
}

func TestToolsRefusesAListOverTheLimit(t *testing.T) {
	t.Parallel()
	for _, eventStream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "event-stream"}[eventStream], func(t *testing.T) {
			t.Parallel()
			url := mcptest.NewHuge(t, mcptest.HugeOptions{DescriptionBytes: 3 << 20, EventStream: eventStream})
			opts := testOptions()
			opts.Limits.MaxToolsListBytes = 1 << 20
			s := connect(t, opts, Server{URL: url})
			_, err := s.Tools(context.Background())
			require.ErrorContains(t, err, "error listing tools of MCP server "+url+": the tool list is larger than 1048576 bytes")

			// Within the limit the same list passes whole.
			opts.Limits.MaxToolsListBytes = 4 << 20
			s = connect(t, opts, Server{URL: url})
			tools, err := s.Tools(context.Background())
			require.NoError(t, err)
			require.Len(t, tools, 1)
			require.Len(t, tools[0].Description, 3<<20)
		})
	}
}

// TestCallToolLegacySSEKeepsTheToolResultLimit: the legacy transport's stream carries every
// answer under one bound, the larger of the two limits; the tool result still gets its own.
func TestCallToolLegacySSEKeepsTheToolResultLimit(t *testing.T) {
	t.Parallel()
	m := server.NewMCPServer("big", "1.0.0", server.WithToolCapabilities(false))
	m.AddTool(mcp.NewTool("big"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(strings.Repeat("y", 3<<20)), nil
	})
	ts := httptest.NewServer(server.NewSSEServer(m))
	t.Cleanup(ts.Close)

	opts := testOptions()
	opts.Limits = Limits{MaxToolResultBytes: 64 << 10, MaxToolsListBytes: 1 << 20}
	s := connect(t, opts, Server{URL: ts.URL + "/sse"})
	require.Equal(t, TransportSSE, s.Transport())
	res, err := s.CallTool(context.Background(), "big", nil)
	require.NoError(t, err)
	require.LessOrEqual(t, len(res.Text), 64<<10+200)
	require.Contains(t, res.Text, "yyy…[truncated: the tool returned ")
}
