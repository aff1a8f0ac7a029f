package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseDurable runs the conformance suite of what keeps a running task
// durable across faults (model retry streaks, tool call marks) against
// databases made by databaseURL.
func ExerciseDurable(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	type testBundle struct {
		clock *Clock
		task  *store.Task
	}
	setup := func(t *testing.T) (*store.Store, *testBundle) {
		t.Helper()
		clock := NewClock()
		s, _ := OpenStore(t, databaseURL(t), clock.Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.ClaimTask(ctx, s.DB(), task.ID, 0, 42)
		require.NoError(t, err)
		require.True(t, ok)
		return s, &testBundle{clock: clock, task: task}
	}

	t.Run("ModelRetryStreak", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		id := bundle.task.ID
		r, err := s.GetModelRetry(ctx, s.DB(), id)
		require.NoError(t, err)
		require.Equal(t, store.ModelRetry{}, r, "no streak yet")

		since := bundle.clock.Now().Truncate(time.Microsecond)
		at := since.Add(time.Minute)
		ok, err := s.ScheduleModelRetry(ctx, s.DB(), id, 0, store.ModelRetry{Since: since, Retries: 2}, at)
		require.NoError(t, err)
		require.True(t, ok)
		r, err = s.GetModelRetry(ctx, s.DB(), id)
		require.NoError(t, err)
		require.True(t, since.Equal(r.Since))
		require.Equal(t, 2, r.Retries)
		task, err := s.GetTaskByID(ctx, s.DB(), id)
		require.NoError(t, err)
		require.NotNil(t, task.RetryingAt)
		require.True(t, at.Equal(*task.RetryingAt))

		require.NoError(t, s.ClearRetryingAt(ctx, s.DB(), id))
		task, err = s.GetTaskByID(ctx, s.DB(), id)
		require.NoError(t, err)
		require.Nil(t, task.RetryingAt)
		r, err = s.GetModelRetry(ctx, s.DB(), id)
		require.NoError(t, err)
		require.Equal(t, 2, r.Retries, "the streak goes on while the retry runs")

		require.NoError(t, s.ResetModelRetry(ctx, s.DB(), id))
		r, err = s.GetModelRetry(ctx, s.DB(), id)
		require.NoError(t, err)
		require.Equal(t, store.ModelRetry{}, r, "a model answer ends the streak")

		ok, err = s.ScheduleModelRetry(ctx, s.DB(), id, 1, store.ModelRetry{Since: since, Retries: 1}, at)
		require.NoError(t, err)
		require.False(t, ok, "another segment's retry is not saved")
		ok, err = s.TransitionTask(ctx, s.DB(), id, []store.TaskStatus{store.TaskRunning}, store.TaskCanceled)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.ScheduleModelRetry(ctx, s.DB(), id, 0, store.ModelRetry{Since: since, Retries: 1}, at)
		require.NoError(t, err)
		require.False(t, ok, "a canceled task does not wait for its model")
		_, err = s.GetModelRetry(ctx, s.DB(), "task_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ToolCallMarks", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		id := bundle.task.ID
		again, err := s.MarkToolCall(ctx, s.DB(), id, 1, "call_a")
		require.NoError(t, err)
		require.False(t, again, "a first mark")
		again, err = s.MarkToolCall(ctx, s.DB(), id, 1, "call_a")
		require.NoError(t, err)
		require.True(t, again, "the same call marked by a later run was in flight")
		again, err = s.MarkToolCall(ctx, s.DB(), id, 2, "call_b")
		require.NoError(t, err)
		require.False(t, again, "marks are per step")

		require.NoError(t, s.UnmarkToolCall(ctx, s.DB(), id, 2))
		again, err = s.MarkToolCall(ctx, s.DB(), id, 2, "call_b")
		require.NoError(t, err)
		require.False(t, again, "an unmarked call is a fresh call")

		require.NoError(t, s.DeleteTask(ctx, s.DB(), "acme", id))
		var n int
		require.NoError(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM mcpidp_tool_call WHERE task_id = $1`, id).Scan(&n))
		require.Zero(t, n, "marks go with their task")
	})
}
