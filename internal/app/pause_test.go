package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// echoOnce answers each task with one echo call of the task's own input,
// then with the tool's output.
func echoOnce(t testing.TB) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "Tool said: " + last.Content}
		}
		args, _ := json.Marshal(map[string]string{"message": req.Messages[0].Content})
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: string(args)}}}
	}
}

// The whole story against the OAuth example server of the MCP SDK: the task
// pauses, the login link reaches the callback (signed), the user logs in,
// the task resumes and completes, and the completion webhook arrives signed
// (verified in Go and by the standardwebhooks library in Node).
func TestPausedTaskResumesAfterLoginFullStory(t *testing.T) {
	t.Parallel()
	server := testenv.StartOAuthExample(t)
	node := startNodeReceiver(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, node)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			if last.Role == "tool" {
				return llmtest.Response{Content: "Server said: " + last.Content}
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "greet"), Arguments: `{"name":"Ada"}`}}}
		})
		tk := env.submit(t, keyAcme, map[string]any{
			"user": "ada@example.com", "model": "m", "input": "greet me",
			"tools":                        []map[string]any{{"type": "mcp", "url": server}},
			"authorizationRequestCallback": recv.URL + "/auth-callback",
			"webhook":                      map[string]any{"url": recv.URL + "/webhooks"},
		})

		cb := recv.wait(t, "authorization.required", 0)
		require.Equal(t, "/auth-callback", cb.Path)
		require.Equal(t, http.StatusNoContent, cb.NodeStatus, "standardwebhooks verifies the callback")
		var data struct {
			TaskID           string `json:"task_id"`
			User             string `json:"user"`
			ServerURL        string `json:"server_url"`
			AuthorizationURL string `json:"authorization_url"`
			Message          string `json:"message"`
			ExpiresAt        string `json:"expires_at"`
			ResultURLs       struct {
				JSON string `json:"json"`
			} `json:"result_urls"`
		}
		require.NoError(t, json.Unmarshal(cb.Data, &data))
		require.Equal(t, tk.ID, data.TaskID)
		require.Equal(t, "ada@example.com", data.User)
		require.Equal(t, server, data.ServerURL)
		require.True(t, strings.HasPrefix(data.AuthorizationURL, env.URL+"/oauth/start/"))
		require.Contains(t, data.Message, data.AuthorizationURL)
		require.NotEmpty(t, data.ExpiresAt)
		require.Equal(t, tk.ResultURLs.JSON, data.ResultURLs.JSON)

		waiting := recv.wait(t, "task.authorization_required", 0)
		require.Equal(t, "/webhooks", waiting.Path)
		require.Contains(t, string(waiting.Data), `"status":"awaiting_authorization"`)

		status, page := testenv.FollowLogin(t, data.AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)

		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Contains(t, done.Output.Content, "Hello, Ada!")

		completed := recv.wait(t, "task.completed", 0)
		require.Equal(t, http.StatusNoContent, completed.NodeStatus, "standardwebhooks verifies the completion webhook")
		require.Contains(t, string(completed.Data), `"status":"completed"`)
		require.Contains(t, string(completed.Data), "Hello, Ada!")
		require.NotEqual(t, cb.Header.Get("webhook-id"), completed.Header.Get("webhook-id"))

		// The receiver has the webhook before its attempt is recorded:
		// wait for the record rather than race it.
		var raw []byte
		require.Eventually(t, func() bool {
			var status int
			status, raw, _ = call(t, "GET", env.URL+"/v1/tasks/"+tk.ID+"/deliveries", keyAcme, nil)
			require.Equal(t, http.StatusOK, status, string(raw))
			return strings.Count(string(raw), `"status":"delivered"`) == 3
		}, 10*time.Second, 20*time.Millisecond, "three deliveries recorded as delivered")
		require.Equal(t, 3, strings.Count(string(raw), `"status":"delivered"`), string(raw))
	})
}

func TestOneLoginResumesEveryWaitingTaskExactlyOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		env.Model.Handle(echoOnce(t))
		body := func(input string) map[string]any {
			return map[string]any{"user": "u1", "model": "m", "input": input, "tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}
		}
		a := waitStatus(t, env.submit(t, keyAcme, body("task a")), "awaiting_authorization")
		b := waitStatus(t, env.submit(t, keyAcme, body("task b")), "awaiting_authorization")
		require.NotEqual(t, a.AuthorizationRequired[0].AuthorizationURL, b.AuthorizationRequired[0].AuthorizationURL)

		// One login, through a's link, with the callback URL kept to replay.
		browser := testenv.NewBrowser(t)
		callbackURL := loginKeepingCallback(t, env, browser, a.AuthorizationRequired[0].AuthorizationURL)
		doneA, doneB := waitDone(t, a), waitDone(t, b)
		require.Equal(t, "completed", doneA.Status, "error: %+v", doneA.Error)
		require.Equal(t, "completed", doneB.Status, "error: %+v", doneB.Error)
		require.ElementsMatch(t, []string{"task a", "task b"}, mcp.Calls("echo"), "each tool call ran exactly once")
		models := len(env.Model.Requests())

		// A duplicate callback changes nothing, in the same browser or
		// another.
		status, page := browser.FollowLogin(t, callbackURL)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, page, "already used")
		status, raw, _ := call(t, "GET", callbackURL, "", nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), "started in another browser")
		time.Sleep(300 * time.Millisecond)
		require.Len(t, env.Model.Requests(), models)
		require.Len(t, mcp.Calls("echo"), 2)
		for _, tk := range []task{a, b} {
			status, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, string(raw), `"status":"completed"`)
		}
	})
}

// loginKeepingCallback follows a login link in browser like a user and
// returns the callback URL the authorization server sent it to.
func loginKeepingCallback(t testing.TB, env *testEnv, browser *testenv.Browser, link string) string {
	t.Helper()
	callback := browser.FollowUntil(t, link, env.URL+"/oauth/callback")
	status, page := browser.FollowLogin(t, callback)
	require.Equal(t, http.StatusOK, status, page)
	return callback
}

// A login that completes while a task is in the middle of pausing (after
// its challenge, before its pause commits) is not lost: the task resumes.
// The discovery of the second task is held until the login is done.
func TestLoginDuringPauseIsNotLost(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		var (
			mu      sync.Mutex
			hold    chan struct{}
			entered = make(chan struct{}, 10)
		)
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{PRMHookFunc: func() {
			mu.Lock()
			h := hold
			mu.Unlock()
			if h != nil {
				entered <- struct{}{}
				<-h
			}
		}})
		env.Model.Handle(echoOnce(t))
		for round := 0; round < 5; round++ {
			user := fmt.Sprintf("racer-%d", round)
			body := func(input string) map[string]any {
				return map[string]any{"user": user, "model": "m", "input": input, "tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}
			}
			first := waitStatus(t, env.submit(t, keyAcme, body(user+" first")), "awaiting_authorization")

			mu.Lock()
			hold = make(chan struct{})
			release := hold
			mu.Unlock()
			second := env.submit(t, keyAcme, body(user+" second"))
			select {
			case <-entered: // the second task met its challenge and is discovering
			case <-time.After(30 * time.Second):
				t.Fatal("the second task never started its login")
			}
			mu.Lock()
			hold = nil
			mu.Unlock()
			status, page := testenv.FollowLogin(t, first.AuthorizationRequired[0].AuthorizationURL)
			require.Equal(t, http.StatusOK, status, page)
			close(release)

			require.Equal(t, "completed", waitDone(t, first).Status)
			done := waitDone(t, second)
			require.Equal(t, "completed", done.Status, "round %d: the login during the pause was lost (%+v)", round, done.Error)
		}
		require.Len(t, mcp.Calls("echo"), 10)
	})
}

func TestAuthorizationTimeout(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, "")
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		env.Model.Handle(echoOnce(t))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "sleepy", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}, "webhook": map[string]any{"url": recv.URL}}), "awaiting_authorization")
		require.WithinDuration(t, env.Clock.Now().Add(24*time.Hour), tk.AuthorizationRequired[0].ExpiresAt, time.Minute)

		ctx := context.Background()
		timeoutJob := func() int64 {
			res, err := env.App.River().JobList(ctx, river.NewJobListParams().Kinds("task_authorization_timeout"))
			require.NoError(t, err)
			require.Len(t, res.Jobs, 1)
			return res.Jobs[0].ID
		}
		// Run the timeout job now: by the store's clock it is too early, so
		// it snoozes (it ran once and is scheduled again).
		id := timeoutJob()
		_, err := env.App.River().JobRetry(ctx, id)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			job, err := env.App.River().JobGet(ctx, id)
			return err == nil && job.AttemptedAt != nil && job.State == rivertype.JobStateScheduled
		}, 20*time.Second, 20*time.Millisecond, "the early timeout run snoozes")
		status, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"status":"awaiting_authorization"`, "not timed out before the link expires")

		env.Clock.Add(24*time.Hour + time.Second)
		_, err = env.App.River().JobRetry(ctx, timeoutJob())
		require.NoError(t, err)
		done := waitDone(t, tk)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "authorization_timeout", done.Error.Code)
		require.Contains(t, string(recv.wait(t, "task.failed", 0).Data), "authorization_timeout")

		// The expired link cannot resume it any more.
		status, page := testenv.FollowLogin(t, tk.AuthorizationRequired[0].AuthorizationURL)
		require.Equal(t, http.StatusNotFound, status, page)
		require.Empty(t, mcp.Calls("echo"))
	})
}

func TestCancelWaitingTaskCannotResume(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, "")
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		env.Model.Handle(echoOnce(t))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "quitter", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}, "webhook": map[string]any{"url": recv.URL}}), "awaiting_authorization")
		status, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(recv.wait(t, "task.canceled", 0).Data), `"status":"canceled"`)

		status, page := testenv.FollowLogin(t, tk.AuthorizationRequired[0].AuthorizationURL)
		require.Equal(t, http.StatusOK, status, "the login itself still works: %s", page)
		time.Sleep(500 * time.Millisecond)
		done := waitDone(t, tk)
		require.Equal(t, "canceled", done.Status)
		require.Empty(t, mcp.Calls("echo"), "a canceled task never resumes")
	})
}

// A refresh refused with invalid_grant marks the connection refresh_failed,
// announces it to the tenant's default webhook URL, and the next task asks
// for a new login.
func TestRefreshFailedIsAnnouncedAndLeadsToNewLogin(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		recv := newHookReceiver(t, "")
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_WEBHOOK_URL"] = recv.URL + "/tenant-hooks" })
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		env.Model.Handle(echoOnce(t))
		body := map[string]any{"user": "carol", "model": "m", "input": "hello", "tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}

		first := waitStatus(t, env.submit(t, keyAcme, body), "awaiting_authorization")
		status, page := testenv.FollowLogin(t, first.AuthorizationRequired[0].AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)
		require.Equal(t, "completed", waitDone(t, first).Status)
		require.Equal(t, "/tenant-hooks", recv.wait(t, "task.completed", 0).Path, "tasks without a webhook use the tenant's")

		as.RevokeAll()
		env.Clock.Add(2 * time.Hour) // the access token has expired
		second := waitStatus(t, env.submit(t, keyAcme, body), "awaiting_authorization")
		require.NotEmpty(t, second.AuthorizationRequired[0].AuthorizationURL)

		ev := recv.wait(t, "connection.refresh_failed", 0)
		require.Equal(t, "/tenant-hooks", ev.Path)
		require.Contains(t, string(ev.Data), `"user":"carol"`)
		require.Contains(t, string(ev.Data), `"status":"refresh_failed"`)
		status, raw, _ := call(t, "GET", env.URL+"/v1/connections?user=carol", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"status":"refresh_failed"`)

		status, page = testenv.FollowLogin(t, second.AuthorizationRequired[0].AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)
		require.Equal(t, "completed", waitDone(t, second).Status)
		require.Len(t, mcp.Calls("echo"), 2)
	})
}
