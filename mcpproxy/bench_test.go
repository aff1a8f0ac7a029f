package mcpproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// BenchmarkChat measures what the proxy adds over calling the fake model
// directly (see BENCHMARKS.md). "direct" is what a client does without
// mcpidp: for one_tool that is two model calls plus its own MCP session
// (connect, list, call); "proxy" is the same conversation through the
// in-process RoundTripper, with the token lookups in SQLite.
func BenchmarkChat(b *testing.B) {
	proxy, bundle := setup(b)
	bundle.model.Handle(func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		switch {
		case last.Role == "tool":
			return llmtest.Response{Content: "The tool said: " + last.Content}
		case strings.Contains(string(req.Tools), "__echo"):
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(b, "echo"), Arguments: `{"message":"hi"}`}}}
		}
		return llmtest.Response{Content: "Hello there, how can I help?"}
	})
	direct := &http.Client{}
	viaProxy := &http.Client{Transport: proxy}
	base := `{"model":"gpt-test","user":"alice","messages":[{"role":"user","content":"hi"}]`
	noTools := base + `}`
	noToolsStream := base + `,"stream":true}`
	oneTool := base + `,"tools":[{"type":"mcp","url":"` + bundle.mcp.URL + `","allowed_tools":["echo"]}]}`
	oneToolStream := base + `,"stream":true,"tools":[{"type":"mcp","url":"` + bundle.mcp.URL + `","allowed_tools":["echo"]}]}`

	b.Run("direct/no_tools", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, direct, bundle.model.URL(), noTools)
		}
	})
	b.Run("proxy/no_tools", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, viaProxy, "https://api.openai.example/v1", noTools)
		}
	})
	b.Run("direct/no_tools_stream", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, direct, bundle.model.URL(), noToolsStream)
		}
	})
	b.Run("proxy/no_tools_stream", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, viaProxy, "https://api.openai.example/v1", noToolsStream)
		}
	})

	// What a client does itself with one MCP tool call: ask the model, run
	// the tool over its own MCP session, ask the model again.
	toolTurn, err := json.Marshal(map[string]any{"model": "gpt-test", "messages": []any{
		map[string]any{"role": "user", "content": "hi"},
		map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function",
			"function": map[string]any{"name": "127_0_0_1__echo", "arguments": `{"message":"hi"}`}}}},
		map[string]any{"role": "tool", "tool_call_id": "call_1", "content": "echo: hi"},
	}})
	require.NoError(b, err)
	firstTurn := base + `,"tools":[{"type":"function","function":{"name":"127_0_0_1__echo","parameters":{"type":"object"}}}]}`
	b.Run("direct/one_tool", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			benchPost(b, direct, bundle.model.URL(), firstTurn)
			s, err := mcpclient.Connect(ctx, mcpclient.Options{HTTPClient: direct}, mcpclient.Server{URL: bundle.mcp.URL})
			require.NoError(b, err)
			_, err = s.Tools(ctx)
			require.NoError(b, err)
			_, err = s.CallTool(ctx, "echo", json.RawMessage(`{"message":"hi"}`))
			require.NoError(b, err)
			require.NoError(b, s.Close())
			benchPost(b, direct, bundle.model.URL(), string(toolTurn))
		}
	})
	b.Run("proxy/one_tool", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, viaProxy, "https://api.openai.example/v1", oneTool)
		}
	})
	b.Run("proxy/one_tool_stream", func(b *testing.B) {
		for b.Loop() {
			benchPost(b, viaProxy, "https://api.openai.example/v1", oneToolStream)
		}
	})
}

func benchPost(b *testing.B, client *http.Client, baseURL, body string) {
	resp, err := client.Post(baseURL+"/chat/completions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d, error %v: %s", resp.StatusCode, err, raw)
	}
}
