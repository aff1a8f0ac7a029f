package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// SIGTERM to a serving process: it refuses new connections at once, lets a
// chat stream in flight finish, interrupts a task segment still running at
// the deadline (MCPIDP_SHUTDOWN_TIMEOUT) without using up an attempt, and
// exits cleanly; a second process then resumes the task at once (not after
// the stuck-job rescue time).
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		model := llmtest.NewServer(t)
		streamed := strings.Repeat("abcdefgh", 20) // 20 chunks, 100 ms apart
		var taskCalls atomic.Int32
		model.Handle(func(req llmtest.Request) llmtest.Response {
			if req.Messages[len(req.Messages)-1].Content == "stream please" {
				return llmtest.Response{Content: streamed, ChunkDelay: 100 * time.Millisecond}
			}
			if taskCalls.Add(1) == 1 {
				return llmtest.Response{Block: true} // the segment is in a model call at shutdown
			}
			return llmtest.Response{Content: "resumed"}
		})
		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			"MCPIDP_UPSTREAM_API_KEY=k",
			"MCPIDP_SHUTDOWN_TIMEOUT=4s",
			// Only an interrupted job can run again soon: a stuck one
			// would wait for this.
			"MCPIDP_JOB_TIMEOUT=10m",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=11m",
		)
		out := &testenv.SyncBuffer{}
		first := exec.Command(bin, "serve")
		first.Env = append(os.Environ(), env...)
		first.Stdout, first.Stderr = out, out
		first.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		require.NoError(t, first.Start())
		exited := make(chan error, 1)
		go func() { exited <- first.Wait() }()
		t.Cleanup(func() {
			_ = syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
			if t.Failed() {
				t.Logf("first process:\n%s", out.String())
			}
		})
		require.Eventually(t, testenv.PortReady(port), 60*time.Second, 50*time.Millisecond, out.String())

		e := &testEnv{URL: base}
		tk := e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "work"})
		model.WaitRequests(t, 1, 30*time.Second)

		body := `{"model":"m","stream":true,"user":"u","messages":[{"role":"user","content":"stream please"}]}`
		req, err := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+keyAcme)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		lines := bufio.NewScanner(resp.Body)
		require.True(t, lines.Scan())
		require.True(t, strings.HasPrefix(lines.Text(), "data: "), lines.Text())

		shutdownAt := time.Now()
		require.NoError(t, syscall.Kill(first.Process.Pid, syscall.SIGTERM))

		// New connections are refused while the stream goes on.
		require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 2*time.Second, 20*time.Millisecond,
			"the listener closes at once")

		var content strings.Builder
		done := false
		for lines.Scan() {
			data, ok := strings.CutPrefix(lines.Text(), "data: ")
			if !ok {
				continue
			}
			if data == "[DONE]" {
				done = true
				break
			}
			var chunk struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal([]byte(data), &chunk), data)
			for _, c := range chunk.Choices {
				content.WriteString(c.Delta.Content)
			}
		}
		require.NoError(t, lines.Err())
		require.True(t, done, "the stream in flight ends normally")
		require.Equal(t, streamed, content.String())
		require.Greater(t, time.Since(shutdownAt), time.Second, "the stream really was in flight during shutdown")

		select {
		case err := <-exited:
			require.NoError(t, err, "a graceful stop exits 0")
		case <-time.After(30 * time.Second):
			t.Fatal("the process did not stop within 30s of SIGTERM")
		}
		require.GreaterOrEqual(t, time.Since(shutdownAt), 4*time.Second, "the running segment had MCPIDP_SHUTDOWN_TIMEOUT to finish")
		require.Contains(t, out.String(), "shutting down")

		// The segment was interrupted, not failed: its job is available again
		// and its attempt was given back.
		_, db := storetest.OpenStore(t, databaseURL, nil)
		var state string
		var attempt int
		require.NoError(t, db.SQL.QueryRowContext(context.Background(),
			`SELECT state, attempt FROM river_job WHERE kind = 'task_run'`).Scan(&state, &attempt))
		require.Equal(t, "available", state)
		require.Equal(t, 0, attempt)

		// A second process (same address, so the result URLs work) resumes it.
		resumedAt := time.Now()
		testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		got := waitDone(t, tk)
		require.Equal(t, "completed", got.Status, "error: %+v", got.Error)
		require.Equal(t, "resumed", got.Output.Content)
		require.Less(t, time.Since(resumedAt), 30*time.Second)
		require.EqualValues(t, 2, taskCalls.Load(), "the interrupted model call is made again, once")
	})
}
