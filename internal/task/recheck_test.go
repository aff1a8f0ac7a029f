package task_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
)

// A login recheck (or timeout) that finds the login one task missed
// resumes that task alone. Task X of the same user paused after that login,
// for a challenge nothing has answered yet: it keeps waiting.
func TestRecheckResumesOnlyItsOwnTask(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		srv, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		challenge := []*mcpclient.AuthChallengeError{{ServerURL: srv.URL, StatusCode: http.StatusUnauthorized}}

		ySince := b.clock.Now()
		y := running(t, svc, b)
		require.NoError(t, svc.Pause(ctx, task.PauseParams{Task: b.task(t, y.ID), Request: &task.Request{}, ChallengedAfter: ySince, Challenges: challenge}))
		yWaits, err := b.store.TaskWaits(ctx, b.store.DB(), y.ID)
		require.NoError(t, err)
		b.clock.Add(time.Second)
		// The login completes but its resume was lost.
		require.NoError(t, b.store.MarkOAuthLoginCompleted(ctx, b.store.DB(), yWaits[0].LoginID))

		b.clock.Add(time.Minute)
		x := running(t, svc, b)
		require.NoError(t, svc.Pause(ctx, task.PauseParams{Task: b.task(t, x.ID), Request: &task.Request{}, ChallengedAfter: b.clock.Now(), Challenges: challenge}))

		require.NoError(t, svc.RecheckLogins(ctx, task.RecheckParams{TaskID: y.ID, Segment: 1, Since: ySince}))
		require.Equal(t, task.StatusQueued, b.task(t, y.ID).Status, "Y's login completed: Y goes on")
		require.Equal(t, task.StatusAwaitingAuthorization, b.task(t, x.ID).Status, "X paused after that login; nothing answered it")
	})
}
