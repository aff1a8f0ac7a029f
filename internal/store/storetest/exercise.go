package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// Exercise runs the store conformance suite against databases made by
// databaseURL (called once per subtest, each returning a new database).
func Exercise(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	type testBundle struct {
		clock *Clock
		db    *store.DB
	}
	setup := func(t *testing.T) (*store.Store, *testBundle) {
		t.Helper()
		clock := NewClock()
		s, db := OpenStore(t, databaseURL(t), clock.Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "globex", ""))
		return s, &testBundle{clock: clock, db: db}
	}
	newTask := func(tenant, user string) *store.Task {
		return &store.Task{TenantID: tenant, UserID: user, Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
	}

	t.Run("MigrationsUpDown", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		current, err := s.MigrationsCurrent(ctx)
		require.NoError(t, err)
		require.True(t, current)
		all, err := store.Migrations(s.Dialect())
		require.NoError(t, err)
		down, err := s.MigrateDown(ctx, len(all))
		require.NoError(t, err)
		require.Len(t, down, len(all))
		current, err = s.MigrationsCurrent(ctx)
		require.NoError(t, err)
		require.False(t, current)
		up, err := s.MigrateUp(ctx)
		require.NoError(t, err)
		require.Len(t, up, len(all))
		again, err := s.MigrateUp(ctx)
		require.NoError(t, err)
		require.Empty(t, again, "a second MigrateUp applies nothing")
	})

	t.Run("APIKeys", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		_, err := s.CreateAPIKey(ctx, s.DB(), "acme", store.HashKey("secret-1"))
		require.NoError(t, err)
		tenant, err := s.TenantForKeyHash(ctx, s.DB(), store.HashKey("secret-1"))
		require.NoError(t, err)
		require.Equal(t, "acme", tenant)
		_, err = s.TenantForKeyHash(ctx, s.DB(), store.HashKey("secret-2"))
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, s.SetTenantWebhookURL(ctx, s.DB(), "acme", "https://hooks.example.com/x"))
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""), "an upsert keeps the webhook URL")
		tn, err := s.GetTenant(ctx, s.DB(), "acme")
		require.NoError(t, err)
		require.Equal(t, "https://hooks.example.com/x", tn.WebhookURL)
	})

	t.Run("TaskRoundTripAndTenantIsolation", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		task := newTask("acme", "alice")
		task.Metadata = json.RawMessage(`{"k":"v"}`)
		task.Store = true
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		require.Regexp(t, `^task_[0-9a-z]{26}$`, task.ID)
		require.GreaterOrEqual(t, len(task.ResultToken), 43, "result token carries at least 256 bits")

		got, err := s.GetTask(ctx, s.DB(), "acme", task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskQueued, got.Status)
		require.True(t, got.Store)
		require.JSONEq(t, `{"k":"v"}`, string(got.Metadata))
		require.Equal(t, task.CreatedAt, got.CreatedAt)

		_, err = s.GetTask(ctx, s.DB(), "globex", task.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant cannot read the task")
		require.ErrorIs(t, s.DeleteTask(ctx, s.DB(), "globex", task.ID), store.ErrNotFound, "nor delete it")
		byToken, err := s.GetTaskByResultToken(ctx, s.DB(), task.ResultToken)
		require.NoError(t, err)
		require.Equal(t, task.ID, byToken.ID)
	})

	t.Run("CreateTasksInOneStatement", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		var ts []*store.Task
		for i := range 3 {
			task := newTask("acme", "alice")
			if i == 1 {
				task.TenantID, task.Metadata, task.Store = "globex", json.RawMessage(`{"n":1}`), true
			}
			ts = append(ts, task)
		}
		require.NoError(t, s.CreateTasks(ctx, s.DB(), ts))
		for _, task := range ts {
			got, err := s.GetTask(ctx, s.DB(), task.TenantID, task.ID)
			require.NoError(t, err)
			require.Equal(t, store.TaskQueued, got.Status)
			require.Equal(t, task.Store, got.Store)
			require.Equal(t, task.ResultToken, got.ResultToken)
			require.JSONEq(t, string(task.Metadata), string(got.Metadata))
			require.Equal(t, task.CreatedAt, got.CreatedAt)
		}
		require.Len(t, map[string]bool{ts[0].ID: true, ts[1].ID: true, ts[2].ID: true}, 3)

		// All or nothing: a repeated id fails the statement and writes none.
		again, fresh := newTask("acme", "bob"), newTask("acme", "bob")
		again.ID = ts[0].ID
		require.Error(t, s.CreateTasks(ctx, s.DB(), []*store.Task{fresh, again}))
		_, err := s.GetTask(ctx, s.DB(), "acme", fresh.ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		// A key needs CreateTask, which frees an expired task's key first.
		keyed := newTask("acme", "alice")
		keyed.IdempotencyKey = "k"
		require.Error(t, s.CreateTasks(ctx, s.DB(), []*store.Task{keyed}))
	})

	t.Run("CopyTasksOnPostgres", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		if s.Pool() == nil {
			require.Error(t, s.InPgxTx(ctx, func(pgx.Tx) error { return nil }), "pgx transactions need PostgreSQL")
			return
		}
		plain, full := newTask("acme", "alice"), newTask("globex", "bob")
		full.Metadata, full.Store, full.Segment = json.RawMessage(`{"n":1}`), true, 2
		full.Output, full.Usage, full.Error = json.RawMessage(`[{"o":1}]`), json.RawMessage(`{"u":1}`), json.RawMessage(`{"e":1}`)
		full.AuthorizationRequired, full.PendingApprovals, full.PendingInputs = json.RawMessage(`[1]`), json.RawMessage(`[2]`), json.RawMessage(`[3]`)
		completed, expires, retrying := time.UnixMicro(1_700_000_000_000_001).UTC(), time.UnixMicro(1_800_000_000_000_002).UTC(), time.UnixMicro(1_750_000_000_000_003).UTC()
		full.CompletedAt, full.ExpiresAt, full.RetryingAt = &completed, &expires, &retrying
		full.Secrets, full.Status = "sealed", store.TaskRunning
		require.NoError(t, s.InPgxTx(ctx, func(tx pgx.Tx) error { return s.CopyTasks(ctx, tx, []*store.Task{plain, full}) }))
		for _, want := range []*store.Task{plain, full} {
			got, err := s.GetTask(ctx, s.DB(), want.TenantID, want.ID)
			require.NoError(t, err)
			require.Equal(t, want, got, "COPY writes every column as CreateTask's INSERT does")
		}
		require.Equal(t, store.TaskQueued, plain.Status)
		require.Nil(t, plain.Output, "an empty nullable column stays NULL")

		// All or nothing, and a failed COPY rolls the transaction back.
		again, fresh := newTask("acme", "bob"), newTask("acme", "bob")
		again.ID = plain.ID
		require.Error(t, s.InPgxTx(ctx, func(tx pgx.Tx) error { return s.CopyTasks(ctx, tx, []*store.Task{fresh, again}) }))
		_, err := s.GetTask(ctx, s.DB(), "acme", fresh.ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		keyed := newTask("acme", "alice")
		keyed.IdempotencyKey = "k"
		require.Error(t, s.InPgxTx(ctx, func(tx pgx.Tx) error { return s.CopyTasks(ctx, tx, []*store.Task{keyed}) }), "a key needs CreateTask")
	})

	t.Run("IdempotencyKeyPerTenant", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		a := newTask("acme", "alice")
		a.IdempotencyKey = "k1"
		require.NoError(t, s.CreateTask(ctx, s.DB(), a))
		dup := newTask("acme", "alice")
		dup.IdempotencyKey = "k1"
		require.ErrorIs(t, s.CreateTask(ctx, s.DB(), dup), store.ErrConflict)
		other := newTask("globex", "alice")
		other.IdempotencyKey = "k1"
		require.NoError(t, s.CreateTask(ctx, s.DB(), other), "the same key in another tenant is another task")
		got, err := s.GetTaskByIdempotencyKey(ctx, s.DB(), "acme", "k1")
		require.NoError(t, err)
		require.Equal(t, a.ID, got.ID)
	})

	t.Run("ListTasksPagesAndFilters", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		var ids []string
		for i := 0; i < 5; i++ {
			task := newTask("acme", "alice")
			if i == 4 {
				task.UserID = "bob"
			}
			require.NoError(t, s.CreateTask(ctx, s.DB(), task))
			ids = append(ids, task.ID)
			bundle.clock.Add(time.Millisecond)
		}
		require.NoError(t, s.CreateTask(ctx, s.DB(), newTask("globex", "alice")))
		page, more, err := s.ListTasks(ctx, s.DB(), store.ListTasksParams{TenantID: "acme", UserID: "alice", Limit: 3})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []string{ids[3], ids[2], ids[1]}, taskIDs(page), "newest first")
		page, more, err = s.ListTasks(ctx, s.DB(), store.ListTasksParams{TenantID: "acme", UserID: "alice", Limit: 3, After: page[2].ID})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{ids[0]}, taskIDs(page))

		ok, err := s.TransitionTask(ctx, s.DB(), ids[2], []store.TaskStatus{store.TaskQueued}, store.TaskRunning)
		require.NoError(t, err)
		require.True(t, ok)
		page, _, err = s.ListTasks(ctx, s.DB(), store.ListTasksParams{TenantID: "acme", Status: store.TaskRunning, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []string{ids[2]}, taskIDs(page))
	})

	t.Run("GuardedTransitionsAndFinish", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		task := newTask("acme", "alice")
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.TransitionTask(ctx, s.DB(), task.ID, []store.TaskStatus{store.TaskAwaitingAuthorization}, store.TaskRunning)
		require.NoError(t, err)
		require.False(t, ok, "the guard refuses a transition from a status the task is not in")

		ok, err = s.FinishTask(ctx, s.DB(), task.ID, store.FinishParams{Status: store.TaskCompleted, Output: json.RawMessage(`{"content":"hi"}`), Retention: 24 * time.Hour})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.FinishTask(ctx, s.DB(), task.ID, store.FinishParams{Status: store.TaskCanceled, Retention: 24 * time.Hour})
		require.NoError(t, err)
		require.False(t, ok, "a finished task cannot be finished again")

		got, err := s.GetTask(ctx, s.DB(), "acme", task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskCompleted, got.Status)
		require.JSONEq(t, `{"content":"hi"}`, string(got.Output))
		require.NotNil(t, got.CompletedAt)
		require.NotNil(t, got.ExpiresAt)
		require.WithinDuration(t, got.CompletedAt.Add(24*time.Hour), *got.ExpiresAt, time.Millisecond)

		bundle.clock.Add(24*time.Hour + time.Second)
		_, err = s.GetTaskByResultToken(ctx, s.DB(), task.ResultToken)
		require.ErrorIs(t, err, store.ErrNotFound, "an expired result is gone before cleanup runs")
		n, err := s.DeleteExpiredTasks(ctx, s.DB())
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("ExpiredTaskStaysWhileItsWebhooksRetry", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		task := newTask("acme", "alice")
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		_, err := s.FinishTask(ctx, s.DB(), task.ID, store.FinishParams{Status: store.TaskCompleted, Retention: time.Hour})
		require.NoError(t, err)
		d := &store.WebhookDelivery{TenantID: "acme", TaskID: task.ID, Type: "task.completed", URL: "https://hooks.example.com/", Body: []byte(`{}`)}
		require.NoError(t, s.CreateWebhookDelivery(ctx, s.DB(), d))

		bundle.clock.Add(2 * time.Hour)
		n, err := s.DeleteExpiredTasks(ctx, s.DB())
		require.NoError(t, err)
		require.Zero(t, n, "kept while a delivery is pending")
		_, err = s.GetTaskByResultToken(ctx, s.DB(), task.ResultToken)
		require.ErrorIs(t, err, store.ErrNotFound, "but hidden")

		_, err = s.RecordWebhookAttempt(ctx, s.DB(), &store.WebhookAttempt{DeliveryID: d.ID, StartedAt: bundle.clock.Now(), StatusCode: 200},
			store.WebhookOutcome{Status: store.WebhookDelivered})
		require.NoError(t, err)
		n, err = s.DeleteExpiredTasks(ctx, s.DB())
		require.NoError(t, err)
		require.Equal(t, 1, n, "deleted once its webhooks are done")
	})

	t.Run("IdempotencyKeyOfExpiredTaskIsFree", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		old := newTask("acme", "alice")
		old.IdempotencyKey = "k"
		require.NoError(t, s.CreateTask(ctx, s.DB(), old))
		_, err := s.FinishTask(ctx, s.DB(), old.ID, store.FinishParams{Status: store.TaskCompleted, Retention: time.Hour})
		require.NoError(t, err)
		bundle.clock.Add(2 * time.Hour)
		fresh := newTask("acme", "alice")
		fresh.IdempotencyKey = "k"
		require.NoError(t, s.CreateTask(ctx, s.DB(), fresh), "the expired task, not yet cleaned up, gives its key back")
		got, err := s.GetTaskByIdempotencyKey(ctx, s.DB(), "acme", "k")
		require.NoError(t, err)
		require.Equal(t, fresh.ID, got.ID)
	})

	t.Run("StoredTasksDoNotExpire", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		task := newTask("acme", "alice")
		task.Store = true
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		_, err := s.FinishTask(ctx, s.DB(), task.ID, store.FinishParams{Status: store.TaskFailed, Error: json.RawMessage(`{"code":"x"}`), Retention: time.Hour})
		require.NoError(t, err)
		bundle.clock.Add(365 * 24 * time.Hour)
		n, err := s.DeleteExpiredTasks(ctx, s.DB())
		require.NoError(t, err)
		require.Zero(t, n)
		got, err := s.GetTaskByResultToken(ctx, s.DB(), task.ResultToken)
		require.NoError(t, err)
		require.Nil(t, got.ExpiresAt)
	})

	t.Run("StepsAreRecordedOnce", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		task := newTask("acme", "alice")
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		require.NoError(t, s.InTx(ctx, func(tx *sql.Tx) error {
			return s.AppendStep(ctx, tx, task.ID, 0, "model", json.RawMessage(`{"content":"a"}`))
		}))
		require.NoError(t, s.AppendStep(ctx, s.DB(), task.ID, 1, "tool", json.RawMessage(`{"output":"b"}`)))
		require.ErrorIs(t, s.AppendStep(ctx, s.DB(), task.ID, 1, "tool", json.RawMessage(`{}`)), store.ErrConflict)
		steps, err := s.ListSteps(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Len(t, steps, 2)
		require.Equal(t, "model", steps[0].Type)
		require.JSONEq(t, `{"output":"b"}`, string(steps[1].Data))

		require.NoError(t, s.DeleteTask(ctx, s.DB(), "acme", task.ID))
		steps, err = s.ListSteps(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Empty(t, steps, "steps go with their task")
	})
}

func taskIDs(ts []*store.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}
