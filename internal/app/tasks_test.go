package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// echoThenAnswer makes the model call the echo tool once, then answer with
// the tool's output.
func echoThenAnswer(t testing.TB, message string) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "The tool said: " + last.Content}
		}
		args, _ := json.Marshal(map[string]string{"message": message})
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: string(args)}}}
	}
}

func TestTaskCallsMCPToolAndPublishesResult(t *testing.T) {
	t.Parallel()
	for name, transport := range map[string]mcptest.Transport{"streamable": mcptest.StreamableHTTP, "sse": mcptest.SSE} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backends(t, func(t *testing.T, databaseURL string) {
				env := startEnv(t, databaseURL)
				mcp := mcptest.New(t, transport)
				env.Model.Handle(echoThenAnswer(t, "hello from a task"))

				start := time.Now()
				tk := env.submit(t, keyAcme, map[string]any{
					"user":        "alice@example.com",
					"model":       "gpt-test",
					"input":       "Echo something",
					"temperature": 0.2,
					"tools":       []map[string]any{{"type": "mcp", "url": mcp.URL, "allowed_tools": []string{"echo"}}},
					"metadata":    map[string]any{"order": 42},
				})
				require.Less(t, time.Since(start), 2*time.Second, "submit answers at once")
				require.Equal(t, "queued", tk.Status)
				require.Regexp(t, `^http://127\.0\.0\.1:\d+/r/[A-Za-z0-9_-]{43}\.json$`, tk.ResultURLs.JSON)
				require.NotContains(t, tk.ResultURLs.JSON, tk.ID, "the result URL does not reveal the task id")

				done := waitDone(t, tk)
				require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
				require.Equal(t, "The tool said: echo: hello from a task", done.Output.Content)
				require.Equal(t, []string{"hello from a task"}, mcp.Calls("echo"))
				require.Len(t, done.Steps, 3)
				require.Equal(t, "tool", done.Steps[1].Type)
				require.Equal(t, "echo", done.Steps[1].Tool)
				require.Equal(t, mcp.URL, done.Steps[1].ServerURL)
				require.JSONEq(t, `{"message":"hello from a task"}`, string(done.Steps[1].Arguments))
				require.Positive(t, done.Usage.TotalTokens)
				require.Contains(t, done.Output.Markdown, "<details><summary>🔧 echo")

				reqs := env.Model.Requests()
				require.Len(t, reqs, 2)
				require.Contains(t, string(reqs[0].Body), `"temperature":0.2`, "unknown fields pass through to the model")
				require.NotContains(t, string(reqs[0].Body), "metadata")
				require.Equal(t, "Bearer upstream-key", reqs[0].Header.Get("Authorization"))

				status, md, hdr := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
				require.Equal(t, http.StatusOK, status)
				require.Contains(t, hdr.Get("Content-Type"), "text/markdown")
				require.Contains(t, string(md), "**Status:** completed")
				require.Contains(t, string(md), "Echo something")
				require.Contains(t, string(md), "The tool said: echo: hello from a task")

				status, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
				require.Equal(t, http.StatusOK, status)
				require.Contains(t, string(raw), `"metadata":{"order":42}`)
			})
		})
	}
}

// The official reference server, from npm: a task calls its echo tool.
func TestTaskWithServerEverything(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(echoThenAnswer(t, "hi everything"))
		tk := env.submit(t, keyAcme, map[string]any{
			"user": "bob", "model": "gpt-test", "input": "Use echo",
			"tools": []map[string]any{{"type": "mcp", "server_url": everything}},
		})
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Contains(t, done.Output.Content, "hi everything")
		status, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(md), "hi everything")
	})
}

func TestStoreFalseResultsExpire(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "done"} })
		ephemeral := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x"}))
		kept := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x", "store": true}))
		require.Equal(t, "completed", ephemeral.Status)
		require.NotNil(t, ephemeral.ExpiresAt)
		require.Nil(t, kept.ExpiresAt)

		env.Clock.Add(23 * time.Hour)
		status, _, _ := call(t, "GET", ephemeral.ResultURLs.JSON, "", nil)
		require.Equal(t, http.StatusOK, status, "still there before 24h")

		env.Clock.Add(time.Hour + time.Second)
		status, raw, _ := call(t, "GET", ephemeral.ResultURLs.JSON, "", nil)
		require.Equal(t, http.StatusNotFound, status, string(raw))
		status, _, _ = call(t, "GET", ephemeral.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _, _ = call(t, "GET", env.URL+"/v1/tasks/"+ephemeral.ID, keyAcme, nil)
		require.Equal(t, http.StatusNotFound, status)

		n, err := env.App.Store().DeleteExpiredTasks(context.Background(), env.App.Store().DB())
		require.NoError(t, err)
		require.Equal(t, 1, n, "the cleanup deletes the expired task only")
		status, _, _ = call(t, "GET", kept.ResultURLs.JSON, "", nil)
		require.Equal(t, http.StatusOK, status, "store:true results are kept")
	})
}

func TestIdempotentSubmit(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "once"} })
		body := map[string]any{"user": "u", "model": "m", "input": "x"}
		var wg sync.WaitGroup
		ids := make([]string, 5)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i] = env.submit(t, keyAcme, body, "Idempotency-Key", "order-7").ID
			}()
		}
		wg.Wait()
		for _, id := range ids {
			require.Equal(t, ids[0], id, "the same key gives the same task")
		}
		other := env.submit(t, keyGlobex, body, "Idempotency-Key", "order-7")
		require.NotEqual(t, ids[0], other.ID, "keys are per tenant")

		waitDone(t, task{ID: ids[0], ResultURLs: other.ResultURLs})
		status, raw, _ := call(t, "GET", env.URL+"/v1/tasks?user=u", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		var list struct {
			Data []task `json:"data"`
		}
		require.NoError(t, json.Unmarshal(raw, &list))
		require.Len(t, list.Data, 1)
		done := waitDone(t, env.submit(t, keyAcme, body, "Idempotency-Key", "order-7"))
		require.Equal(t, "completed", done.Status)
		require.Len(t, env.Model.Requests(), 2, "one model call per task: the replays ran nothing")
	})
}

func TestCancelRunningTask(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Enqueue(llmtest.Response{Block: true})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x"})
		env.Model.WaitRequests(t, 1, 20*time.Second)

		status, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(raw), `"status":"canceled"`)
		require.Eventually(t, func() bool { return env.Model.Canceled() == 1 }, 10*time.Second, 20*time.Millisecond,
			"the model call in flight is abandoned")

		done := waitDone(t, tk)
		require.Equal(t, "canceled", done.Status)
		require.Empty(t, done.Steps)
		status, raw, _ = call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusConflict, status)
		require.Contains(t, string(raw), "already canceled")
		time.Sleep(300 * time.Millisecond)
		require.Len(t, env.Model.Requests(), 1, "nothing runs after cancel")
	})
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "a"} })
		tk := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "m", "input": "secret"}))

		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/tasks/" + tk.ID},
			{"POST", "/v1/tasks/" + tk.ID + "/cancel"},
			{"DELETE", "/v1/tasks/" + tk.ID},
		} {
			status, raw, _ := call(t, r.method, env.URL+r.path, keyGlobex, nil)
			require.Equal(t, http.StatusNotFound, status, r.method+" "+r.path)
			require.Contains(t, string(raw), `"code":"not_found"`)
		}
		status, raw, _ := call(t, "GET", env.URL+"/v1/tasks?user=alice", keyGlobex, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"data":[]`, "the same user string in another tenant is another user")
		status, _, _ = call(t, "GET", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status, "the owner still sees it")

		status, raw, _ = call(t, "DELETE", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"task.deleted","deleted":true}`, tk.ID), string(raw))
		status, _, _ = call(t, "GET", tk.ResultURLs.JSON, "", nil)
		require.Equal(t, http.StatusNotFound, status, "deleting a task removes its result URLs")
	})
}

func TestSSRFGuardRefusesPrivateMCPServers(t *testing.T) {
	t.Parallel()
	// A real server on loopback that would answer if it were reached.
	var hits sync.Map
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(target.Close)
	// The redirector is the one loopback address the guard lets through
	// (standing in for a public server); it redirects to the target.
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/redirected", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	allowed := netip.MustParseAddrPort(strings.TrimPrefix(redirector.URL, "http://"))
	port := strings.Split(target.URL, ":")[2]

	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) {
			o.env["MCPIDP_ALLOW_PRIVATE_NETWORKS"] = "false"
			o.opts.AllowAddrFunc = func(ap netip.AddrPort) bool { return ap == allowed }
		})
		for _, u := range []string{
			"http://127.0.0.1:" + port + "/mcp",
			"http://169.254.169.254/mcp",
			"http://[::1]:" + port + "/mcp",
			"http://localhost:" + port + "/mcp",
			redirector.URL + "/mcp",
		} {
			env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "should not run"} })
			done := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x", "tools": []map[string]any{{"type": "mcp", "url": u}}}))
			require.Equal(t, "failed", done.Status, u)
			require.Equal(t, "mcp_server_error", done.Error.Code, u)
			require.Contains(t, done.Error.Message, "not publicly routable", u)
		}
		require.Empty(t, env.Model.Requests(), "no model call for a task whose server is refused")
		hits.Range(func(k, _ any) bool {
			t.Errorf("the guarded target was reached at %v", k)
			return true
		})
	})
}
