package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/mcptest"
)

// TestTaskKeepsAHugeToolResultCut runs a task whose tool answers 50 MB: the task completes, and
// the model, the recorded step, the public JSON and the markdown page all get the result cut to
// MCPIDP_MAX_TOOL_RESULT_BYTES with the marker.
func TestTaskKeepsAHugeToolResultCut(t *testing.T) {
	t.Parallel()
	const size, limit = 50 << 20, 256 << 10
	for name, eventStream := range map[string]bool{"json": false, "event-stream": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backends(t, func(t *testing.T, databaseURL string) {
				env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_MAX_TOOL_RESULT_BYTES"] = "262144" })
				url := mcptest.NewHuge(t, mcptest.HugeOptions{ResultBytes: size, EventStream: eventStream})
				env.Model.Handle(func(req llmtest.Request) llmtest.Response {
					if req.Messages[len(req.Messages)-1].Role == "tool" {
						return llmtest.Response{Content: "That was long."}
					}
					return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "huge"), Arguments: `{}`}}}
				})

				tk := env.submit(t, keyAcme, map[string]any{
					"user": "alice@example.com", "model": "gpt-test", "input": "Call the huge tool",
					"tools": []map[string]any{{"type": "mcp", "url": url}},
				})
				done := waitDone(t, tk)
				require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
				require.Equal(t, "That was long.", done.Output.Content)

				marker := mcpclient.ToolResultMarker(size, limit)
				out := done.Steps[1].Output
				require.True(t, strings.HasSuffix(out, "xxx"+marker), out[max(0, len(out)-200):])
				require.LessOrEqual(t, len(out), limit+len(marker))
				reqs := env.Model.Requests()
				require.Len(t, reqs, 2)
				require.Equal(t, out, reqs[1].Messages[len(reqs[1].Messages)-1].Content, "the model gets the result as it was recorded")

				status, raw, _ := call(t, "GET", tk.ResultURLs.JSON, "", nil)
				require.Equal(t, http.StatusOK, status)
				require.Less(t, len(raw), 2<<20, "the public JSON stays small")
				status, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
				require.Equal(t, http.StatusOK, status)
				require.Contains(t, string(md), marker)
				require.Less(t, len(md), 2<<20)
			})
		})
	}
}

// TestTaskFailsWhenTheModelAnswerIsTooLarge: an answer over MCPIDP_MAX_MODEL_RESPONSE_BYTES is
// refused while it is read, and the task fails with model_error saying why.
func TestTaskFailsWhenTheModelAnswerIsTooLarge(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_MAX_MODEL_RESPONSE_BYTES"] = "4096" })
		env.Model.Enqueue(llmtest.Response{Content: strings.Repeat("blah ", 2000)})
		tk := env.submit(t, keyAcme, map[string]any{"user": "alice@example.com", "model": "gpt-test", "input": "Talk a lot"})
		done := waitDone(t, tk)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "model_error", done.Error.Code)
		require.Contains(t, done.Error.Message, "the model's answer is too large: upstream response is larger than 4096 bytes")
	})
}

func TestLoadConfigReadsTheBounds(t *testing.T) {
	t.Parallel()
	cfg, err := app.LoadConfig(func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, []int64{1 << 20, 1 << 20, 4 << 20}, []int64{cfg.MaxToolResultBytes, cfg.MaxToolsListBytes, cfg.MaxModelResponseBytes})

	env := map[string]string{"MCPIDP_MAX_TOOL_RESULT_BYTES": "100", "MCPIDP_MAX_TOOLS_LIST_BYTES": "lots", "MCPIDP_MAX_MODEL_RESPONSE_BYTES": "8388608"}
	cfg, err = app.LoadConfig(func(k string) string { return env[k] })
	require.ErrorContains(t, err, "MCPIDP_MAX_TOOL_RESULT_BYTES must be a number of bytes, at least 1024")
	require.ErrorContains(t, err, "MCPIDP_MAX_TOOLS_LIST_BYTES must be a number of bytes, at least 1024")
	require.Equal(t, int64(8<<20), cfg.MaxModelResponseBytes)
}
