package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseWebhooks runs the conformance suite of the webhook delivery
// tables against databases made by databaseURL.
func ExerciseWebhooks(t *testing.T, databaseURL func(t testing.TB) string) {
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
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "globex", ""))
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		return s, &testBundle{clock: clock, task: task}
	}
	newDelivery := func(tenant, taskID string) *store.WebhookDelivery {
		return &store.WebhookDelivery{TenantID: tenant, TaskID: taskID, Type: "task.completed", URL: "https://hooks.example.com/in",
			Body: []byte(`{"type":"task.completed","timestamp":"2025-01-01T00:00:00Z","data":{"id":"task_1"}}`)}
	}

	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		d := newDelivery("acme", bundle.task.ID)
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), d))
		require.Regexp(t, `^whd_[0-9a-z]{26}$`, d.ID)
		require.Regexp(t, `^msg_[0-9a-z]{26}$`, d.WebhookID)

		got, err := s.GetWebhookDelivery(ctx, s.DB(), d.ID)
		require.NoError(t, err)
		require.Equal(t, d.ID, got.ID)
		require.Equal(t, "acme", got.TenantID)
		require.Equal(t, bundle.task.ID, got.TaskID)
		require.Equal(t, "task.completed", got.Type)
		require.Equal(t, "https://hooks.example.com/in", got.URL)
		require.Equal(t, d.WebhookID, got.WebhookID)
		require.JSONEq(t, string(d.Body), string(got.Body))
		require.Equal(t, store.WebhookPending, got.Status)
		require.Zero(t, got.AttemptCount)
		require.NotNil(t, got.NextAttemptAt)
		require.Nil(t, got.CompletedAt)
		require.Equal(t, d.CreatedAt, got.CreatedAt)

		// A delivery without a task (a connection event).
		other := newDelivery("globex", "")
		other.Type = "connection.refresh_failed"
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), other))
		got, err = s.GetWebhookDelivery(ctx, s.DB(), other.ID)
		require.NoError(t, err)
		require.Empty(t, got.TaskID)
		require.NotEqual(t, d.WebhookID, got.WebhookID)

		_, err = s.GetWebhookDelivery(ctx, s.DB(), "whd_missing")
		require.ErrorIs(t, err, store.ErrNotFound)

		dup := newDelivery("acme", bundle.task.ID)
		dup.ID = d.ID
		require.ErrorIs(t, s.CreateWebhookDelivery(ctx, s.DB(), dup), store.ErrConflict)
	})

	t.Run("AttemptsAndOutcomes", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		d := newDelivery("acme", bundle.task.ID)
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), d))

		start := s.Now().UTC().Truncate(time.Microsecond)
		next := start.Add(time.Minute)
		for i, code := range []int{500, 0} {
			a := &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: start.Add(time.Duration(i) * time.Second), StatusCode: code,
				LatencyMS: int64(10 * (i + 1)), Error: "attempt failed", ResponseBody: "oops"}
			n, err := s.RecordWebhookAttempt(ctx, s.DB(), a, store.WebhookOutcome{Status: store.WebhookPending, NextAttemptAt: &next})
			require.NoError(t, err)
			require.Equal(t, i+1, n)
			require.Equal(t, i+1, a.Attempt)
		}
		got, err := s.GetWebhookDelivery(ctx, s.DB(), d.ID)
		require.NoError(t, err)
		require.Equal(t, store.WebhookPending, got.Status)
		require.Equal(t, 2, got.AttemptCount)
		require.Equal(t, next, *got.NextAttemptAt)
		require.Equal(t, "attempt failed", got.LastError)

		// A pending outcome needs its next time.
		_, err = s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: start},
			store.WebhookOutcome{Status: store.WebhookPending})
		require.ErrorContains(t, err, "needs the time of its next attempt")

		// Text PostgreSQL would refuse is cleaned rather than failing.
		ok := &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: start.Add(3 * time.Second), StatusCode: 204, LatencyMS: 5,
			ResponseBody: "ok\x00\xff"}
		n, err := s.RecordWebhookAttempt(ctx, s.DB(), ok, store.WebhookOutcome{Status: store.WebhookDelivered})
		require.NoError(t, err)
		require.Equal(t, 3, n)
		got, err = s.GetWebhookDelivery(ctx, s.DB(), d.ID)
		require.NoError(t, err)
		require.Equal(t, store.WebhookDelivered, got.Status)
		require.Nil(t, got.NextAttemptAt)
		require.NotNil(t, got.CompletedAt)
		require.Empty(t, got.LastError)

		// An ended delivery takes no more attempts.
		_, err = s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: start},
			store.WebhookOutcome{Status: store.WebhookFailed})
		require.ErrorIs(t, err, store.ErrNotFound)

		attempts, err := s.ListWebhookAttempts(ctx, s.DB(), d.ID)
		require.NoError(t, err)
		require.Len(t, attempts, 3)
		require.Equal(t, []int{500, 0, 204}, []int{attempts[0].StatusCode, attempts[1].StatusCode, attempts[2].StatusCode})
		require.Equal(t, start.Add(time.Second), attempts[1].StartedAt)
		require.Equal(t, int64(20), attempts[1].LatencyMS)
		require.Equal(t, "oops", attempts[0].ResponseBody)
		require.True(t, strings.HasPrefix(attempts[2].ResponseBody, "ok"))
		require.NotContains(t, attempts[2].ResponseBody, "\x00")
	})

	t.Run("ListByTaskAndTenant", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		first := newDelivery("acme", bundle.task.ID)
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), first))
		bundle.clock.Add(time.Millisecond)
		second := newDelivery("acme", bundle.task.ID)
		second.Type = "task.failed"
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), second))
		otherTask := &store.Task{TenantID: "acme", UserID: "bob", Model: "gpt-test", Request: json.RawMessage(`{}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), otherTask))
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), newDelivery("acme", otherTask.ID)))

		now := s.Now()
		_, err := s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: second.ID, StartedAt: now, StatusCode: 503},
			store.WebhookOutcome{Status: store.WebhookPending, NextAttemptAt: &now})
		require.NoError(t, err)
		_, err = s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: second.ID, StartedAt: now, StatusCode: 400},
			store.WebhookOutcome{Status: store.WebhookFailed})
		require.NoError(t, err)

		list, err := s.ListWebhookDeliveries(ctx, s.DB(), "acme", bundle.task.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, first.ID, list[0].ID)
		require.Empty(t, list[0].Attempts)
		require.NotNil(t, list[0].Attempts, "an empty list, not nil")
		require.Equal(t, second.ID, list[1].ID)
		require.Equal(t, store.WebhookFailed, list[1].Status)
		require.Len(t, list[1].Attempts, 2)
		require.Equal(t, 1, list[1].Attempts[0].Attempt)
		require.Equal(t, 503, list[1].Attempts[0].StatusCode)
		require.Equal(t, 400, list[1].Attempts[1].StatusCode)

		// Another tenant cannot list them, whatever task id it names.
		list, err = s.ListWebhookDeliveries(ctx, s.DB(), "globex", bundle.task.ID)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("DeletedWithTask", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		d := newDelivery("acme", bundle.task.ID)
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), d))
		now := s.Now()
		_, err := s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: now, StatusCode: 500},
			store.WebhookOutcome{Status: store.WebhookPending, NextAttemptAt: &now})
		require.NoError(t, err)

		require.NoError(t, s.DeleteTask(ctx, s.DB(), "acme", bundle.task.ID))
		_, err = s.GetWebhookDelivery(ctx, s.DB(), d.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		attempts, err := s.ListWebhookAttempts(ctx, s.DB(), d.ID)
		require.NoError(t, err)
		require.Empty(t, attempts)
		// A retry that was in flight then records nothing.
		_, err = s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: now, StatusCode: 200},
			store.WebhookOutcome{Status: store.WebhookDelivered})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("DeleteFinished", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		done := newDelivery("globex", "")
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), done))
		_, err := s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: done.ID, StartedAt: s.Now(), StatusCode: 200},
			store.WebhookOutcome{Status: store.WebhookDelivered})
		require.NoError(t, err)
		pending := newDelivery("acme", bundle.task.ID)
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), pending))

		n, err := s.DeleteFinishedWebhookDeliveries(ctx, s.DB(), s.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Zero(t, n, "ended too recently")

		bundle.clock.Add(48 * time.Hour)
		n, err = s.DeleteFinishedWebhookDeliveries(ctx, s.DB(), s.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = s.GetWebhookDelivery(ctx, s.DB(), done.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetWebhookDelivery(ctx, s.DB(), pending.ID)
		require.NoError(t, err, "a pending delivery is never cleaned up")
	})
}
