package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseWaits runs the conformance suite of what paused tasks wait on
// against databases made by databaseURL.
func ExerciseWaits(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()
	const server = "https://mcp.example.com/mcp"

	// pausedTask creates a task of alice and pauses it on server.
	pausedTask := func(t *testing.T, s *store.Store, resumeOnRefresh bool) string {
		t.Helper()
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.ClaimTask(ctx, s.DB(), task.ID, 0, 1)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.PauseTask(ctx, s.DB(), store.PauseParams{TaskID: task.ID, Waits: []store.Wait{{TenantID: "acme", UserID: "alice",
			ServerURL: server, LoginID: "login_" + task.ID, ExpiresAt: s.Now().Add(time.Hour), ResumeOnRefresh: resumeOnRefresh}}})
		require.NoError(t, err)
		require.True(t, ok)
		return task.ID
	}

	t.Run("RefreshAnswersOnlyRefreshWaits", func(t *testing.T) {
		t.Parallel()
		s, _ := OpenStore(t, databaseURL(t), NewClock().Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		login := pausedTask(t, s, false)
		refresh := pausedTask(t, s, true)

		waits, err := s.TaskWaits(ctx, s.DB(), refresh)
		require.NoError(t, err)
		require.Len(t, waits, 1)
		require.True(t, waits[0].ResumeOnRefresh)
		waits, err = s.TaskWaits(ctx, s.DB(), login)
		require.NoError(t, err)
		require.Len(t, waits, 1)
		require.False(t, waits[0].ResumeOnRefresh)

		all, err := s.WaitingTasks(ctx, s.DB(), "acme", "alice", server)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{login, refresh}, all)
		ids, err := s.RefreshWaitingTasks(ctx, s.DB(), "acme", "alice", server)
		require.NoError(t, err)
		require.Equal(t, []string{refresh}, ids)

		cleared, err := s.ClearRefreshWait(ctx, s.DB(), login, server)
		require.NoError(t, err)
		require.False(t, cleared, "a refresh does not answer a wait for a login")
		cleared, err = s.ClearRefreshWait(ctx, s.DB(), refresh, server)
		require.NoError(t, err)
		require.True(t, cleared)
		cleared, err = s.ClearRefreshWait(ctx, s.DB(), refresh, server)
		require.NoError(t, err)
		require.False(t, cleared, "a wait is cleared once")
		all, err = s.WaitingTasks(ctx, s.DB(), "acme", "alice", server)
		require.NoError(t, err)
		require.Equal(t, []string{login}, all)
	})
}
