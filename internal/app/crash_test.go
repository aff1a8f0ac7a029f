package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// mcpidpBinary builds cmd/mcpidp once per test run, for tests that need a
// real process to kill.
func mcpidpBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := filepathTemp()
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mcpidp")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, "github.com/mcpidp/mcpidp/cmd/mcpidp").CombinedOutput()
	})
	require.NoError(t, buildErr, string(buildOut))
	return binPath
}

// A worker killed with SIGKILL in the middle of a tool call, then started
// again: the task completes, no recorded step runs twice, and the call that
// was in flight is not sent again (the tool is not read-only or idempotent):
// its step says it was interrupted, and the model goes on from there.
func TestWorkerKilledMidTaskResumesWithoutRepeatingSteps(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		model := llmtest.NewServer(t)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		model.Handle(func(req llmtest.Request) llmtest.Response {
			tools := 0
			for _, m := range req.Messages {
				if m.Role == "tool" {
					tools++
				}
			}
			switch tools {
			case 0:
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"first"}`}}}
			case 1:
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "wait"), Arguments: `{"message":"second"}`}}}
			}
			return llmtest.Response{Content: "all done"}
		})
		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			// A dead worker's segment is rescued after this long.
			"MCPIDP_JOB_TIMEOUT=3s",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=4s",
		)
		first := testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		e := &testEnv{URL: base}
		tk := e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})

		select {
		case msg := <-mcp.Started():
			require.Equal(t, "second", msg)
		case <-time.After(30 * time.Second):
			t.Fatal("the wait tool was never called")
		}
		require.NoError(t, syscall.Kill(-first.Process.Pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 10*time.Second, 20*time.Millisecond)

		// What the dead process recorded: model turn, echo, model turn.
		st, _ := storetest.OpenStore(t, databaseURL, nil)
		steps, err := st.ListSteps(context.Background(), st.DB(), tk.ID)
		require.NoError(t, err)
		require.Len(t, steps, 3)
		require.Len(t, model.Requests(), 2)

		mcp.Release()
		testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, "all done", done.Output.Content)

		require.Equal(t, []string{"first"}, mcp.Calls("echo"), "a recorded tool call never runs again")
		require.Len(t, model.Requests(), 3, "recorded model turns are not asked again")
		require.Equal(t, []string{"second"}, mcp.Calls("wait"), "the call in flight is not sent again")
		var types []string
		for _, s := range done.Steps {
			types = append(types, s.Type+":"+s.Tool)
		}
		require.Equal(t, []string{"model:", "tool:echo", "model:", "tool:wait", "model:"}, types)
		interrupted := done.Steps[3]
		require.True(t, interrupted.Interrupted, "%+v", interrupted)
		require.True(t, interrupted.IsError)
		require.Contains(t, interrupted.Output, "may or may not have run")
		last := model.Requests()[2].Messages
		require.Equal(t, "tool", last[len(last)-1].Role)
		require.Contains(t, last[len(last)-1].Content, "may or may not have run", "the model is told")
	})
}

func filepathTemp() (string, error) { return os.MkdirTemp("", "mcpidp-bin-") }

// A worker killed while a read-only tool (MCP readOnlyHint) is in flight:
// after the restart the call is sent again, and its real result is recorded.
func TestInFlightReadOnlyToolIsSentAgainAfterCrash(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		model := llmtest.NewServer(t)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			if last.Role == "tool" {
				return llmtest.Response{Content: "The tool said: " + last.Content}
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "peek"), Arguments: `{"message":"look"}`}}}
		})
		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			"MCPIDP_JOB_TIMEOUT=3s",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=4s",
		)
		first := testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		e := &testEnv{URL: base}
		tk := e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})
		select {
		case <-mcp.Started():
		case <-time.After(30 * time.Second):
			t.Fatal("the peek tool was never called")
		}
		require.NoError(t, syscall.Kill(-first.Process.Pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 10*time.Second, 20*time.Millisecond)

		mcp.Release()
		testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, []string{"look", "look"}, mcp.Calls("peek"), "the read-only call in flight was sent again")
		require.Len(t, done.Steps, 3)
		require.False(t, done.Steps[1].Interrupted)
		require.False(t, done.Steps[1].IsError)
		require.Equal(t, "peeked: look", done.Steps[1].Output)
		require.Equal(t, "The tool said: peeked: look", done.Output.Content)
	})
}

// A paused task survives a kill of its process while it waits, and another
// kill right after the login callback: it completes exactly once.
func TestPausedTaskSurvivesRestarts(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		model := llmtest.NewServer(t)
		model.Handle(echoOnce(t))
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		recv := newHookReceiver(t, "")
		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			"MCPIDP_WEBHOOK_SECRET="+testWebhookSecret,
			"MCPIDP_JOB_TIMEOUT=3s",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=4s",
		)
		kill := func(cmd *exec.Cmd) {
			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
			require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 10*time.Second, 20*time.Millisecond)
		}
		e := &testEnv{URL: base}
		proc := testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		tk := waitStatus(t, e.submit(t, keyAcme, map[string]any{"user": "phoenix", "model": "m", "input": "rise",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}, "webhook": map[string]any{"url": recv.URL}}), "awaiting_authorization")

		kill(proc) // while the task waits
		proc = testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		status, page := testenv.FollowLogin(t, tk.AuthorizationRequired[0].AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)
		kill(proc) // right after the callback
		testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))

		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, "Tool said: echo: rise", done.Output.Content)
		var echoes int
		for _, s := range done.Steps {
			if s.Tool == "echo" {
				echoes++
			}
		}
		require.Equal(t, 1, echoes, "one recorded tool step")
		require.LessOrEqual(t, len(mcp.Calls("echo")), 2, "only a step in flight at the kill may run again")
		recv.wait(t, "task.completed", 0)
		time.Sleep(500 * time.Millisecond)
		require.Equal(t, 1, recv.count("task.completed"), "the task completed exactly once")
	})
}
