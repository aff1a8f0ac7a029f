package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
)

// A running task whose River job will never run again (River discards a job
// whose worker died during its last attempt) is failed by the periodic
// sweep, with its webhook, instead of staying "running" for ever.
func TestTaskWhoseJobWasDiscardedFails(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(eo *envOpts) { eo.env["MCPIDP_CLEANUP_INTERVAL"] = "200ms" })
		recv := newHookReceiver(t, "")
		env.Model.Enqueue(llmtest.Response{Block: true})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go", "webhook": map[string]any{"url": recv.URL}})
		env.Model.WaitRequests(t, 1, 30*time.Second)
		time.Sleep(time.Second)
		require.Equal(t, "running", env.getTask(t, tk.ID).Status, "a task whose job runs is left alone")

		// What River does after the last attempt's worker died: the job is
		// discarded, and nothing will end the task.
		_, err := env.App.Store().DB().ExecContext(context.Background(), `UPDATE river_job SET state = 'discarded', finalized_at = attempted_at
			WHERE id = (SELECT run_job_id FROM mcpidp_task WHERE id = $1)`, tk.ID)
		require.NoError(t, err)

		done := waitDone(t, tk)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "internal_error", done.Error.Code)
		require.Contains(t, done.Error.Message, "abandoned")
		recv.wait(t, "task.failed", 0)
		require.Eventually(t, func() bool { return env.Model.Canceled() == 1 }, 5*time.Second, 20*time.Millisecond,
			"the run still going in this process stops too")
	})
}
