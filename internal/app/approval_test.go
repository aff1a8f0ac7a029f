package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// pendingApproval is one entry of a task's pending_approvals.
type pendingApproval struct {
	ID         string          `json:"id"`
	ServerURL  string          `json:"server_url"`
	Name       string          `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	ApproveURL string          `json:"approve_url"`
	ExpiresAt  time.Time       `json:"expires_at"`
}

// approvalTask is the task object with what an approval test reads.
type approvalTask struct {
	task
	PendingApprovals []pendingApproval `json:"pending_approvals"`
	Steps            []struct {
		Type    string `json:"type"`
		Tool    string `json:"tool"`
		Output  string `json:"output"`
		IsError bool   `json:"is_error"`
		Denied  bool   `json:"denied"`
	} `json:"steps"`
}

func getApprovalTask(t testing.TB, env *testEnv, id string) approvalTask {
	t.Helper()
	status, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+id, keyAcme, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	var got approvalTask
	require.NoError(t, json.Unmarshal(raw, &got))
	return got
}

func decide(t testing.TB, env *testEnv, taskID, approvalID string, body any) (int, string) {
	t.Helper()
	status, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+taskID+"/approvals/"+approvalID, keyAcme, body)
	return status, string(raw)
}

// postForm POSTs an approve link's form, as the confirm page's buttons do.
func postForm(t testing.TB, link string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(link, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// server-everything's echo under require_approval "always": the task stops
// before the call, announces it (signed callback, webhook, result pages),
// and goes on after the decision: an approved call runs once, a denied one
// is told to the model.
func TestTaskToolApprovalWithServerEverything(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(echoThenAnswer(t, "ship it"))
		for _, approve := range []bool{true, false} {
			t.Run("approve="+strconv.FormatBool(approve), func(t *testing.T) {
				recv := newHookReceiver(t, "")
				before := len(env.Model.Requests())
				tk := env.submit(t, keyAcme, map[string]any{
					"user": "pat", "model": "m", "input": "Use echo",
					"tools":                        []map[string]any{{"type": "mcp", "server_url": everything, "require_approval": "always"}},
					"authorizationRequestCallback": recv.URL + "/cb",
					"webhook":                      map[string]any{"url": recv.URL + "/wh"},
				})
				waitStatus(t, tk, "awaiting_approval")
				got := getApprovalTask(t, env, tk.ID)
				require.Len(t, got.PendingApprovals, 1)
				pa := got.PendingApprovals[0]
				require.Equal(t, "echo", pa.Name)
				require.Equal(t, everything, pa.ServerURL)
				require.JSONEq(t, `{"message":"ship it"}`, string(pa.Arguments))
				require.True(t, strings.HasPrefix(pa.ApproveURL, env.URL+"/approve/"), pa.ApproveURL)
				require.WithinDuration(t, env.Clock.Now().Add(24*time.Hour), pa.ExpiresAt, time.Minute)
				require.Len(t, got.Steps, 1, "nothing ran: only the model's turn is recorded")
				require.Equal(t, before+1, len(env.Model.Requests()))

				cb := recv.wait(t, "approval.required", 0)
				require.Equal(t, "/cb", cb.Path)
				var data struct {
					TaskID           string            `json:"task_id"`
					User             string            `json:"user"`
					PendingApprovals []pendingApproval `json:"pending_approvals"`
					Message          string            `json:"message"`
				}
				require.NoError(t, json.Unmarshal(cb.Data, &data))
				require.Equal(t, tk.ID, data.TaskID)
				require.Equal(t, "pat", data.User)
				require.Equal(t, got.PendingApprovals, data.PendingApprovals)
				require.Contains(t, data.Message, "echo")
				wh := recv.wait(t, "task.approval_required", 0)
				require.Equal(t, "/wh", wh.Path)
				require.Contains(t, string(wh.Data), `"status":"awaiting_approval"`)

				status, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
				require.Equal(t, http.StatusOK, status)
				require.Contains(t, string(md), "Approval required")
				require.Contains(t, string(md), pa.ApproveURL)

				status, raw := decide(t, env, tk.ID, pa.ID, map[string]any{"approve": approve, "reason": "not today"})
				require.Equal(t, http.StatusOK, status, raw)
				status, raw = decide(t, env, tk.ID, pa.ID, map[string]any{"approve": true})
				require.Equal(t, http.StatusConflict, status, "decided exactly once: %s", raw)
				require.Contains(t, raw, "approval_already_decided")

				waitDone(t, tk)
				done := getApprovalTask(t, env, tk.ID)
				require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
				require.Empty(t, done.PendingApprovals)
				require.NotNil(t, done.PendingApprovals, "always a list")
				require.Len(t, done.Steps, 3)
				step := done.Steps[1]
				require.Equal(t, "echo", step.Tool)
				if approve {
					require.False(t, step.IsError)
					require.Contains(t, step.Output, "ship it")
					require.False(t, step.Denied)
				} else {
					require.True(t, step.Denied)
					require.True(t, step.IsError)
					require.Equal(t, "error: the user denied this call: not today", step.Output)
					msgs := env.Model.Requests()[len(env.Model.Requests())-1].Messages
					require.Equal(t, "tool", msgs[len(msgs)-1].Role)
					require.Contains(t, msgs[len(msgs)-1].Content, "the user denied this call: not today", "the model is told")
				}
			})
		}
	})
}

// The approve link: GET only shows the call (a link scanner that follows
// it approves nothing), POST decides, a second POST is refused.
func TestApprovalLinkConfirmsBeforeActing(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(echoThenAnswer(t, "from the link"))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": map[string]any{"always": map[string]any{"tool_names": []string{"echo"}}}}}}),
			"awaiting_approval")
		link := getApprovalTask(t, env, tk.ID).PendingApprovals[0].ApproveURL

		for range 2 {
			status, page, hdr := call(t, "GET", link, "", nil)
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, hdr.Get("Content-Type"), "text/html")
			require.Contains(t, string(page), "Approve")
			require.Contains(t, string(page), "Deny")
			require.Contains(t, string(page), "from the link", "the page shows the arguments")
			require.Contains(t, string(page), `method="post"`)
		}
		time.Sleep(300 * time.Millisecond)
		require.Equal(t, "awaiting_approval", getApprovalTask(t, env, tk.ID).Status, "GET decides nothing")
		require.Empty(t, mcp.Calls("echo"))

		status, _, _ := call(t, "GET", env.URL+"/approve/not-a-token", "", nil)
		require.Equal(t, http.StatusNotFound, status)
		status, page := postForm(t, link, url.Values{"approve": {"maybe"}})
		require.Equal(t, http.StatusBadRequest, status, page)

		status, page = postForm(t, link, url.Values{"approve": {"true"}})
		require.Equal(t, http.StatusOK, status, page)
		require.Contains(t, page, "Approved")
		status, page = postForm(t, link, url.Values{"approve": {"false"}})
		require.Equal(t, http.StatusConflict, status, page)
		require.Contains(t, page, "already approved")

		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, []string{"from the link"}, mcp.Calls("echo"), "the approved call ran once")
		status, page2, _ := call(t, "GET", link, "", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(page2), "Already decided")
		require.NotContains(t, string(page2), `method="post"`)
	})
}

// A task left awaiting approval past the expiry fails with
// approval_timeout, and its link no longer acts.
func TestApprovalTimeout(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, "")
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(echoThenAnswer(t, "late"))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "auto"}}, "webhook": map[string]any{"url": recv.URL}}),
			"awaiting_approval")
		pa := getApprovalTask(t, env, tk.ID).PendingApprovals[0]

		ctx := context.Background()
		timeoutJob := func() int64 {
			res, err := env.App.River().JobList(ctx, river.NewJobListParams().Kinds("task_approval_timeout"))
			require.NoError(t, err)
			require.Len(t, res.Jobs, 1)
			return res.Jobs[0].ID
		}
		id := timeoutJob()
		_, err := env.App.River().JobRetry(ctx, id)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			job, err := env.App.River().JobGet(ctx, id)
			return err == nil && job.AttemptedAt != nil && job.State == rivertype.JobStateScheduled
		}, 20*time.Second, 20*time.Millisecond, "the early timeout run snoozes")
		require.Equal(t, "awaiting_approval", getApprovalTask(t, env, tk.ID).Status)

		env.Clock.Add(24*time.Hour + time.Second)
		_, err = env.App.River().JobRetry(ctx, timeoutJob())
		require.NoError(t, err)
		done := waitDone(t, tk)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "approval_timeout", done.Error.Code)
		require.Contains(t, done.Error.Message, "echo")
		require.Contains(t, string(recv.wait(t, "task.failed", 0).Data), "approval_timeout")

		status, raw := decide(t, env, tk.ID, pa.ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusConflict, status, raw)
		status, page := postForm(t, pa.ApproveURL, url.Values{"approve": {"true"}})
		require.Equal(t, http.StatusConflict, status, page)
		require.Empty(t, mcp.Calls("echo"))
	})
}

// Bad decisions and bad policies get clear 400s; other tenants see 404.
func TestApprovalValidation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		for _, policy := range []any{"sometimes", 3, map[string]any{"always": []string{"echo"}}, map[string]any{"maybe": map[string]any{"tool_names": []string{"x"}}}, map[string]any{}} {
			status, raw, _ := call(t, "POST", env.URL+"/v1/tasks", keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
				"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": policy}}})
			require.Equal(t, http.StatusBadRequest, status, "%v: %s", policy, raw)
			require.Contains(t, string(raw), "tools[0].require_approval")
		}
		env.Model.Handle(echoThenAnswer(t, "x"))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "always"}}}), "awaiting_approval")
		pa := getApprovalTask(t, env, tk.ID).PendingApprovals[0]
		status, raw := decide(t, env, tk.ID, pa.ID, map[string]any{"reason": "x"})
		require.Equal(t, http.StatusBadRequest, status, raw)
		require.Contains(t, raw, `"param":"approve"`)
		status, raw = decide(t, env, tk.ID, pa.ID, map[string]any{"approve": "yes"})
		require.Equal(t, http.StatusBadRequest, status, raw)
		status, raw = decide(t, env, tk.ID, "apr_nope", map[string]any{"approve": true})
		require.Equal(t, http.StatusNotFound, status, raw)
		status, other, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/approvals/"+pa.ID, keyGlobex, map[string]any{"approve": true})
		require.Equal(t, http.StatusNotFound, status, "another tenant cannot approve: %s", other)
		require.Equal(t, "awaiting_approval", getApprovalTask(t, env, tk.ID).Status)

		// A canceled task no longer waits: its approvals are closed, and
		// its object shows none pending.
		status, other, _ = call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusOK, status, string(other))
		status, raw = decide(t, env, tk.ID, pa.ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusConflict, status, raw)
		require.Contains(t, raw, "approval_closed")
		require.Empty(t, getApprovalTask(t, env, tk.ID).PendingApprovals)
		status, page, _ := call(t, "GET", pa.ApproveURL, "", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(page), "No longer waiting")
		require.NotContains(t, string(page), `method="post"`)
		require.Empty(t, mcp.Calls("echo"))
	})
}

// The process is killed with SIGKILL while a task awaits approval; after a
// restart the approval resumes it once and the tool runs exactly once.
func TestApprovalSurvivesKill(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		model := llmtest.NewServer(t)
		model.Handle(echoThenAnswer(t, "after the crash"))
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			"MCPIDP_JOB_TIMEOUT=3s",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=4s",
		)
		first := testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		e := &testEnv{URL: base}
		tk := waitStatus(t, e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "always"}}}), "awaiting_approval")
		require.NoError(t, syscall.Kill(-first.Process.Pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 10*time.Second, 20*time.Millisecond)

		testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		got := getApprovalTask(t, e, tk.ID)
		require.Equal(t, "awaiting_approval", got.Status)
		require.Len(t, got.PendingApprovals, 1)
		status, raw := decide(t, e, tk.ID, got.PendingApprovals[0].ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusOK, status, raw)
		status, raw = decide(t, e, tk.ID, got.PendingApprovals[0].ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusConflict, status, raw)
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, []string{"after the crash"}, mcp.Calls("echo"), "the approved call ran exactly once")
		require.Len(t, model.Requests(), 2, "the model turn before the pause is not asked again")
	})
}

// Two approvals of one pause resume the task once, after the last decision;
// a call of the next turn with the same tool is asked about again, not run
// on the earlier approval.
func TestApprovalIsPerCallAcrossTurns(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			tools := 0
			for _, m := range req.Messages {
				if m.Role == "tool" {
					tools++
				}
			}
			switch tools {
			case 0:
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{
					{ID: "call_same", Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"one"}`},
					{ID: "call_add", Name: req.OfferedTool(t, "add"), Arguments: `{"a":1,"b":2}`},
				}}
			case 2:
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{ID: "call_two", Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"two"}`}}}
			}
			return llmtest.Response{Content: "finished"}
		})
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "always"}}}), "awaiting_approval")
		first := getApprovalTask(t, env, tk.ID).PendingApprovals
		require.Len(t, first, 2, "the turn's calls wait together")
		status, raw := decide(t, env, tk.ID, first[0].ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusOK, status, raw)
		got := getApprovalTask(t, env, tk.ID)
		require.Equal(t, "awaiting_approval", got.Status, "one decision left")
		require.Len(t, got.PendingApprovals, 1)
		require.Equal(t, first[1].ID, got.PendingApprovals[0].ID)
		status, raw = decide(t, env, tk.ID, first[1].ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusOK, status, raw)

		// The next turn calls echo again: asked again.
		require.Eventually(t, func() bool {
			got = getApprovalTask(t, env, tk.ID)
			return got.Status == "awaiting_approval" && len(got.PendingApprovals) == 1 && got.PendingApprovals[0].ID != first[0].ID
		}, 30*time.Second, 50*time.Millisecond, "the second echo waits for its own approval")
		require.JSONEq(t, `{"message":"two"}`, string(got.PendingApprovals[0].Arguments))
		require.Equal(t, []string{"one"}, mcp.Calls("echo"))
		status, raw = decide(t, env, tk.ID, got.PendingApprovals[0].ID, map[string]any{"approve": false})
		require.Equal(t, http.StatusOK, status, raw)
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, []string{"one"}, mcp.Calls("echo"), "the denied second call never ran")
		require.Equal(t, []string{"1 2"}, mcp.Calls("add"))
	})
}

// A task under "auto" runs a tool that declares readOnlyHint without
// asking and holds back one that does not; a denial's reason reaches the
// model.
func TestTaskApprovalAutoRunsReadOnlyTools(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		mcp.Release() // peek answers at once
		var told string
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			var outputs []string
			for _, m := range req.Messages {
				if m.Role == "tool" {
					outputs = append(outputs, m.Content)
				}
			}
			if len(outputs) == 0 {
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{
					{ID: "call_peek", Name: req.OfferedTool(t, "peek"), Arguments: `{"message":"look"}`},
					{ID: "call_echo", Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"write"}`},
				}}
			}
			told = strings.Join(outputs, " | ")
			return llmtest.Response{Content: "done"}
		})
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "auto"}}}), "awaiting_approval")
		got := getApprovalTask(t, env, tk.ID)
		require.Len(t, got.PendingApprovals, 1, "only the writer waits")
		require.Equal(t, "echo", got.PendingApprovals[0].Name)
		require.Equal(t, []string{"look"}, mcp.Calls("peek"), "the read-only tool ran without asking")

		status, raw := decide(t, env, tk.ID, got.PendingApprovals[0].ID, map[string]any{"approve": false, "reason": "not on a Friday"})
		require.Equal(t, http.StatusOK, status, raw)
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Empty(t, mcp.Calls("echo"))
		require.Equal(t, []string{"look"}, mcp.Calls("peek"), "the read-only call ran once")
		require.Contains(t, told, "peeked: look")
		require.Contains(t, told, "the user denied this call: not on a Friday")
	})
}
