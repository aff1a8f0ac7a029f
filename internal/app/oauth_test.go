package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

func TestOAuthExampleServerLoginThenTask(t *testing.T) {
	t.Parallel()
	server := testenv.StartOAuthExample(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			if last.Role == "tool" {
				return llmtest.Response{Content: "Server said: " + last.Content}
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "greet"), Arguments: `{"name":"Alice"}`}}}
		})
		taskBody := map[string]any{"user": "alice", "model": "m", "input": "greet me",
			"tools": []map[string]any{{"type": "mcp", "url": server}}}

		// Without a login the task waits, and says where to log in.
		waiting := waitStatus(t, env.submit(t, keyAcme, taskBody), "awaiting_authorization")
		require.Len(t, waiting.AuthorizationRequired, 1)
		require.Equal(t, server, waiting.AuthorizationRequired[0].ServerURL)
		require.True(t, strings.HasPrefix(waiting.AuthorizationRequired[0].AuthorizationURL, env.URL+"/oauth/start/"))
		status, md, _ := call(t, "GET", waiting.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(md), "[Log in to localhost:")

		// Connect ahead of time through the Connections API.
		status, raw, _ := call(t, "POST", env.URL+"/v1/connections", keyAcme, map[string]any{"user": "alice", "server_url": server})
		require.Equal(t, http.StatusOK, status, string(raw))
		var connect struct {
			AuthorizationURL string `json:"authorization_url"`
		}
		require.NoError(t, json.Unmarshal(raw, &connect))
		require.True(t, strings.HasPrefix(connect.AuthorizationURL, env.URL+"/oauth/start/"))

		status, page := testenv.FollowLogin(t, connect.AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)
		require.Contains(t, page, "You&#39;ve authorized localhost:")

		status, raw, _ = call(t, "GET", env.URL+"/v1/connections?user=alice", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		var conns struct {
			Data []struct {
				ID, ServerURL, Status string
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(raw, &conns))
		require.Len(t, conns.Data, 1)
		require.Equal(t, "active", conns.Data[0].Status)
		status, raw, _ = call(t, "GET", env.URL+"/v1/connections?user=alice", keyGlobex, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"data":[]`, "another tenant's alice has no connection")
		status, raw, _ = call(t, "GET", env.URL+"/v1/connections?user=bob", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"data":[]`)

		// Any login to that server resumes the waiting task, which then
		// runs with alice's token; so does a new one.
		resumed := waitDone(t, waiting)
		require.Equal(t, "completed", resumed.Status, "error: %+v", resumed.Error)
		require.Contains(t, resumed.Output.Content, "Hello, Alice!")
		done := waitDone(t, env.submit(t, keyAcme, taskBody))
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Contains(t, done.Output.Content, "Hello, Alice!")

		// Bob is another user: no token is ever sent for him.
		bob := taskBody
		bob["user"] = "bob"
		bobWaiting := waitStatus(t, env.submit(t, keyAcme, bob), "awaiting_authorization")
		status, raw, _ = call(t, "POST", env.URL+"/v1/tasks/"+bobWaiting.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusOK, status, "a waiting task can be canceled: %s", raw)

		// The login link can be reused while it is valid, the callback state cannot.
		status, raw, _ = call(t, "GET", env.URL+"/oauth/callback?"+url.Values{"state": {"forged"}, "code": {"x"}}.Encode(), "", nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), "expired or was already used")

		status, _, _ = call(t, "DELETE", env.URL+"/v1/connections/"+conns.Data[0].ID, keyGlobex, nil)
		require.Equal(t, http.StatusNotFound, status, "another tenant cannot revoke it")
		status, raw, _ = call(t, "DELETE", env.URL+"/v1/connections/"+conns.Data[0].ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		status, raw, _ = call(t, "GET", env.URL+"/v1/connections?user=alice", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"data":[]`)
		waitStatus(t, env.submit(t, keyAcme, taskBody), "awaiting_authorization")

		status, raw, _ = call(t, "POST", env.URL+"/v1/connections", keyAcme, map[string]any{"user": "alice", "server_url": "ftp://x"})
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), `"param":"server_url"`)
		status, raw, _ = call(t, "GET", env.URL+"/oauth/start/nosuchlogin", "", nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Contains(t, string(raw), "expired")
	})
}

// 50 tasks of one user start at once with an expired access token: the
// authorization server sees exactly one refresh (with rotation and reuse
// detection, a second one would fail), and every task completes.
func TestConcurrentTasksShareOneRefresh(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		env.Model.Handle(echoOnce(t))
		body := map[string]any{"user": "dora", "model": "m", "input": "hi", "tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}
		status, raw, _ := call(t, "POST", env.URL+"/v1/connections", keyAcme, map[string]any{"user": "dora", "server_url": mcp.URL})
		require.Equal(t, http.StatusOK, status, string(raw))
		var connect struct {
			AuthorizationURL string `json:"authorization_url"`
		}
		require.NoError(t, json.Unmarshal(raw, &connect))
		status, page := testenv.FollowLogin(t, connect.AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)

		env.Clock.Add(2 * time.Hour) // the access token has expired
		const n = 50
		tasks := make([]task, n)
		var wg sync.WaitGroup
		for i := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tasks[i] = env.submit(t, keyAcme, body)
			}()
		}
		wg.Wait()
		for _, tk := range tasks {
			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		}
		require.Equal(t, 1, as.Count("refresh"), "one refresh for all tasks")
		require.Len(t, mcp.Calls("echo"), n)
	})
}
