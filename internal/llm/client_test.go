package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
)

type testBundle struct {
	server *llmtest.Server
}

func setup(t *testing.T) (*llm.Client, *testBundle) {
	t.Helper()
	server := llmtest.NewServer(t)
	client, err := llm.New(llm.Config{BaseURL: server.URL() + "/", APIKey: "sk-default"})
	require.NoError(t, err)
	return client, &testBundle{server: server}
}

// decodeBody decodes a recorded request body into a generic map.
func decodeBody(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	return m
}

func TestNew(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		cfg     llm.Config
		wantErr string
	}{
		{cfg: llm.Config{}, wantErr: "upstream base URL is required"},
		{cfg: llm.Config{BaseURL: "ftp://example.com/v1"}, wantErr: "scheme must be http or https"},
		{cfg: llm.Config{BaseURL: "https:///v1"}, wantErr: "host is missing"},
		{cfg: llm.Config{BaseURL: "http://[::1"}, wantErr: "invalid upstream base URL"},
		{cfg: llm.Config{BaseURL: "https://api.openai.com/v1", MaxResponseBytes: -1}, wantErr: "invalid max response bytes: -1"},
	} {
		_, err := llm.New(tt.cfg)
		require.ErrorContains(t, err, tt.wantErr, "config %+v", tt.cfg)
	}

	client, err := llm.New(llm.Config{BaseURL: "https://api.openai.com/v1/"})
	require.NoError(t, err)
	require.NotNil(t, client)
}

func TestComplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ContentUsageAndRequest", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{
			Content: "Hello there",
			Usage:   &llm.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5},
		})

		body := `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"stream":true,` +
			`"stream_options":{"include_usage":true},"x_unknown":{"keep": [1,  2]}}`
		completion, err := client.Complete(ctx, []byte(body), llm.CallOptions{})
		require.NoError(t, err)

		require.Equal(t, "Hello there", completion.Content())
		require.Equal(t, "gpt-test", completion.Model)
		require.Equal(t, "chatcmpl-llmtest-1", completion.ID)
		require.Len(t, completion.Choices, 1)
		require.Equal(t, "assistant", completion.Choices[0].Message.Role)
		require.Equal(t, "stop", completion.Choices[0].FinishReason)
		require.Equal(t, &llm.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}, completion.Usage)
		require.Contains(t, string(completion.Raw), `"Hello there"`)

		reqs := bundle.server.Requests()
		require.Len(t, reqs, 1)
		require.Equal(t, "Bearer sk-default", reqs[0].Header.Get("Authorization"))
		require.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
		require.False(t, reqs[0].Stream)
		require.Equal(t, "gpt-test", reqs[0].Model)
		require.Equal(t, []llm.Message{{Role: "user", Content: "hi"}}, reqs[0].Messages)
		require.Contains(t, string(reqs[0].Body), `"x_unknown":{"keep": [1,  2]}`)
		require.NotContains(t, decodeBody(t, reqs[0].Body), "stream_options")
	})

	t.Run("CallKeyOverridesDefault", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Content: "a"}, llmtest.Response{Content: "b"})

		_, err := client.Complete(ctx, []byte(`{"model":"m"}`), llm.CallOptions{APIKey: "sk-user"})
		require.NoError(t, err)
		_, err = client.Complete(ctx, []byte(`{"model":"m"}`), llm.CallOptions{
			APIKey: "Bearer sk-other",
			Header: http.Header{"Openai-Organization": {"org-1"}, "Authorization": {"Bearer ignored"}},
		})
		require.NoError(t, err)

		reqs := bundle.server.Requests()
		require.Len(t, reqs, 2)
		require.Equal(t, "Bearer sk-user", reqs[0].Header.Get("Authorization"))
		require.Equal(t, "Bearer sk-other", reqs[1].Header.Get("Authorization"))
		require.Equal(t, "org-1", reqs[1].Header.Get("OpenAI-Organization"))
	})

	t.Run("NoKeyNoAuthorization", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		client, err := llm.New(llm.Config{BaseURL: server.URL()})
		require.NoError(t, err)
		server.Enqueue(llmtest.Response{Content: "ok"})

		_, err = client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.NoError(t, err)
		require.Empty(t, server.Requests()[0].Header.Values("Authorization"))
	})

	t.Run("ToolCalls", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{ToolCalls: []llmtest.ToolCall{
			{ID: "call_1", Name: "notion__search", Arguments: `{"query":"roadmap"}`},
			{Name: "linear__list_issues", Arguments: `{}`},
		}})

		completion, err := client.Complete(ctx, []byte(`{"model":"m","tools":[{"type":"function"}]}`), llm.CallOptions{})
		require.NoError(t, err)

		choice := completion.Choices[0]
		require.Equal(t, "tool_calls", choice.FinishReason)
		require.Empty(t, choice.Message.Content)
		require.Len(t, choice.Message.ToolCalls, 2)
		require.Equal(t, llm.ToolCall{ID: "call_1", Type: "function", Function: llm.FunctionCall{
			Name: "notion__search", Arguments: `{"query":"roadmap"}`,
		}}, choice.Message.ToolCalls[0])
		require.NotEmpty(t, choice.Message.ToolCalls[1].ID)
		require.Equal(t, "linear__list_issues", choice.Message.ToolCalls[1].Function.Name)
		require.JSONEq(t, `[{"type":"function"}]`, string(bundle.server.Requests()[0].Tools))
	})

	t.Run("MissingToolCallIDsAreGenerated", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: `{"id":"x","model":"m","choices":[{"index":0,` +
			`"message":{"role":"assistant","content":null,"tool_calls":[` +
			`{"function":{"name":"a","arguments":"{}"}},{"function":{"name":"b","arguments":"{}"}}]},` +
			`"finish_reason":"tool_calls"}]}`})

		completion, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.NoError(t, err)
		calls := completion.Choices[0].Message.ToolCalls
		require.Len(t, calls, 2)
		for _, call := range calls {
			require.True(t, strings.HasPrefix(call.ID, "call_"), call.ID)
			require.Equal(t, "function", call.Type)
		}
		require.NotEqual(t, calls[0].ID, calls[1].ID)
	})

	t.Run("ErrorObjectWithStatus200", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: `{"error":{"message":"provider down","code":502}}`})

		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		var apiErr *llm.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusOK, apiErr.StatusCode)
		require.Equal(t, "provider down", apiErr.Message)
		require.Equal(t, "502", apiErr.Code)
	})

	t.Run("NothingScripted", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)

		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		var apiErr *llm.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusInternalServerError, apiErr.StatusCode)
		require.Equal(t, "llmtest: no scripted response", apiErr.Message)
		require.Equal(t, "upstream model returned HTTP 500: llmtest: no scripted response (type server_error)", err.Error())
	})

	t.Run("InvalidBody", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)

		_, err := client.Complete(ctx, []byte(`[]`), llm.CallOptions{})
		require.ErrorContains(t, err, "request body must be a JSON object")
		require.Empty(t, bundle.server.Requests())
	})

	t.Run("MalformedAnswer", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: `{"choices":`})

		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.ErrorContains(t, err, "error decoding upstream completion")
	})

	t.Run("AnswerTooLarge", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		client, err := llm.New(llm.Config{BaseURL: server.URL(), MaxResponseBytes: 1024})
		require.NoError(t, err)
		server.Enqueue(llmtest.Response{Content: strings.Repeat("x", 2000)})

		_, err = client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.ErrorContains(t, err, "upstream response is larger than 1024 bytes")
	})

	t.Run("NetworkFailure", func(t *testing.T) {
		t.Parallel()
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := listener.Addr().String()
		require.NoError(t, listener.Close())

		client, err := llm.New(llm.Config{BaseURL: "http://" + addr + "/v1"})
		require.NoError(t, err)
		_, err = client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.ErrorContains(t, err, "error calling upstream model: ")
		var opErr *net.OpError
		require.ErrorAs(t, err, &opErr)
	})
}

func TestStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// collect returns an onChunk that records every chunk and checks that raw and parsed agree.
	collect := func(t *testing.T, chunks *[]*llm.Chunk) func([]byte, *llm.Chunk) error {
		return func(raw []byte, chunk *llm.Chunk) error {
			var reparsed llm.Chunk
			require.NoError(t, json.Unmarshal(raw, &reparsed))
			require.Equal(t, chunk, &reparsed)
			*chunks = append(*chunks, chunk)
			return nil
		}
	}

	t.Run("ContentAndUsage", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		content := "The quick brown fox jumps over the lazy dog — ünïcode ✓"
		bundle.server.Enqueue(llmtest.Response{Content: content})

		var chunks []*llm.Chunk
		completion, err := client.Stream(ctx,
			[]byte(`{"model":"gpt-s","stream_options":{"include_usage":true},"x":[ 1 ]}`),
			llm.CallOptions{}, collect(t, &chunks))
		require.NoError(t, err)

		require.Equal(t, content, completion.Content())
		require.Equal(t, "stop", completion.Choices[0].FinishReason)
		require.Equal(t, "assistant", completion.Choices[0].Message.Role)
		require.Equal(t, "gpt-s", completion.Model)
		require.Equal(t, "chatcmpl-llmtest-1", completion.ID)
		wantUsage := llmtest.DefaultUsage()
		require.Equal(t, &wantUsage, completion.Usage)

		var contentChunks int
		for _, c := range chunks {
			if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
				contentChunks++
			}
		}
		require.Greater(t, contentChunks, 3, "content should arrive in several deltas")
		require.Nil(t, chunks[0].Usage)
		require.Equal(t, &wantUsage, chunks[len(chunks)-1].Usage)

		var raw llm.Completion
		require.NoError(t, json.Unmarshal(completion.Raw, &raw))
		require.Equal(t, content, raw.Content())
		require.Contains(t, string(completion.Raw), `"object":"chat.completion"`)

		req := bundle.server.Requests()[0]
		require.True(t, req.Stream)
		require.True(t, req.IncludeUsage)
		require.Contains(t, string(req.Body), `"x":[ 1 ]`)
		require.Equal(t, "text/event-stream", req.Header.Get("Accept"))
	})

	t.Run("NoUsageUnlessAsked", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Content: "hi"})

		completion, err := client.Stream(ctx, []byte(`{"stream":false}`), llm.CallOptions{}, nil)
		require.NoError(t, err)
		require.Equal(t, "hi", completion.Content())
		require.Nil(t, completion.Usage)
		require.True(t, bundle.server.Requests()[0].Stream)
		require.False(t, bundle.server.Requests()[0].IncludeUsage)
	})

	t.Run("ToolCallsAssembledFromFragments", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{
			Content: "Let me look.",
			ToolCalls: []llmtest.ToolCall{
				{ID: "call_a", Name: "notion__search", Arguments: `{"query":"quarterly roadmap","limit":5}`},
				{Name: "github__get_issue", Arguments: `{"owner":"mcpidp","repo":"mcpidp","number":42}`},
			},
		})

		var chunks []*llm.Chunk
		completion, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, collect(t, &chunks))
		require.NoError(t, err)

		var argFragments int
		for _, c := range chunks {
			for _, choice := range c.Choices {
				for _, d := range choice.Delta.ToolCalls {
					if d.Function.Arguments != "" {
						argFragments++
					}
				}
			}
		}
		require.Greater(t, argFragments, 4, "arguments should arrive in several fragments")

		msg := completion.Choices[0].Message
		require.Equal(t, "Let me look.", msg.Content)
		require.Equal(t, "tool_calls", completion.Choices[0].FinishReason)
		require.Len(t, msg.ToolCalls, 2)
		require.Equal(t, llm.ToolCall{ID: "call_a", Type: "function", Function: llm.FunctionCall{
			Name: "notion__search", Arguments: `{"query":"quarterly roadmap","limit":5}`,
		}}, msg.ToolCalls[0])
		require.NotEmpty(t, msg.ToolCalls[1].ID)
		require.NotEqual(t, "call_a", msg.ToolCalls[1].ID)
		require.Equal(t, "github__get_issue", msg.ToolCalls[1].Function.Name)
		require.JSONEq(t, `{"owner":"mcpidp","repo":"mcpidp","number":42}`, msg.ToolCalls[1].Function.Arguments)
	})

	t.Run("ProviderQuirks", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		// Comments, event and id lines, CRLF endings, a data field split over two lines, tool call
		// deltas without index, a repeated function name, two events without a blank line between
		// them, a running usage total, and no [DONE] before the end of the body.
		sse := ": OPENROUTER PROCESSING\r\n\r\n" +
			"event: message\r\nid: 1\r\n" +
			`data: {"id":"q1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}` + "\r\n\r\n" +
			`data: {"id":"q1","choices":[{"index":0,` + "\n" + `data: "delta":{"content":"lo"}}]}` + "\n\n" +
			`data: {"id":"q1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\n" +
			`data: {"id":"q1","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"f","arguments":"1}"}}]}}]}` + "\n" +
			`data: {"id":"q1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"t2","function":{"name":"g","arguments":"{}"}}]}}]}` + "\n\n" +
			`data: {"id":"q1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}` + "\n"
		bundle.server.Enqueue(llmtest.Response{Body: sse})

		var chunks []*llm.Chunk
		completion, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, collect(t, &chunks))
		require.NoError(t, err)
		require.Len(t, chunks, 6)

		msg := completion.Choices[0].Message
		require.Equal(t, "Hello", msg.Content)
		require.Equal(t, []llm.ToolCall{
			{ID: "t1", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: `{"a":1}`}},
			{ID: "t2", Type: "function", Function: llm.FunctionCall{Name: "g", Arguments: `{}`}},
		}, msg.ToolCalls)
		require.Equal(t, "tool_calls", completion.Choices[0].FinishReason)
		require.Equal(t, &llm.Usage{PromptTokens: 4, CompletionTokens: 6, TotalTokens: 10}, completion.Usage)
		require.Equal(t, "q1", completion.ID)
	})

	t.Run("SeveralChoices", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: "" +
			`data: {"id":"c","choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A"}}]}` + "\n\n" +
			`data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"},{"index":1,"delta":{"content":"b"},"finish_reason":"length"}]}` + "\n\n" +
			"data: [DONE]\n\n" +
			`data: {"id":"c","choices":[{"index":0,"delta":{"content":"ignored after DONE"}}]}` + "\n\n"})

		completion, err := client.Stream(ctx, []byte(`{"n":2}`), llm.CallOptions{}, nil)
		require.NoError(t, err)
		require.Len(t, completion.Choices, 2)
		require.Equal(t, llm.Choice{Index: 0, Message: llm.Message{Role: "assistant", Content: "Aa"}, FinishReason: "stop"}, completion.Choices[0])
		require.Equal(t, llm.Choice{Index: 1, Message: llm.Message{Role: "assistant", Content: "Bb"}, FinishReason: "length"}, completion.Choices[1])
	})

	t.Run("ErrorEventInStream", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: "" +
			`data: {"id":"c","choices":[{"index":0,"delta":{"content":"partial"}}]}` + "\n\n" +
			`data: {"error":{"message":"overloaded","type":"server_error"}}` + "\n\n"})

		var chunks []*llm.Chunk
		_, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, collect(t, &chunks))
		var apiErr *llm.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "overloaded", apiErr.Message)
		require.Equal(t, `{"error":{"message":"overloaded","type":"server_error"}}`, string(apiErr.Body))
		require.Len(t, chunks, 1)
	})

	t.Run("PlainJSONAnswer", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{
			Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
			Body: `{"id":"j","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"whole",` +
				`"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],` +
				`"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
		})

		var chunks []*llm.Chunk
		completion, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, collect(t, &chunks))
		require.NoError(t, err)
		require.Equal(t, "whole", completion.Content())
		require.Len(t, chunks, 1)
		require.Equal(t, "whole", chunks[0].Choices[0].Delta.Content)
		require.Equal(t, "c1", chunks[0].Choices[0].Delta.ToolCalls[0].ID)
		require.Equal(t, "tool_calls", *chunks[0].Choices[0].FinishReason)
		require.Equal(t, 3, chunks[0].Usage.TotalTokens)
	})

	t.Run("CallbackErrorAbortsUpstream", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Content: strings.Repeat("abcdefgh", 20), ChunkDelay: 20 * time.Millisecond})

		errStop := errors.New("client went away")
		calls := 0
		_, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, func([]byte, *llm.Chunk) error {
			calls++
			if calls == 2 {
				return errStop
			}
			return nil
		})
		require.ErrorIs(t, err, errStop)
		require.Equal(t, 2, calls)
		require.Eventually(t, func() bool { return bundle.server.Canceled() == 1 }, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("EventTooLarge", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		client, err := llm.New(llm.Config{BaseURL: server.URL(), MaxResponseBytes: 1024})
		require.NoError(t, err)
		server.Enqueue(llmtest.Response{Body: "data: " + strings.Repeat("x", 4096) + "\n\n"})

		_, err = client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, nil)
		require.ErrorContains(t, err, "larger than 1024 bytes")
	})

	t.Run("AssembledTextTooLarge", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		client, err := llm.New(llm.Config{BaseURL: server.URL(), MaxResponseBytes: 1024})
		require.NoError(t, err)
		server.Enqueue(llmtest.Response{Content: strings.Repeat("y", 2048)})

		_, err = client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, nil)
		require.ErrorContains(t, err, "upstream stream is larger than 1024 bytes")
	})

	t.Run("MalformedChunk", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Body: "data: {not json}\n\n"})

		_, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, nil)
		require.ErrorContains(t, err, "error decoding upstream stream chunk")
	})
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	rateLimited := llmtest.Response{
		Status:  http.StatusTooManyRequests,
		Content: "Rate limit reached for gpt-4.1",
		Header:  http.Header{"Retry-After": {"7"}, "X-Ratelimit-Remaining-Requests": {"0"}},
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		var apiErr *llm.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusTooManyRequests, apiErr.StatusCode)
		require.Equal(t, "7", apiErr.Header.Get("Retry-After"))
		require.Equal(t, "0", apiErr.Header.Get("X-Ratelimit-Remaining-Requests"))
		require.JSONEq(t, `{"error":{"message":"Rate limit reached for gpt-4.1","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, string(apiErr.Body))
		require.Equal(t, "Rate limit reached for gpt-4.1", apiErr.Message)
		require.Equal(t, "requests", apiErr.Type)
		require.Equal(t, "rate_limit_exceeded", apiErr.Code)
		require.Empty(t, apiErr.Param)
		require.True(t, apiErr.Retryable())
		wait, ok := apiErr.RetryAfter(time.Now())
		require.True(t, ok)
		require.Equal(t, 7*time.Second, wait)
		require.Equal(t, "upstream model returned HTTP 429: Rate limit reached for gpt-4.1 (type requests, code rate_limit_exceeded)", err.Error())
	}

	t.Run("Complete429", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(rateLimited)
		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		check(t, err)
	})

	t.Run("Stream429", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(rateLimited)
		called := false
		_, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, func([]byte, *llm.Chunk) error {
			called = true
			return nil
		})
		check(t, err)
		require.False(t, called)
	})

	t.Run("NonOpenAIBody", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Status: http.StatusBadGateway, Body: "<html>bad gateway</html>"})
		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		var apiErr *llm.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "<html>bad gateway</html>", string(apiErr.Body))
		require.Empty(t, apiErr.Message)
		require.Equal(t, "upstream model returned HTTP 502: <html>bad gateway</html>", err.Error())
		require.True(t, apiErr.Retryable())
		_, ok := apiErr.RetryAfter(time.Now())
		require.False(t, ok)
	})

	t.Run("RetryAfterForms", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, tt := range []struct {
			header http.Header
			want   time.Duration
			ok     bool
		}{
			{header: http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"9"}}, want: 1500 * time.Millisecond, ok: true},
			{header: http.Header{"Retry-After": {"0.5"}}, want: 500 * time.Millisecond, ok: true},
			{header: http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, want: 30 * time.Second, ok: true},
			{header: http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, want: 0, ok: true},
			{header: http.Header{"Retry-After": {"soon"}}, ok: false},
			{header: nil, ok: false},
		} {
			wait, ok := (&llm.APIError{StatusCode: 429, Header: tt.header}).RetryAfter(now)
			require.Equal(t, tt.ok, ok, "header %v", tt.header)
			require.Equal(t, tt.want, wait, "header %v", tt.header)
		}
		require.False(t, (&llm.APIError{StatusCode: 400}).Retryable())
		require.False(t, (&llm.APIError{StatusCode: 401}).Retryable())
		require.True(t, (&llm.APIError{StatusCode: 503}).Retryable())
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()

	t.Run("CompleteBlocked", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Block: true})

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
			errc <- err
		}()
		bundle.server.WaitRequests(t, 1, 5*time.Second)
		require.Equal(t, 0, bundle.server.Canceled())
		cancel()

		select {
		case err := <-errc:
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorContains(t, err, "error calling upstream model")
		case <-time.After(5 * time.Second):
			t.Fatal("Complete did not return after cancel")
		}
		require.Eventually(t, func() bool { return bundle.server.Canceled() == 1 }, 5*time.Second, 5*time.Millisecond)
	})

	t.Run("StreamMidway", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Content: strings.Repeat("abcdefgh", 50), ChunkDelay: 10 * time.Millisecond})

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		chunks := 0
		_, err := client.Stream(ctx, []byte(`{}`), llm.CallOptions{}, func([]byte, *llm.Chunk) error {
			chunks++
			if chunks == 3 {
				cancel()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 3, chunks)
		require.Eventually(t, func() bool { return bundle.server.Canceled() == 1 }, 5*time.Second, 5*time.Millisecond)
	})

	t.Run("DeadlineDuringDelay", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.server.Enqueue(llmtest.Response{Content: "late", Delay: 10 * time.Second})

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := client.Complete(ctx, []byte(`{}`), llm.CallOptions{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 5*time.Second)
		require.Eventually(t, func() bool { return bundle.server.Canceled() == 1 }, 5*time.Second, 5*time.Millisecond)
	})
}

func TestForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Models", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)

		resp, err := client.Forward(ctx, http.MethodGet, "/models", nil, llm.CallOptions{})
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		require.Equal(t, "list", list.Object)
		require.Equal(t, llmtest.Model, list.Data[0].ID)
	})

	t.Run("PassesThroughUnchanged", func(t *testing.T) {
		t.Parallel()
		type seen struct {
			method, uri, auth, contentType, body string
		}
		got := make(chan seen, 1)
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			got <- seen{r.Method, r.RequestURI, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)}
			w.Header().Set("X-Upstream", "yes")
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, `{"error":{"message":"short and stout"}}`)
		}))
		t.Cleanup(upstream.Close)

		client, err := llm.New(llm.Config{BaseURL: upstream.URL + "/v1", APIKey: "sk-default"})
		require.NoError(t, err)
		resp, err := client.Forward(ctx, http.MethodPost, "embeddings?x=1", strings.NewReader(`{"input":"a"}`), llm.CallOptions{
			APIKey: "sk-call",
			Header: http.Header{"Content-Type": {"application/json"}},
		})
		require.NoError(t, err)
		defer resp.Body.Close()

		require.Equal(t, http.StatusTeapot, resp.StatusCode)
		require.Equal(t, "yes", resp.Header.Get("X-Upstream"))
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, `{"error":{"message":"short and stout"}}`, string(body))
		require.Equal(t, seen{
			method: http.MethodPost, uri: "/v1/embeddings?x=1", auth: "Bearer sk-call",
			contentType: "application/json", body: `{"input":"a"}`,
		}, <-got)
	})

	// A pass-through request goes out as a reverse proxy sends it: to the
	// base URL's path plus the call's, and an upstream's redirect comes
	// back to the caller instead of being followed.
	t.Run("PlainPathAndRedirectPassedBack", func(t *testing.T) {
		t.Parallel()
		var uris []string
		var mu sync.Mutex
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			uris = append(uris, r.RequestURI)
			mu.Unlock()
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(upstream.Close)

		client, err := llm.New(llm.Config{BaseURL: upstream.URL + "/api/v1/"})
		require.NoError(t, err)
		resp, err := client.Forward(ctx, http.MethodPost, "/chat/completions", strings.NewReader(`{}`), llm.CallOptions{})
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
		require.Equal(t, "/elsewhere", resp.Header.Get("Location"))
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []string{"/api/v1/chat/completions"}, uris)
	})
}

// An upstream base URL's userinfo is its credentials: without an API key,
// a pass-through request carries them as Basic auth, as every other call
// does through http.Client (which a bare transport would not add).
func TestForwardBaseURLUserinfo(t *testing.T) {
	t.Parallel()
	auths := make(chan string, 2)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(upstream.Close)
	base := strings.Replace(upstream.URL, "http://", "http://gw-user:gw%20pass@", 1) + "/v1"
	client, err := llm.New(llm.Config{BaseURL: base})
	require.NoError(t, err)
	for _, path := range []string{"/models", "/models?x=1"} {
		resp, err := client.Forward(context.Background(), http.MethodGet, path, nil, llm.CallOptions{})
		require.NoError(t, err)
		resp.Body.Close()
		user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {<-auths}}}).BasicAuth()
		require.True(t, ok, path)
		require.Equal(t, "gw-user", user)
		require.Equal(t, "gw pass", pass)
	}
}
