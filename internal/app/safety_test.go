package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
)

// If a login completed but its resume was lost (a crash at the wrong
// moment), the authorization timeout does not fail the task: it resumes it.
func TestTimeoutResumesATaskWhoseLoginCompleted(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		env.Model.Handle(echoOnce(t))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "lucky", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}), "awaiting_authorization")

		ctx := context.Background()
		st := env.App.Store()
		waits, err := st.TaskWaits(ctx, st.DB(), tk.ID)
		require.NoError(t, err)
		require.Len(t, waits, 1)
		// The login completes, but nothing resumes the task.
		_, err = st.DB().ExecContext(ctx, `UPDATE mcpidp_oauth_login SET completed_at = $1 WHERE id = $2`,
			env.Clock.Now().UnixMicro(), waits[0].LoginID)
		require.NoError(t, err)

		env.Clock.Add(24*time.Hour + time.Second)
		res, err := env.App.River().JobList(ctx, river.NewJobListParams().Kinds("task_authorization_timeout").States(rivertype.JobStateScheduled))
		require.NoError(t, err)
		require.Len(t, res.Jobs, 1)
		_, err = env.App.River().JobRetry(ctx, res.Jobs[0].ID)
		require.NoError(t, err)

		// Resumed: it ran again and, with no token, asks for a new login.
		require.Eventually(t, func() bool {
			got, err := st.GetTaskByID(ctx, st.DB(), tk.ID)
			return err == nil && got.Segment >= 2 && got.Status == "awaiting_authorization"
		}, 20*time.Second, 50*time.Millisecond)
		got, err := st.GetTaskByID(ctx, st.DB(), tk.ID)
		require.NoError(t, err)
		require.Nil(t, got.Error, "not failed with authorization_timeout")
	})
}
