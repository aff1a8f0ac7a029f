package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
	"github.com/mcpidp/mcpidp/mcpproxy"
)

// chatClient is the official Go SDK pointed at mcpidp.
func (e *testEnv) chatClient(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func mcpToolParam(url string) openai.ChatCompletionToolUnionParam {
	return param.Override[openai.ChatCompletionToolUnionParam](map[string]any{"type": "mcp", "url": url})
}

func chatParams(user string, tools ...openai.ChatCompletionToolUnionParam) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-test",
		User:     openai.String(user),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Use the tool")},
		Tools:    tools,
	}
}

// callToolOnce scripts a model that calls one MCP tool, then repeats what
// it said.
func callToolOnce(t testing.TB, tool, arguments string) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "The tool said: " + last.Content}
		}
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, tool), Arguments: arguments}}}
	}
}

func TestChatNodeOpenAIClient(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"hello"}`))

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Node22(t), filepath.Join("testdata", "openai_chat.mjs"))
		cmd.Env = append(cmd.Environ(), "NODE_DIR="+testenv.NodeDir(t), "BASE_URL="+env.URL+"/v1", "API_KEY="+keyAcme, "MCP_URL="+everything)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "node: %s", stderr.String())

		type usage struct {
			TotalTokens int `json:"total_tokens"`
		}
		var got struct {
			Completion struct {
				Content, Finish string
				Usage           usage
			}
			Stream struct {
				Content, Finish string
				Chunks, IDs     int
				Usage           usage
			}
			Helper struct{ Content, Finish string }
		}
		require.NoError(t, json.Unmarshal(out, &got), string(out))

		c := got.Completion
		require.True(t, strings.HasPrefix(c.Content, "<details><summary>🔧 echo (127.0.0.1:"), c.Content)
		require.Contains(t, c.Content, "```json\n{\n  \"message\": \"hello\"\n}\n```")
		require.True(t, strings.HasSuffix(c.Content, "</details>\n\nThe tool said: Echo: hello"), c.Content)
		require.Equal(t, "stop", c.Finish)
		require.Equal(t, 2*llmtest.DefaultUsage().TotalTokens, c.Usage.TotalTokens)

		require.Equal(t, c.Content, got.Stream.Content, "a stream reads like the completion")
		require.Equal(t, "stop", got.Stream.Finish)
		require.Equal(t, 1, got.Stream.IDs, "every chunk carries the same id")
		require.Greater(t, got.Stream.Chunks, 6)
		require.Equal(t, 2*llmtest.DefaultUsage().TotalTokens, got.Stream.Usage.TotalTokens)
		require.Equal(t, c.Content, got.Helper.Content)
		require.Equal(t, "stop", got.Helper.Finish)

		reqs := env.Model.Requests()
		require.Len(t, reqs, 6)
		for _, r := range reqs {
			require.Equal(t, "Bearer upstream-key", r.Header.Get("Authorization"))
			require.NotContains(t, string(r.Body), "node-user")
		}
	})
}

func TestChatOpenAIGo(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		client := env.chatClient(keyAcme)
		ctx := context.Background()

		// A tool call, one completion.
		env.Model.Handle(callToolOnce(t, "add", `{"a":2,"b":3}`))
		resp, err := client.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		require.NoError(t, err)
		content := resp.Choices[0].Message.Content
		require.Contains(t, content, "<details><summary>🔧 add (127.0.0.1:")
		require.True(t, strings.HasSuffix(content, "The tool said: 5"), content)
		require.EqualValues(t, 2*llmtest.DefaultUsage().TotalTokens, resp.Usage.TotalTokens)
		require.Equal(t, []string{"2 3"}, mcp.Calls("add"))

		// The same, streamed.
		stream := client.Chat.Completions.NewStreaming(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			require.True(t, acc.AddChunk(stream.Current()))
		}
		require.NoError(t, stream.Err())
		require.Equal(t, content, acc.Choices[0].Message.Content)

		// Usage comes as a last chunk without choices, only when asked for.
		for _, includeUsage := range []bool{false, true} {
			events := streamEvents(t, env.URL+"/v1/chat/completions", keyAcme, map[string]any{
				"model": "gpt-test", "user": "alice", "stream": true, "stream_options": map[string]any{"include_usage": includeUsage},
				"messages": []any{map[string]any{"role": "user", "content": "hi"}},
				"tools":    []any{map[string]any{"type": "mcp", "url": mcp.URL}},
			})
			require.Equal(t, "[DONE]", events[len(events)-1])
			usageEvents := 0
			for _, ev := range events {
				if strings.Contains(ev, `"usage"`) {
					usageEvents++
				}
			}
			if !includeUsage {
				require.Zero(t, usageEvents)
				continue
			}
			require.Equal(t, 1, usageEvents)
			var last struct {
				Choices []any `json:"choices"`
				Usage   struct {
					TotalTokens int `json:"total_tokens"`
				} `json:"usage"`
			}
			require.NoError(t, json.Unmarshal([]byte(events[len(events)-2]), &last))
			require.NotNil(t, last.Choices)
			require.Empty(t, last.Choices)
			require.Equal(t, 2*llmtest.DefaultUsage().TotalTokens, last.Usage.TotalTokens)
		}

		// Through mcpproxy in remote mode: the same answer.
		proxy, err := mcpproxy.New(ctx, mcpproxy.Options{ServerURL: env.URL + "/v1", APIKey: keyAcme})
		require.NoError(t, err)
		defer proxy.Close()
		viaProxy := openai.NewClient(option.WithHTTPClient(&http.Client{Transport: proxy}), option.WithAPIKey("unused"), option.WithMaxRetries(0))
		resp, err = viaProxy.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		require.NoError(t, err)
		require.Equal(t, content, resp.Choices[0].Message.Content)
		models, err := viaProxy.Models.List(ctx)
		require.NoError(t, err)
		require.Equal(t, llmtest.Model, models.Data[0].ID)

		// A call to the client's own function comes back to the client.
		env.Model.Handle(nil)
		env.Model.Enqueue(llmtest.Response{ToolCalls: []llmtest.ToolCall{{ID: "call_w", Name: "get_weather", Arguments: `{"city":"Oslo"}`}}})
		weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather"})
		resp, err = client.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(mcp.URL), weather))
		require.NoError(t, err)
		require.Equal(t, "tool_calls", resp.Choices[0].FinishReason)
		require.Len(t, resp.Choices[0].Message.ToolCalls, 1)
		require.Equal(t, "call_w", resp.Choices[0].Message.ToolCalls[0].ID)
		require.Equal(t, "get_weather", resp.Choices[0].Message.ToolCalls[0].Function.Name)

		// Deltas are forwarded as they arrive, not when the answer is whole.
		env.Model.Enqueue(llmtest.Response{Content: "one two three four five six seven", ChunkDelay: 150 * time.Millisecond})
		start := time.Now()
		var first time.Duration
		stream = client.Chat.Completions.NewStreaming(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		text := ""
		for stream.Next() {
			if c := stream.Current(); len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
				if first == 0 {
					first = time.Since(start)
				}
				text += c.Choices[0].Delta.Content
			}
		}
		require.NoError(t, stream.Err())
		total := time.Since(start)
		require.Equal(t, "one two three four five six seven", text)
		require.Less(t, first, total-500*time.Millisecond, "first delta after %s, whole answer after %s", first, total)
	})
}

func TestChatLoginLink(t *testing.T) {
	t.Parallel()
	server := testenv.StartOAuthExample(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "greet", `{"name":"Alice"}`))
		client := env.chatClient(keyAcme)
		ctx := context.Background()
		host := strings.TrimSuffix(strings.TrimPrefix(server, "http://"), "/mcp")

		// Not logged in: a normal completion with a login link.
		resp, err := client.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(server)))
		require.NoError(t, err)
		msg := resp.Choices[0].Message
		var links []chat.AuthorizationRequest
		require.NoError(t, json.Unmarshal([]byte(msg.JSON.ExtraFields["mcp_authorization_required"].Raw()), &links))
		require.Len(t, links, 1)
		require.Equal(t, server, links[0].ServerURL)
		require.True(t, strings.HasPrefix(links[0].AuthorizationURL, env.URL+"/oauth/start/"), links[0].AuthorizationURL)
		require.Contains(t, msg.Content, "[Log in to "+host+"]("+links[0].AuthorizationURL+")")
		require.Equal(t, "stop", resp.Choices[0].FinishReason)

		// Streamed, the link comes as content of a chunk.
		events := streamEvents(t, env.URL+"/v1/chat/completions", keyAcme, map[string]any{
			"model": "gpt-test", "user": "alice", "stream": true,
			"messages": []any{map[string]any{"role": "user", "content": "hi"}},
			"tools":    []any{map[string]any{"type": "mcp", "url": server}},
		})
		require.Equal(t, "[DONE]", events[len(events)-1])
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content                  string                      `json:"content"`
					MCPAuthorizationRequired []chat.AuthorizationRequest `json:"mcp_authorization_required"`
				} `json:"delta"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(events[0]), &chunk))
		require.Contains(t, chunk.Choices[0].Delta.Content, "[Log in to "+host+"](")
		require.Len(t, chunk.Choices[0].Delta.MCPAuthorizationRequired, 1)
		require.Empty(t, env.Model.Requests(), "the model is not called without the tools")

		status, page := testenv.FollowLogin(t, links[0].AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)

		// The same request now runs with alice's token.
		resp, err = client.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(server)))
		require.NoError(t, err)
		require.Contains(t, resp.Choices[0].Message.Content, "The tool said: Hello, Alice!")
		require.False(t, resp.Choices[0].Message.JSON.ExtraFields["mcp_authorization_required"].Valid())

		// Another tenant's alice is someone else.
		globex := env.chatClient(keyGlobex)
		resp, err = globex.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(server)))
		require.NoError(t, err)
		require.Contains(t, resp.Choices[0].Message.Content, "[Log in to "+host+"](")
	})
}

func TestChatClientDisconnectStopsTheRun(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			return llmtest.Response{
				Content:    "Streaming slowly, then asking for a tool.",
				ToolCalls:  []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"never"}`}},
				ChunkDelay: 50 * time.Millisecond,
			}
		})
		body, err := json.Marshal(map[string]any{
			"model": "gpt-test", "user": "alice", "stream": true,
			"messages": []any{map[string]any{"role": "user", "content": "hi"}},
			"tools":    []any{map[string]any{"type": "mcp", "url": mcp.URL}},
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.URL+"/v1/chat/completions", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+keyAcme)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() && !strings.Contains(lines.Text(), `"content":"Stream`) {
		}
		cancel()
		_ = resp.Body.Close()

		require.Eventually(t, func() bool { return env.Model.Canceled() == 1 }, 10*time.Second, 10*time.Millisecond, "the upstream call is canceled")
		time.Sleep(300 * time.Millisecond)
		require.Empty(t, mcp.Calls("echo"), "no tool call starts")
		require.Len(t, env.Model.Requests(), 1)
	})
}

func TestChatPassThroughAndErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		url := env.URL + "/v1/chat/completions"
		const knob = `"x_vendor_knob":{"z": [1,  2.50, "é\u00e9"], "a":null}`

		// Unknown fields reach the upstream as written, with and without MCP tools.
		env.Model.Enqueue(llmtest.Response{Content: "plain"}, llmtest.Response{Content: "with tools"})
		status, raw, _ := call(t, "POST", url, keyAcme, `{"model":"gpt-test",`+knob+`,"messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(raw), `"content":"plain"`)
		status, raw, _ = call(t, "POST", url, keyAcme, `{"model":"gpt-test","user":"alice",`+knob+`,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"`+mcp.URL+`"}]}`,
			"X-Upstream-Authorization", "Bearer sk-own")
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(raw), `"content":"with tools"`)
		reqs := env.Model.Requests()
		require.Len(t, reqs, 2)
		for _, r := range reqs {
			require.Contains(t, string(r.Body), knob)
		}
		require.Equal(t, "Bearer upstream-key", reqs[0].Header.Get("Authorization"))
		require.Equal(t, "Bearer sk-own", reqs[1].Header.Get("Authorization"), "X-Upstream-Authorization is forwarded")

		// Upstream errors keep their status and body.
		for _, stream := range []bool{false, true} {
			for _, tools := range []string{``, `,"user":"alice","tools":[{"type":"mcp","url":"` + mcp.URL + `"}]`} {
				env.Model.Enqueue(llmtest.Response{Status: http.StatusTooManyRequests, Content: "slow down", Header: http.Header{"Retry-After": {"3"}}})
				body := `{"model":"gpt-test","stream":` + map[bool]string{true: "true", false: "false"}[stream] + `,"messages":[{"role":"user","content":"hi"}]` + tools + `}`
				status, raw, header := call(t, "POST", url, keyAcme, body)
				require.Equal(t, http.StatusTooManyRequests, status, "%s: %s", body, raw)
				require.Equal(t, "3", header.Get("Retry-After"))
				var e struct {
					Error struct{ Message, Type, Code string }
				}
				require.NoError(t, json.Unmarshal(raw, &e), string(raw))
				require.Equal(t, "slow down", e.Error.Message)
				require.Equal(t, "rate_limit_exceeded", e.Error.Code)
			}
		}

		// mcpidp's own checks.
		status, raw, _ = call(t, "POST", url, keyAcme, `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"`+mcp.URL+`"}]}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), `"param":"user"`)
		status, raw, _ = call(t, "POST", url, "", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, string(raw), `"code":"missing_api_key"`)
		wrong := env.chatClient("wrong-key-0123456789")
		_, err := wrong.Chat.Completions.New(context.Background(), chatParams("alice"))
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		require.Equal(t, "invalid_api_key", apiErr.Code)
		require.Len(t, env.Model.Requests(), 6, "refused requests never reach the model")
	})
}

func TestModelsPassThrough(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		client := env.chatClient(keyAcme)
		page, err := client.Models.List(context.Background())
		require.NoError(t, err)
		require.Len(t, page.Data, 2)
		require.Equal(t, llmtest.Model, page.Data[0].ID)
		status, _, _ := call(t, "GET", env.URL+"/v1/models", "", nil)
		require.Equal(t, http.StatusUnauthorized, status)
	})
}

// streamEvents POSTs a streaming request and returns the data of every
// server-sent event.
func streamEvents(t testing.TB, url, key string, body any) []string {
	t.Helper()
	status, raw, header := call(t, "POST", url, key, body)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, "text/event-stream; charset=utf-8", header.Get("Content-Type"))
	var events []string
	for _, block := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		data, ok := strings.CutPrefix(block, "data: ")
		require.True(t, ok, "event %q", block)
		events = append(events, data)
	}
	return events
}

// With mcp_output "text" the content leaves the tool calls out, so the
// message lists them in "mcp_tool_calls" (a stream: on its last chunk).
func TestChatTextOutputListsToolCalls(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(callToolOnce(t, "add", `{"a":2,"b":3}`))
		body := func(stream bool) map[string]any {
			return map[string]any{"model": "gpt-test", "user": "alice", "stream": stream, "mcp_output": "text",
				"messages": []any{map[string]any{"role": "user", "content": "add"}},
				"tools":    []any{map[string]any{"type": "mcp", "url": mcp.URL}}}
		}
		type toolCall struct {
			ServerURL string          `json:"server_url"`
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Output    string          `json:"output"`
			IsError   bool            `json:"is_error"`
		}
		want := []toolCall{{ServerURL: mcp.URL, Name: "add", Arguments: json.RawMessage(`{"a":2,"b":3}`), Output: "5"}}

		status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, body(false))
		require.Equal(t, http.StatusOK, status, string(raw))
		var resp struct {
			Choices []struct {
				Message struct {
					Content      string     `json:"content"`
					MCPToolCalls []toolCall `json:"mcp_tool_calls"`
				} `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(raw, &resp))
		require.Equal(t, "The tool said: 5", resp.Choices[0].Message.Content)
		require.Equal(t, want, resp.Choices[0].Message.MCPToolCalls)

		events := streamEvents(t, env.URL+"/v1/chat/completions", keyAcme, body(true))
		require.Equal(t, "[DONE]", events[len(events)-1])
		var text string
		var got []toolCall
		for i, ev := range events[:len(events)-1] {
			var chunk struct {
				Choices []struct {
					Delta struct {
						Content      string     `json:"content"`
						MCPToolCalls []toolCall `json:"mcp_tool_calls"`
					} `json:"delta"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal([]byte(ev), &chunk), ev)
			d := chunk.Choices[0].Delta
			text += d.Content
			if d.MCPToolCalls != nil {
				require.Nil(t, got, "one chunk lists the calls")
				require.NotNil(t, chunk.Choices[0].FinishReason, "the calls come on the last chunk: %s", ev)
				require.Equal(t, len(events)-2, i)
				got = d.MCPToolCalls
			}
		}
		require.Equal(t, "The tool said: 5", text)
		require.Equal(t, want, got)
	})
}

// Bad input on the chat path is a 400; an upstream that cannot be reached
// or does not answer JSON is a 502 with MCP tools as without them.
func TestChatBadInputAndUpstreamFailures(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		url := env.URL + "/v1/chat/completions"
		withTools := `,"user":"alice","tools":[{"type":"mcp","url":"` + mcp.URL + `"}]`
		for _, c := range []struct{ body, param string }{
			{`{"model":5,"messages":[{"role":"user","content":"hi"}]}`, "model"},
			{`{"model":{"id":"m"},"messages":[{"role":"user","content":"hi"}]` + withTools + `}`, "model"},
			{`{"model":"m","user":"a\u0000","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"` + mcp.URL + `"}]}`, "user"},
		} {
			status, raw, _ := call(t, "POST", url, keyAcme, c.body)
			require.Equal(t, http.StatusBadRequest, status, "%s: %s", c.body, raw)
			require.Contains(t, string(raw), `"param":"`+c.param+`"`)
		}
		status, raw, _ := call(t, "POST", url, keyAcme, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"h\xffi\"}]"+withTools+"}")
		require.Equal(t, http.StatusBadRequest, status, string(raw))
		require.Contains(t, string(raw), "UTF-8")
		require.Empty(t, env.Model.Requests(), "refused requests never reach the model")

		for _, stream := range []string{"false", "true"} {
			env.Model.Enqueue(llmtest.Response{Body: "<html>bad gateway</html>", Header: http.Header{"Content-Type": {"text/html"}}})
			status, raw, _ := call(t, "POST", url, keyAcme, `{"model":"m","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]`+withTools+`}`)
			require.Equal(t, http.StatusBadGateway, status, "stream %s: %s", stream, raw)
			require.Contains(t, string(raw), `"code":"upstream_invalid_response"`)
		}

		// An upstream nobody listens on.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://" + ln.Addr().String() + "/v1"
		require.NoError(t, ln.Close())
		down := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_UPSTREAM_BASE_URL"] = closed })
		for _, tools := range []string{"", withTools} {
			for _, stream := range []string{"false", "true"} {
				status, raw, _ := call(t, "POST", down.URL+"/v1/chat/completions", keyAcme, `{"model":"m","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]`+tools+`}`)
				require.Equal(t, http.StatusBadGateway, status, "stream %s, tools %q: %s", stream, tools, raw)
				require.Contains(t, string(raw), `"code":"upstream_unreachable"`)
				require.NotContains(t, string(raw), ln.Addr().String(), "the upstream's address is not shown")
			}
		}
	})
}
