package task_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
)

const tenantHook = "https://hooks.example.com/tenant"

type testBundle struct {
	store   *store.Store
	db      *store.DB
	river   *river.Client[*sql.Tx]
	keyring *secretbox.Keyring
	clock   *storetest.Clock
}

// setup builds a service over a fresh database. Its River client only
// inserts (no workers run), so every job a transition queued stays there
// for the test to read.
func setup(t *testing.T, databaseURL string) (*task.Service, *testBundle) {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock()
	st, db := storetest.OpenStore(t, databaseURL, clock.Now)
	var driver riverdriver.Driver[*sql.Tx]
	if db.Dialect == store.DialectPostgres {
		driver = riverdatabasesql.New(db.SQL)
	} else {
		driver = riversqlite.New(db.SQL)
	}
	migrator, err := rivermigrate.New(driver, nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	rc, err := river.NewClient(driver, &river.Config{})
	require.NoError(t, err)
	keyring, err := secretbox.ParseKeyring("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	require.NoError(t, err)
	oauth, err := mcpauth.New(mcpauth.Config{Store: st, Keyring: keyring, HTTPClient: http.DefaultClient, PublicURL: "http://localhost", Now: clock.Now})
	require.NoError(t, err)
	cfg := task.ServiceConfig{Store: st, Keyring: keyring, OAuth: oauth,
		RiverFunc: func() *river.Client[*sql.Tx] { return rc }, PublicURL: "https://mcpidp.example.com/", Retention: time.Hour}
	if db.Pool != nil {
		// As the app does on PostgreSQL: grouped submissions go through
		// River's pgx driver.
		prc, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{})
		require.NoError(t, err)
		cfg.PgxRiverFunc = func() *river.Client[pgx.Tx] { return prc }
	}
	svc, err := task.NewService(cfg)
	require.NoError(t, err)
	require.NoError(t, st.UpsertTenant(ctx, st.DB(), "acme", ""))
	require.NoError(t, st.SetTenantWebhookURL(ctx, st.DB(), "acme", tenantHook))
	require.NoError(t, st.UpsertTenant(ctx, st.DB(), "other", ""))
	return svc, &testBundle{store: st, db: db, river: rc, keyring: keyring, clock: clock}
}

func createParams(key string) task.CreateParams {
	return task.CreateParams{Tenant: "acme", IdempotencyKey: key, User: "alice", Model: "m", Store: false,
		Metadata: json.RawMessage(`{}`),
		Request:  task.Request{Body: json.RawMessage(`{"model":"m"}`), Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}, MaxSteps: 3},
		Secrets:  task.Secrets{UpstreamAuthorization: "sk-upstream"},
	}
}

// job is a River job as a test sees it.
type job struct {
	ID    int64
	Kind  string
	State rivertype.JobState
	Args  map[string]any
}

// jobs lists the task's River jobs of the given kind.
func (b *testBundle) jobs(t *testing.T, taskID, kind string) []job {
	t.Helper()
	res, err := b.river.JobList(context.Background(), river.NewJobListParams().Kinds(kind).First(1000))
	require.NoError(t, err)
	var out []job
	for _, j := range res.Jobs {
		var args map[string]any
		require.NoError(t, json.Unmarshal(j.EncodedArgs, &args))
		if args["task_id"] == taskID {
			out = append(out, job{ID: j.ID, Kind: j.Kind, State: j.State, Args: args})
		}
	}
	return out
}

// events lists the types of the webhooks and callbacks queued for the task.
func (b *testBundle) events(t *testing.T, taskID string) []string {
	t.Helper()
	ds, err := b.store.ListWebhookDeliveries(context.Background(), b.store.DB(), "acme", taskID)
	require.NoError(t, err)
	var out []string
	for _, d := range ds {
		out = append(out, d.Type)
	}
	return out
}

func (b *testBundle) parked(t *testing.T, id string) int64 {
	t.Helper()
	jobID, err := b.store.ContinuationJob(context.Background(), b.store.DB(), id)
	require.NoError(t, err)
	return jobID
}

func (b *testBundle) task(t *testing.T, id string) *store.Task {
	t.Helper()
	got, err := b.store.GetTaskByID(context.Background(), b.store.DB(), id)
	require.NoError(t, err)
	return got
}

// running creates a task and claims its first segment, as a worker does.
func running(t *testing.T, svc *task.Service, b *testBundle) *task.Object {
	t.Helper()
	o, created, err := svc.Create(context.Background(), createParams(""))
	require.NoError(t, err)
	require.True(t, created)
	runs := b.jobs(t, o.ID, "task_run")
	require.Len(t, runs, 1)
	ok, err := b.store.ClaimTask(context.Background(), b.store.DB(), o.ID, 0, runs[0].ID)
	require.NoError(t, err)
	require.True(t, ok)
	return o
}

// paused pauses a running task for a login to a real protected MCP server
// and returns the task and that server's canonical URL.
func paused(t *testing.T, svc *task.Service, b *testBundle, callback string) (*task.Object, string) {
	t.Helper()
	return pausedWith(t, svc, b, callback, nil)
}

// pausedWith is paused with the reason the refused token could not be
// renewed (nil: the user never logged in).
func pausedWith(t *testing.T, svc *task.Service, b *testBundle, callback string, renewErr error) (*task.Object, string) {
	t.Helper()
	ctx := context.Background()
	o := running(t, svc, b)
	srv, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	req := &task.Request{AuthorizationRequestCallback: callback}
	err := svc.Pause(ctx, task.PauseParams{Task: b.task(t, o.ID), Request: req, ChallengedAfter: time.Now(),
		Challenges: []*mcpclient.AuthChallengeError{{ServerURL: srv.URL, StatusCode: http.StatusUnauthorized, RenewErr: renewErr}}})
	require.NoError(t, err)
	canon, err := mcpauth.CanonicalServerURL(srv.URL)
	require.NoError(t, err)
	return o, canon
}

func TestCreate(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		svc, b := setup(t, databaseURL)
		ctx := context.Background()

		o, created, err := svc.Create(ctx, createParams("key-1"))
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, task.StatusQueued, o.Status)
		require.True(t, strings.HasPrefix(o.ResultURLs.JSON, "https://mcpidp.example.com/r/"), o.ResultURLs.JSON)

		// The row and its first run job.
		row := b.task(t, o.ID)
		runs := b.jobs(t, o.ID, "task_run")
		require.Len(t, runs, 1)
		require.EqualValues(t, 0, runs[0].Args["segment"])
		// Secrets are sealed to the task, not stored in the clear.
		require.NotContains(t, row.Secrets, "sk-upstream")
		secrets, err := task.OpenSecrets(b.keyring, row)
		require.NoError(t, err)
		require.Equal(t, "sk-upstream", secrets.UpstreamAuthorization)

		// The same idempotency key answers with the same task and no new job.
		again, created, err := svc.Create(ctx, createParams("key-1"))
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, o.ID, again.ID)
		require.Len(t, b.jobs(t, o.ID, "task_run"), 1)
		// The new task's rendering is what rendering its stored row gives,
		// grouped or alone (Create does not decode the request it wrote).
		grouped, created, err := svc.Create(ctx, createParams(""))
		require.NoError(t, err)
		require.True(t, created)
		for _, made := range []*task.Object{o, grouped} {
			stored := task.Build(b.task(t, made.ID), []store.Step{}, "https://mcpidp.example.com")
			require.Equal(t, stored, made)
			require.Len(t, made.Initial, 1)
		}
	})
}

// Submissions without idempotency keys that arrive together are committed
// in groups; each caller's answer is still about its own task: every
// accepted task has its row and exactly one run job, and a submission
// that cannot be written (here a repeated id) fails alone, without taking
// the rest of its group with it.
func TestCreateConcurrentSubmissions(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		svc, b := setup(t, databaseURL)
		ctx := context.Background()
		// Hold the database while the submissions queue up, so they wait
		// for the same group transactions.
		hold, err := b.db.SQL.Conn(ctx)
		require.NoError(t, err)
		holdTx, err := hold.BeginTx(ctx, nil)
		require.NoError(t, err)
		// SQLite: the one connection, in a write transaction. PostgreSQL: a
		// lock that keeps inserts out.
		if b.db.Dialect == store.DialectPostgres {
			_, err = holdTx.ExecContext(ctx, `LOCK TABLE mcpidp_task IN EXCLUSIVE MODE`)
		} else {
			_, err = holdTx.ExecContext(ctx, `UPDATE mcpidp_tenant SET webhook_url = webhook_url WHERE id = 'acme'`)
		}
		require.NoError(t, err)

		const n = 40
		type result struct {
			o       *task.Object
			created bool
			err     error
		}
		results := make(chan result, n)
		for i := range n {
			p := createParams("")
			if i%20 == 7 {
				p.ID = "task_repeated"
			}
			go func() {
				o, created, err := svc.Create(ctx, p)
				results <- result{o, created, err}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, holdTx.Commit())
		require.NoError(t, hold.Close())

		var accepted []*task.Object
		failed := 0
		for range n {
			r := <-results
			if r.err != nil {
				failed++
				continue
			}
			require.True(t, r.created)
			accepted = append(accepted, r.o)
		}
		require.Equal(t, 1, failed, "only the second task_repeated fails")
		require.Len(t, accepted, n-1)
		for _, o := range accepted {
			row := b.task(t, o.ID)
			require.Equal(t, store.TaskQueued, row.Status)
			require.Len(t, b.jobs(t, o.ID, "task_run"), 1, o.ID)
			secrets, err := task.OpenSecrets(b.keyring, row)
			require.NoError(t, err)
			require.Equal(t, "sk-upstream", secrets.UpstreamAuthorization)
		}
		res, err := b.river.JobList(ctx, river.NewJobListParams().Kinds("task_run").First(1000))
		require.NoError(t, err)
		require.Len(t, res.Jobs, n-1, "no job without its task")
	})
}

// A task whose job cannot be queued is not written either: the row and
// the job commit together, alone (with an idempotency key) or grouped.
func TestCreateWritesRowAndJobInOneTransaction(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		svc, b := setup(t, databaseURL)
		ctx := context.Background()
		// River's job table gone: the insert fails after the row was written.
		_, err := b.db.SQL.ExecContext(ctx, `DROP TABLE river_job`)
		require.NoError(t, err)
		_, _, err = svc.Create(ctx, createParams("key-2"))
		require.Error(t, err)
		_, err = b.store.GetTaskByIdempotencyKey(ctx, b.store.DB(), "acme", "key-2")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = svc.Create(ctx, createParams(""))
		require.Error(t, err)
		var rows int
		require.NoError(t, b.db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM mcpidp_task`).Scan(&rows))
		require.Zero(t, rows)
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()

		t.Run("Queued", func(t *testing.T) {
			svc, b := setup(t, databaseURL)
			o, _, err := svc.Create(ctx, createParams(""))
			require.NoError(t, err)
			got, err := svc.Cancel(ctx, task.CancelParams{Tenant: "acme", ID: o.ID})
			require.NoError(t, err)
			require.Equal(t, task.StatusCanceled, got.Status)
			require.NotNil(t, got.ExpiresAt, "a store=false task expires after it ends")
			require.Equal(t, []string{task.EventCanceled}, b.events(t, o.ID))

			_, err = svc.Cancel(ctx, task.CancelParams{Tenant: "acme", ID: o.ID})
			var ended *task.NotCancelableError
			require.ErrorAs(t, err, &ended)
			require.Equal(t, task.StatusCanceled, ended.Status)
			require.Equal(t, []string{task.EventCanceled}, b.events(t, o.ID), "no second event")
		})

		t.Run("Running", func(t *testing.T) {
			svc, b := setup(t, databaseURL)
			o := running(t, svc, b)
			got, err := svc.Cancel(ctx, task.CancelParams{Tenant: "acme", ID: o.ID})
			require.NoError(t, err)
			require.Equal(t, task.StatusCanceled, got.Status)
			// The running job is the task's own: it is left to stop itself.
			require.Len(t, b.jobs(t, o.ID, "task_run"), 1)
		})

		t.Run("Awaiting", func(t *testing.T) {
			svc, b := setup(t, databaseURL)
			o, _ := paused(t, svc, b, "")
			_, err := svc.Cancel(ctx, task.CancelParams{Tenant: "acme", ID: o.ID})
			require.NoError(t, err)
			waits, err := b.store.TaskWaits(ctx, b.store.DB(), o.ID)
			require.NoError(t, err)
			require.Empty(t, waits)
			for _, j := range b.jobs(t, o.ID, "task_run") {
				require.NotEqual(t, rivertype.JobStatePending, j.State, "the parked continuation is dropped")
			}
			require.Equal(t, []string{task.EventAuthorizationRequired, task.EventCanceled}, b.events(t, o.ID))
		})

		t.Run("OtherTenant", func(t *testing.T) {
			svc, _ := setup(t, databaseURL)
			o, _, err := svc.Create(ctx, createParams(""))
			require.NoError(t, err)
			_, err = svc.Cancel(ctx, task.CancelParams{Tenant: "other", ID: o.ID})
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o, _ := paused(t, svc, b, "")
		parked := b.parked(t, o.ID)
		require.NotZero(t, parked)

		require.ErrorIs(t, svc.Delete(ctx, task.DeleteParams{Tenant: "other", ID: o.ID}), store.ErrNotFound)
		_, err := b.river.JobGet(ctx, parked)
		require.NoError(t, err, "another tenant's delete leaves the job")

		require.NoError(t, svc.Delete(ctx, task.DeleteParams{Tenant: "acme", ID: o.ID}))
		_, err = b.store.GetTaskByID(ctx, b.store.DB(), o.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.river.JobGet(ctx, parked)
		require.ErrorIs(t, err, river.ErrNotFound, "the parked continuation would stay in River forever")
		require.ErrorIs(t, svc.Delete(ctx, task.DeleteParams{Tenant: "acme", ID: o.ID}), store.ErrNotFound)
	})
}

func TestPause(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		const callback = "https://app.example.com/logins"
		o, server := paused(t, svc, b, callback)

		row := b.task(t, o.ID)
		require.Equal(t, task.StatusAwaitingAuthorization, row.Status)
		require.Equal(t, 1, row.Segment)
		var logins []task.AuthorizationRequest
		require.NoError(t, json.Unmarshal(row.AuthorizationRequired, &logins))
		require.Len(t, logins, 1)

		waits, err := b.store.TaskWaits(ctx, b.store.DB(), o.ID)
		require.NoError(t, err)
		require.Len(t, waits, 1)
		require.Equal(t, server, waits[0].ServerURL)

		// The continuation is staged (pending) for segment 1 and remembered.
		var cont *job
		for _, j := range b.jobs(t, o.ID, "task_run") {
			if j.State == rivertype.JobStatePending {
				cont = &j
			}
		}
		require.NotNil(t, cont)
		require.EqualValues(t, 1, cont.Args["segment"])
		require.Equal(t, cont.ID, b.parked(t, o.ID))
		timeouts := b.jobs(t, o.ID, "task_authorization_timeout")
		require.Len(t, timeouts, 1)
		require.Equal(t, rivertype.JobStateScheduled, timeouts[0].State)
		require.Len(t, b.jobs(t, o.ID, "task_login_recheck"), 1)

		// The callback gets the login link, the webhook the task.
		ds, err := b.store.ListWebhookDeliveries(ctx, b.store.DB(), "acme", o.ID)
		require.NoError(t, err)
		require.Len(t, ds, 2)
		byType := map[string]*store.WebhookDelivery{}
		for _, d := range ds {
			byType[d.Type] = d
		}
		require.Equal(t, callback, byType[task.CallbackAuthorizationRequired].URL)
		require.Contains(t, string(byType[task.CallbackAuthorizationRequired].Body), "so the task can go on: "+logins[0].AuthorizationURL)
		require.Equal(t, tenantHook, byType[task.EventAuthorizationRequired].URL)

		// A task that no longer runs does not pause.
		o2 := running(t, svc, b)
		_, err = svc.Cancel(ctx, task.CancelParams{Tenant: "acme", ID: o2.ID})
		require.NoError(t, err)
		err = svc.Pause(ctx, task.PauseParams{Task: b.task(t, o2.ID), Request: &task.Request{},
			Challenges: []*mcpclient.AuthChallengeError{{ServerURL: server, StatusCode: http.StatusUnauthorized}}})
		require.ErrorIs(t, err, task.ErrCanceled)
		require.Empty(t, b.jobs(t, o2.ID, "task_authorization_timeout"))
	})
}

func TestResumeOnce(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o, server := paused(t, svc, b, "")
		parked := b.parked(t, o.ID)

		p := task.ResumeParams{Tenant: "acme", User: "alice", ServerURL: server}
		for i, want := range []int{1, 0} {
			var n int
			require.NoError(t, b.store.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				n, err = svc.ResumeTx(ctx, tx, p)
				return err
			}))
			require.Equal(t, want, n, "resume %d", i)
		}
		row := b.task(t, o.ID)
		require.Equal(t, task.StatusQueued, row.Status)
		require.Equal(t, 1, row.Segment)
		_, err := b.river.JobGet(ctx, parked)
		require.ErrorIs(t, err, river.ErrNotFound, "the parked job gives way to a fresh one")
		var fresh []job
		for _, j := range b.jobs(t, o.ID, "task_run") {
			if j.Args["segment"] == float64(1) {
				fresh = append(fresh, j)
			}
		}
		require.Len(t, fresh, 1, "exactly one run of the new segment")
		require.Equal(t, fresh[0].ID, b.parked(t, o.ID))

		// A refresh does not resume a task that waits for a login.
		o2, server2 := paused(t, svc, b, "")
		require.NoError(t, b.store.InTx(ctx, func(tx *sql.Tx) error {
			n, err := svc.ResumeRefreshedTx(ctx, tx, task.ResumeParams{Tenant: "acme", User: "alice", ServerURL: server2})
			require.Zero(t, n)
			return err
		}))
		require.Equal(t, task.StatusAwaitingAuthorization, b.task(t, o2.ID).Status)
		n, err := svc.Resume(ctx, task.ResumeParams{Tenant: "acme", User: "alice", ServerURL: server2})
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestFinish(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o := running(t, svc, b)

		ok, err := svc.Finish(ctx, task.FinishParams{TaskID: o.ID, Status: task.StatusCompleted,
			Output: json.RawMessage(`{"content":"done","markdown":"done\n"}`), Usage: json.RawMessage(`{"total_tokens":3}`)})
		require.NoError(t, err)
		require.True(t, ok)
		row := b.task(t, o.ID)
		require.Equal(t, task.StatusCompleted, row.Status)
		require.NotNil(t, row.ExpiresAt, "store=false results are kept for the retention only")
		require.Equal(t, []string{task.EventCompleted}, b.events(t, o.ID))

		ok, err = svc.Finish(ctx, task.FinishParams{TaskID: o.ID, Status: task.StatusFailed, Error: &task.Error{Code: task.CodeInternal, Message: "late"}})
		require.NoError(t, err)
		require.False(t, ok, "an ended task stays as it ended")
		require.Equal(t, []string{task.EventCompleted}, b.events(t, o.ID))

		// OnlyFrom guards: a queued task is not failed as if it were running.
		o2, _, err := svc.Create(ctx, createParams(""))
		require.NoError(t, err)
		ok, err = svc.Finish(ctx, task.FinishParams{TaskID: o2.ID, Status: task.StatusFailed, OnlyFrom: task.StatusRunning,
			Error: &task.Error{Code: task.CodeInternal, Message: "orphan"}})
		require.NoError(t, err)
		require.False(t, ok)
		require.Empty(t, b.events(t, o2.ID))
	})
}

// The authorization timeout fails a task whose login links expired, by
// the store's clock, and only then.
func TestTimeoutAuthorization(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o, _ := paused(t, svc, b, "")
		wait, err := svc.TimeoutAuthorization(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 1})
		require.NoError(t, err)
		require.Positive(t, wait, "the link has not expired yet")
		require.Equal(t, task.StatusAwaitingAuthorization, b.task(t, o.ID).Status)

		_, err = svc.TimeoutAuthorization(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 0})
		require.NoError(t, err)
		require.Equal(t, task.StatusAwaitingAuthorization, b.task(t, o.ID).Status, "a stale segment's timeout does nothing")

		b.clock.Add(48 * time.Hour)
		wait, err = svc.TimeoutAuthorization(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 1})
		require.NoError(t, err)
		require.Zero(t, wait)
		row := b.task(t, o.ID)
		require.Equal(t, task.StatusFailed, row.Status)
		require.Contains(t, string(row.Error), task.CodeAuthorizationTimeout)
		require.Equal(t, []string{task.EventAuthorizationRequired, task.EventFailed}, b.events(t, o.ID))
		waits, err := b.store.TaskWaits(ctx, b.store.DB(), o.ID)
		require.NoError(t, err)
		require.Empty(t, waits)
	})
}

// A task that paused because a refresh failed resumes, once, when a later
// refresh of that connection stores a token.
func TestResumeAfterRefresh(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o, server := pausedWith(t, svc, b, "", errors.New("refresh failed: authorization server down"))
		p := task.ResumeParams{Tenant: "acme", User: "alice", ServerURL: server}
		for i, want := range []int{1, 0} {
			require.NoError(t, b.store.InTx(ctx, func(tx *sql.Tx) error {
				n, err := svc.ResumeRefreshedTx(ctx, tx, p)
				require.Equal(t, want, n, "refresh %d", i)
				return err
			}))
		}
		require.Equal(t, task.StatusQueued, b.task(t, o.ID).Status)
	})
}
