package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseResponses tests the stored responses of /v1/responses.
func ExerciseResponses(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	setup := func(t *testing.T) *store.Store {
		t.Helper()
		s, _ := OpenStore(t, databaseURL(t), NewClock().Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "globex", ""))
		return s
	}

	t.Run("CreateGetDelete", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		done := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		r := &store.Response{ID: store.NewID("resp_", s.Now()), TenantID: "acme", UserID: "alice", Status: "completed", Model: "gpt-test",
			Request: json.RawMessage(`{"conversation":[{"role":"user","content":"hi"}]}`), Output: json.RawMessage(`[{"type":"message"}]`),
			Usage: json.RawMessage(`{"total_tokens":3}`), CompletedAt: &done}
		require.NoError(t, s.CreateResponse(ctx, s.DB(), r))
		require.ErrorIs(t, s.CreateResponse(ctx, s.DB(), r), store.ErrConflict)

		got, err := s.GetResponse(ctx, s.DB(), "acme", r.ID)
		require.NoError(t, err)
		require.Equal(t, r.UserID, got.UserID)
		require.False(t, got.Background)
		require.Equal(t, "completed", got.Status)
		require.JSONEq(t, string(r.Request), string(got.Request))
		require.JSONEq(t, string(r.Output), string(got.Output))
		require.JSONEq(t, string(r.Usage), string(got.Usage))
		require.Nil(t, got.Error)
		require.True(t, done.Equal(*got.CompletedAt))
		require.True(t, r.CreatedAt.Equal(got.CreatedAt))

		// Tenants are isolated.
		_, err = s.GetResponse(ctx, s.DB(), "globex", r.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteResponse(ctx, s.DB(), "globex", r.ID), store.ErrNotFound)

		require.NoError(t, s.DeleteResponse(ctx, s.DB(), "acme", r.ID))
		_, err = s.GetResponse(ctx, s.DB(), "acme", r.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteResponse(ctx, s.DB(), "acme", r.ID), store.ErrNotFound)
	})

	t.Run("Background", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		r := &store.Response{ID: store.NewID("resp_", s.Now()), TenantID: "acme", UserID: "bob", Background: true, Status: "queued",
			Model: "gpt-test", Request: json.RawMessage(`{}`)}
		require.NoError(t, s.CreateResponse(ctx, s.DB(), r))
		got, err := s.GetResponse(ctx, s.DB(), "acme", r.ID)
		require.NoError(t, err)
		require.True(t, got.Background)
		require.Nil(t, got.Output)
		require.Nil(t, got.CompletedAt)
	})
}
