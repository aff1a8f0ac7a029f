package llmtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("ScriptThenHandlerThenLoudFailure", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		require.True(t, strings.HasSuffix(server.URL(), "/v1"))
		require.True(t, strings.HasPrefix(server.URL(), "http://127.0.0.1:"))

		server.Enqueue(llmtest.Response{Content: "first"}, llmtest.Response{Content: "second"})
		decode := func(resp *http.Response) *llm.Completion {
			var c *llm.Completion
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&c))
			return c
		}
		require.Equal(t, "first", decode(post(t, server.URL(), `{"messages":[]}`)).Content())
		require.Equal(t, "second", decode(post(t, server.URL(), `{"messages":[]}`)).Content())

		resp := post(t, server.URL(), `{}`)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Contains(t, string(body), "llmtest: no scripted response")

		server.Handle(func(req llmtest.Request) llmtest.Response {
			return llmtest.Response{Content: "echo: " + req.Messages[len(req.Messages)-1].Content}
		})
		c := decode(post(t, server.URL(), `{"model":"x","messages":[{"role":"user","content":"ping"}]}`))
		require.Equal(t, "echo: ping", c.Content())
		require.Equal(t, "x", c.Model)
		require.Equal(t, llmtest.DefaultUsage(), *c.Usage)

		// The script still comes before the handler.
		server.Enqueue(llmtest.Response{Content: "scripted"})
		require.Equal(t, "scripted", decode(post(t, server.URL(), `{"messages":[{"role":"user","content":"ping"}]}`)).Content())

		reqs := server.Requests()
		require.Len(t, reqs, 5)
		require.Equal(t, "x", reqs[3].Model)
		reqs[0].Model = "changed"
		require.Empty(t, server.Requests()[0].Model, "Requests must return a copy")
	})

	t.Run("RawStreamFormat", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		server.Enqueue(llmtest.Response{
			Content:   "0123456789abcdef!",
			ToolCalls: []llmtest.ToolCall{{Name: "f", Arguments: `{"k":"0123456789"}`}},
			Usage:     &llm.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2},
		})

		resp := post(t, server.URL(), `{"stream":true,"stream_options":{"include_usage":true}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

		var events []string
		scanner := bufio.NewScanner(resp.Body)
		for scanner.Scan() {
			if line := scanner.Text(); line != "" {
				require.True(t, strings.HasPrefix(line, "data: "), line)
				events = append(events, strings.TrimPrefix(line, "data: "))
			}
		}
		require.NoError(t, scanner.Err())

		// role, 3 content pieces, tool call head, 3 argument pieces, finish, usage, [DONE]
		require.Len(t, events, 11)
		require.JSONEq(t, `{"role":"assistant","content":""}`, delta(t, events[0]))
		require.JSONEq(t, `{"content":"01234567"}`, delta(t, events[1]))
		require.JSONEq(t, `{"content":"!"}`, delta(t, events[3]))
		require.JSONEq(t, `{"tool_calls":[{"index":0,"id":"call_llmtest_2","type":"function","function":{"name":"f","arguments":""}}]}`, delta(t, events[4]))
		require.JSONEq(t, `{"tool_calls":[{"index":0,"function":{"arguments":"{\"k\":\"01"}}]}`, delta(t, events[5]))
		require.Contains(t, events[8], `"finish_reason":"tool_calls"`)
		require.Contains(t, events[9], `"choices":[],`)
		require.Contains(t, events[9], `"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}`)
		require.Equal(t, "[DONE]", events[10])
	})

	t.Run("WaitRequests", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		server.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "ok"} })

		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				time.Sleep(20 * time.Millisecond)
				resp, err := http.Post(server.URL()+"/chat/completions", "application/json", strings.NewReader(`{}`))
				if err == nil {
					resp.Body.Close()
				}
			})
		}
		require.Len(t, server.WaitRequests(t, 3, 5*time.Second), 3)
		wg.Wait()
	})

	t.Run("BlockEndsWhenClientLeaves", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)
		server.Enqueue(llmtest.Response{Block: true})

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, server.URL()+"/chat/completions", strings.NewReader(`{}`))
		require.NoError(t, err)
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Eventually(t, func() bool { return server.Canceled() == 1 }, 5*time.Second, 5*time.Millisecond)
	})

	t.Run("BadRequestAndUnknownRoute", func(t *testing.T) {
		t.Parallel()
		server := llmtest.NewServer(t)

		resp := post(t, server.URL(), `not json`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Empty(t, server.Requests())

		resp, err := http.Get(server.URL() + "/embeddings")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestRequestOfferedTool(t *testing.T) {
	t.Parallel()
	server := llmtest.NewServer(t)
	server.Enqueue(llmtest.Response{Content: "ok"})
	resp := post(t, server.URL(), `{"messages":[{"role":"user","content":"hi"}],"tools":[`+
		`{"type":"function","function":{"name":"get_weather"}},`+
		`{"type":"function","function":{"name":"notion__create_page"}}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	req := server.Requests()[0]

	rec := &errorRecorder{TB: t}
	require.Equal(t, "notion__create_page", req.OfferedTool(rec, "create_page"))
	require.Empty(t, rec.errors)

	require.Empty(t, req.OfferedTool(rec, "weather"), "only the suffix after the server's \"__\" counts")
	require.Len(t, rec.errors, 1)
	require.Contains(t, rec.errors[0], `tool "weather" was not offered`)

	require.Empty(t, llmtest.Request{}.OfferedTool(rec, "create_page"), "a request without tools offers none")
	require.Len(t, rec.errors, 2)
}

// errorRecorder records the errors reported on it instead of failing the test, so that a test
// can check that a helper fails the test it is given.
type errorRecorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *errorRecorder) Helper() {}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// delta returns the delta of the first choice of a raw chunk.
func delta(t *testing.T, event string) string {
	t.Helper()
	var chunk struct {
		Object  string `json:"object"`
		Choices []struct {
			Delta json.RawMessage `json:"delta"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal([]byte(event), &chunk))
	require.Equal(t, "chat.completion.chunk", chunk.Object)
	require.Len(t, chunk.Choices, 1)
	return string(chunk.Choices[0].Delta)
}
