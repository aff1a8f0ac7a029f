package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseApprovals runs the conformance suite of tasks parked for tool
// call approvals against databases made by databaseURL.
func ExerciseApprovals(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	// parked creates a running task of alice and parks it for two approvals.
	parked := func(t *testing.T, s *store.Store) (*store.Task, []store.Approval) {
		t.Helper()
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.ClaimTask(ctx, s.DB(), task.ID, 0, 1)
		require.NoError(t, err)
		require.True(t, ok)
		pending := json.RawMessage(`[{"id":"a1"},{"id":"a2"}]`)
		ok, err = s.ParkTask(ctx, s.DB(), store.ParkParams{TaskID: task.ID, Segment: 0, Status: store.TaskAwaitingApproval, PendingApprovals: pending})
		require.NoError(t, err)
		require.True(t, ok)
		approvals := []store.Approval{
			{ID: "apr_1" + task.ID, TaskID: task.ID, Segment: 1, Turn: 0, ToolCallID: "call_1", ServerURL: "https://mcp.example.com/mcp", Tool: "delete",
				Arguments: json.RawMessage(`{"id":7}`), TokenHash: store.HashKey("t1" + task.ID), ExpiresAt: s.Now().Add(time.Hour)},
			{ID: "apr_2" + task.ID, TaskID: task.ID, Segment: 1, Turn: 0, ToolCallID: "call_2", ServerURL: "https://mcp.example.com/mcp", Tool: "send",
				Arguments: json.RawMessage(`{}`), TokenHash: store.HashKey("t2" + task.ID), ExpiresAt: s.Now().Add(time.Hour)},
		}
		require.NoError(t, s.InsertApprovals(ctx, s.DB(), approvals))
		got, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskAwaitingApproval, got.Status)
		require.Equal(t, 1, got.Segment)
		require.JSONEq(t, string(pending), string(got.PendingApprovals))
		return got, approvals
	}

	t.Run("DecideOnceThenResume", func(t *testing.T) {
		t.Parallel()
		s, _ := OpenStore(t, databaseURL(t), NewClock().Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		task, approvals := parked(t, s)

		byToken, err := s.ApprovalByTokenHash(ctx, s.DB(), store.HashKey("t1"+task.ID))
		require.NoError(t, err)
		require.Equal(t, approvals[0].ID, byToken.ID)
		require.Nil(t, byToken.DecidedAt)
		require.JSONEq(t, `{"id":7}`, string(byToken.Arguments))
		_, err = s.ApprovalByTokenHash(ctx, s.DB(), store.HashKey("nope"))
		require.ErrorIs(t, err, store.ErrNotFound)

		// Concurrent decisions on one approval: exactly one wins.
		var wg sync.WaitGroup
		wins := make(chan bool, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.DecideApproval(ctx, s.DB(), approvals[0].ID, i%2 == 0, "r")
				require.NoError(t, err)
				wins <- ok
			}()
		}
		wg.Wait()
		close(wins)
		n := 0
		for ok := range wins {
			if ok {
				n++
			}
		}
		require.Equal(t, 1, n, "an approval is decided exactly once")
		left, err := s.UndecidedApprovals(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, 1, left)
		undecided, err := s.UndecidedTaskApprovals(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Len(t, undecided, 1)
		require.Equal(t, approvals[1].ID, undecided[0].ID)

		ok, err := s.DecideApproval(ctx, s.DB(), approvals[1].ID, false, "no thanks")
		require.NoError(t, err)
		require.True(t, ok)
		denied, err := s.ToolCallApproval(ctx, s.DB(), task.ID, 0, "call_2")
		require.NoError(t, err)
		require.NotNil(t, denied.DecidedAt)
		require.False(t, denied.Approved)
		require.Equal(t, "no thanks", denied.Reason)
		_, err = s.ToolCallApproval(ctx, s.DB(), task.ID, 0, "call_9")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.ToolCallApproval(ctx, s.DB(), task.ID, 2, "call_2")
		require.ErrorIs(t, err, store.ErrNotFound, "the same call id in a later turn is another call")

		// The resume takes the task out of awaiting_approval once.
		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 1)
		require.NoError(t, err)
		require.True(t, ok)
		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 1)
		require.NoError(t, err)
		require.False(t, ok, "a second resume is a no-op")
		got, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskQueued, got.Status)
		require.Nil(t, got.PendingApprovals)
	})

	t.Run("ParkOnlyARunningTask", func(t *testing.T) {
		t.Parallel()
		s, _ := OpenStore(t, databaseURL(t), NewClock().Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.ParkTask(ctx, s.DB(), store.ParkParams{TaskID: task.ID, Segment: 0, Status: store.TaskAwaitingApproval})
		require.NoError(t, err)
		require.False(t, ok, "a queued task is not parked")
		_, err = s.ParkTask(ctx, s.DB(), store.ParkParams{TaskID: task.ID, Segment: 0, Status: store.TaskCompleted})
		require.Error(t, err, "only a paused status parks")
	})

	t.Run("DeletingTheTaskDeletesItsApprovals", func(t *testing.T) {
		t.Parallel()
		s, _ := OpenStore(t, databaseURL(t), NewClock().Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		task, approvals := parked(t, s)
		require.NoError(t, s.DeleteTask(ctx, s.DB(), "acme", task.ID))
		_, err := s.GetApproval(ctx, s.DB(), task.ID, approvals[0].ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
