package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// fastModelBackoff keeps model retries without Retry-After short in tests.
func fastModelBackoff(eo *envOpts) {
	eo.opts.ModelBackoffFunc = func(int) time.Duration { return 100 * time.Millisecond }
}

// getTask reads the task through the API.
func (e *testEnv) getTask(t testing.TB, id string) task {
	t.Helper()
	status, raw, _ := call(t, "GET", e.URL+"/v1/tasks/"+id, keyAcme, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	var tk task
	require.NoError(t, json.Unmarshal(raw, &tk))
	return tk
}

// A 429 with Retry-After in the middle of a task: the task waits (running,
// with retrying_at, its job snoozed so no worker is held) for as long as
// asked, then goes on from its recorded steps and completes. No step is
// repeated and the model sees each recorded step once.
func TestModelRateLimitIsRetriedAfterRetryAfter(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, fastModelBackoff)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		var mu sync.Mutex
		var answered []time.Time // when each request was answered
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			mu.Lock()
			defer mu.Unlock()
			answered = append(answered, time.Now())
			switch len(answered) {
			case 1:
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"once"}`}}}
			case 2:
				return llmtest.Response{Status: http.StatusTooManyRequests, Content: "slow down", Header: http.Header{"Retry-After": {"2"}}}
			}
			return llmtest.Response{Content: "done after the rate limit"}
		})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})

		env.Model.WaitRequests(t, 2, 30*time.Second)
		var waiting task
		require.Eventually(t, func() bool {
			waiting = env.getTask(t, tk.ID)
			return waiting.RetryingAt != nil
		}, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, "running", waiting.Status)
		require.WithinDuration(t, time.Now().Add(2*time.Second), *waiting.RetryingAt, 1500*time.Millisecond)
		_, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Contains(t, string(md), "tries it again at")
		var job *rivertype.JobRow
		require.Eventually(t, func() bool {
			jobs, err := env.App.River().JobList(context.Background(), river.NewJobListParams().Kinds("task_run"))
			require.NoError(t, err)
			require.Len(t, jobs.Jobs, 1)
			job = jobs.Jobs[0]
			return job.State != rivertype.JobStateRunning
		}, 10*time.Second, 10*time.Millisecond, "the job stops running while the task waits")
		// Snoozed: not running, due when the upstream said (River keeps
		// short snoozes "available" with a future scheduled_at).
		require.Contains(t, []rivertype.JobState{rivertype.JobStateScheduled, rivertype.JobStateAvailable}, job.State)
		require.WithinDuration(t, *waiting.RetryingAt, job.ScheduledAt, 1500*time.Millisecond, "the job is snoozed until the retry")
		require.Equal(t, 0, job.Attempt, "a snooze does not use up an attempt")

		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, "done after the rate limit", done.Output.Content)
		require.Nil(t, done.RetryingAt)
		require.Equal(t, []string{"once"}, mcp.Calls("echo"), "the recorded tool call did not run again")
		var types []string
		for _, s := range done.Steps {
			types = append(types, s.Type+":"+s.Tool)
		}
		require.Equal(t, []string{"model:", "tool:echo", "model:"}, types, "no step repeated")

		reqs := env.Model.Requests()
		require.Len(t, reqs, 3)
		require.Equal(t, reqs[1].Messages, reqs[2].Messages, "the retry sends the same conversation: each recorded step once")
		require.Len(t, reqs[2].Messages, 3, "user, assistant tool call, tool result")
		mu.Lock()
		defer mu.Unlock()
		require.GreaterOrEqual(t, answered[2].Sub(answered[1]), 1900*time.Millisecond, "Retry-After was honoured")
	})
}

// A model that keeps answering 503 is retried until MCPIDP_MODEL_RETRY_FOR
// has passed since the first failure, then the task fails with model_error.
func TestModelServerErrorsFailAfterRetryFor(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, fastModelBackoff, func(eo *envOpts) { eo.env["MCPIDP_MODEL_RETRY_FOR"] = "10m" })
		env.Model.Handle(func(llmtest.Request) llmtest.Response {
			return llmtest.Response{Status: http.StatusServiceUnavailable, Content: "overloaded"}
		})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go"})

		// Two failures: the streak's start is stored. Then ten minutes pass.
		env.Model.WaitRequests(t, 3, 30*time.Second)
		require.Equal(t, "running", env.getTask(t, tk.ID).Status, "still retrying within the limit")
		env.Clock.Add(10*time.Minute + time.Second)

		done := waitDone(t, tk)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "model_error", done.Error.Code)
		require.Contains(t, done.Error.Message, "503")
		require.Contains(t, done.Error.Message, "gave up after")
		require.Nil(t, done.RetryingAt)
		n := len(env.Model.Requests())
		time.Sleep(300 * time.Millisecond)
		require.Len(t, env.Model.Requests(), n, "no try after the task failed")
	})
}

// Answers that waiting will not change fail the task at once.
func TestModelClientErrorsFailAtOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, fastModelBackoff)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			status, _ := strconv.Atoi(strings.TrimPrefix(req.Messages[0].Content, "status "))
			return llmtest.Response{Status: status, Content: "refused"}
		})
		statuses := []int{400, 401, 403, 404, 422}
		tasks := make([]task, len(statuses))
		for i, status := range statuses {
			tasks[i] = env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": fmt.Sprintf("status %d", status)})
		}
		for i, tk := range tasks {
			done := waitDone(t, tk)
			require.Equal(t, "failed", done.Status)
			require.Equal(t, "model_error", done.Error.Code)
			require.Contains(t, done.Error.Message, fmt.Sprintf("HTTP %d", statuses[i]))
			require.NotContains(t, done.Error.Message, "gave up", "not retried")
		}
		require.Len(t, env.Model.Requests(), len(statuses), "one model call per task")
	})
}

// The model server is down (connection refused) when the task starts, and
// comes up later: the task waits and then completes.
func TestModelUnreachableThenUpCompletes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		port := testenv.FreePort(t)
		env := startEnv(t, databaseURL, fastModelBackoff, func(eo *envOpts) {
			eo.env["MCPIDP_UPSTREAM_BASE_URL"] = fmt.Sprintf("http://127.0.0.1:%d/v1", port)
		})
		env.Model.Enqueue(llmtest.Response{Content: "the model is back"})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go"})
		require.Eventually(t, func() bool { return env.getTask(t, tk.ID).RetryingAt != nil }, 10*time.Second, 20*time.Millisecond)
		time.Sleep(500 * time.Millisecond) // a few more refused tries
		require.Equal(t, "running", env.getTask(t, tk.ID).Status)

		// The model comes up on the port the task was trying.
		target, err := url.Parse(strings.TrimSuffix(env.Model.URL(), "/v1"))
		require.NoError(t, err)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err)
		srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })

		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, "the model is back", done.Output.Content)
		require.Len(t, env.Model.Requests(), 1)
	})
}
