package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
	"github.com/mcpidp/mcpidp/webhooks"
)

// testBundle is a running River client with the webhook worker on a real
// database, a tenant "acme" with a signing secret, and one of its tasks.
type testBundle struct {
	store   *store.Store
	river   *river.Client[*sql.Tx]
	keyring *secretbox.Keyring
	secret  string
	task    *store.Task
}

type setupOpts struct {
	// blockPrivate keeps netguard's production setting, which refuses
	// loopback receivers.
	blockPrivate bool
	timeout      time.Duration
	// perHost is DelivererConfig.PerHost (0: its default).
	perHost int
}

func setup(t *testing.T, databaseURL string, opts setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	s, db := storetest.OpenStore(t, databaseURL, nil)

	var driver riverdriver.Driver[*sql.Tx]
	if db.Dialect == store.DialectPostgres {
		driver = riverdatabasesql.NewWithPgxListener(db.SQL, db.Pool)
	} else {
		driver = riversqlite.New(db.SQL)
	}
	migrator, err := rivermigrate.New(driver, nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)

	key := make([]byte, secretbox.KeySize)
	_, _ = rand.Read(key)
	keyring, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	secret, err := webhooks.NewSecret()
	require.NoError(t, err)
	sealed, err := keyring.Seal([]byte(secret), []byte("webhook-secret"))
	require.NoError(t, err)
	require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", sealed))
	task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
	require.NoError(t, s.CreateTask(ctx, s.DB(), task))

	timeout := opts.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	guard := netguard.New(netguard.Config{AllowPrivateNetworks: !opts.blockPrivate})
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	deliverer, err := delivery.NewDeliverer(delivery.DelivererConfig{
		Store: s, Keyring: keyring, HTTPClient: guard.Client(0), Timeout: timeout, PerHost: opts.perHost, HostBusyWait: 50 * time.Millisecond,
		BackoffFunc: func(int) time.Duration { return 20 * time.Millisecond },
		Logger:      logger,
	})
	require.NoError(t, err)
	workers := river.NewWorkers()
	river.AddWorker(workers, deliverer)
	rc, err := river.NewClient(driver, &river.Config{
		Logger:            logger,
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{delivery.Queue: {MaxWorkers: 4}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, rc.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, rc.Stop(stopCtx))
	})
	return &testBundle{store: s, river: rc, keyring: keyring, secret: secret, task: task}
}

// enqueue commits one task.completed delivery to url.
func (b *testBundle) enqueue(t *testing.T, url string) string {
	t.Helper()
	return b.enqueueFor(t, "acme", b.task.ID, url)
}

func (b *testBundle) enqueueFor(t *testing.T, tenant, taskID, url string) string {
	t.Helper()
	var id string
	require.NoError(t, b.store.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = delivery.Enqueue(context.Background(), tx, b.river, b.store, delivery.Event{
			TenantID: tenant, TaskID: taskID, Type: "task.completed", URL: url,
			Data: json.RawMessage(`{"id":"` + taskID + `","status":"completed"}`),
		})
		return err
	}))
	return id
}

// waitEnded waits until the delivery is no longer pending and returns it.
func (b *testBundle) waitEnded(t *testing.T, id string) *store.WebhookDelivery {
	t.Helper()
	var d *store.WebhookDelivery
	require.Eventually(t, func() bool {
		var err error
		d, err = b.store.GetWebhookDelivery(context.Background(), b.store.DB(), id)
		require.NoError(t, err)
		return d.Status != store.WebhookPending
	}, 20*time.Second, 10*time.Millisecond, "delivery %s still pending", id)
	return d
}

func (b *testBundle) attempts(t *testing.T, id string) []store.WebhookAttempt {
	t.Helper()
	attempts, err := b.store.ListWebhookAttempts(context.Background(), b.store.DB(), id)
	require.NoError(t, err)
	return attempts
}

// waitJobState waits until the delivery's River job is in state.
func (b *testBundle) waitJobState(t *testing.T, deliveryID string, state rivertype.JobState) *rivertype.JobRow {
	t.Helper()
	var job *rivertype.JobRow
	require.Eventually(t, func() bool {
		res, err := b.river.JobList(context.Background(), river.NewJobListParams().Kinds("webhook_delivery"))
		require.NoError(t, err)
		job = nil
		for _, j := range res.Jobs {
			var args delivery.DeliveryArgs
			require.NoError(t, json.Unmarshal(j.EncodedArgs, &args))
			if args.DeliveryID == deliveryID {
				require.Nil(t, job, "one job per delivery")
				job = j
			}
		}
		require.NotNil(t, job, "no job for delivery %s", deliveryID)
		return job.State == state
	}, 10*time.Second, 10*time.Millisecond, "webhook job never reached %s", state)
	return job
}

// receiver is a webhook endpoint on loopback that answers from a script and
// keeps every request it got.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	respond  func(n int, w http.ResponseWriter) // n counts from 1
}

type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, received{at: time.Now(), header: req.Header.Clone(), body: body})
		n := len(r.requests)
		r.mu.Unlock()
		r.respond(n, w)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.requests...)
}

func TestDeliverRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			switch {
			case n == 3:
				http.Error(w, strings.Repeat("x", 3000), http.StatusInternalServerError)
				return
			case n < 3:
				http.Error(w, "boom "+strconv.Itoa(n), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		id := b.enqueue(t, rcv.URL+"/hooks")
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookDelivered, d.Status)
		require.Equal(t, 4, d.AttemptCount)
		require.NotNil(t, d.CompletedAt)

		reqs := rcv.got()
		require.Len(t, reqs, 4)
		for i, r := range reqs {
			require.Equal(t, d.WebhookID, r.header.Get("webhook-id"), "attempt %d", i+1)
			require.NoError(t, webhooks.Verify(b.secret, r.header, r.body, time.Now()), "attempt %d", i+1)
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			require.Equal(t, "mcpidp-webhooks", r.header.Get("User-Agent"))
			require.Equal(t, string(d.Body), string(r.body), "the body is frozen at enqueue time")
		}
		var body struct {
			Type      string          `json:"type"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(reqs[0].body, &body))
		require.Equal(t, "task.completed", body.Type)
		_, err := time.Parse(time.RFC3339, body.Timestamp)
		require.NoError(t, err)
		require.JSONEq(t, `{"id":"`+b.task.ID+`","status":"completed"}`, string(body.Data))

		attempts := b.attempts(t, id)
		require.Len(t, attempts, 4)
		for i, a := range attempts {
			require.Equal(t, i+1, a.Attempt)
			require.False(t, a.StartedAt.IsZero())
			require.GreaterOrEqual(t, a.LatencyMS, int64(0))
		}
		require.Equal(t, []int{500, 500, 500, 200}, []int{attempts[0].StatusCode, attempts[1].StatusCode, attempts[2].StatusCode, attempts[3].StatusCode})
		require.Equal(t, "receiver answered 500 Internal Server Error", attempts[0].Error)
		require.Equal(t, "boom 2\n", attempts[1].ResponseBody)
		require.Equal(t, strings.Repeat("x", 1024), attempts[2].ResponseBody, "at most 1 KiB of the answer is kept")
		require.Empty(t, attempts[3].Error)
		require.NotContains(t, attempts[0].Error, b.secret)

		b.waitJobState(t, id, rivertype.JobStateCompleted)
	})
}

func TestDeliverHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		id := b.enqueue(t, rcv.URL)

		// While it waits, the delivery shows when it will try again.
		require.Eventually(t, func() bool { return len(rcv.got()) == 1 }, 10*time.Second, 5*time.Millisecond)
		require.Eventually(t, func() bool {
			d, err := b.store.GetWebhookDelivery(context.Background(), b.store.DB(), id)
			require.NoError(t, err)
			return d.AttemptCount == 1
		}, 5*time.Second, 5*time.Millisecond)
		d, err := b.store.GetWebhookDelivery(context.Background(), b.store.DB(), id)
		require.NoError(t, err)
		require.Equal(t, store.WebhookPending, d.Status)
		require.NotNil(t, d.NextAttemptAt)
		require.GreaterOrEqual(t, d.NextAttemptAt.Sub(rcv.got()[0].at), 2*time.Second)

		d = b.waitEnded(t, id)
		require.Equal(t, store.WebhookDelivered, d.Status)
		reqs := rcv.got()
		require.Len(t, reqs, 2)
		require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 2*time.Second, "the retry came before Retry-After")
		require.Equal(t, reqs[0].header.Get("webhook-id"), reqs[1].header.Get("webhook-id"))
		attempts := b.attempts(t, id)
		require.Equal(t, 429, attempts[0].StatusCode)
		require.Equal(t, 204, attempts[1].StatusCode)
	})
}

func TestDeliverPermanentFailures(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		for _, tc := range []struct {
			name    string
			respond func(w http.ResponseWriter)
			code    int
			errText string
		}{
			{"BadRequest", func(w http.ResponseWriter) { http.Error(w, "unknown event", http.StatusBadRequest) }, 400, "receiver answered 400 Bad Request"},
			{"Redirect", func(w http.ResponseWriter) {
				w.Header().Set("Location", "https://elsewhere.example.com/")
				w.WriteHeader(http.StatusFound)
			}, 302, "webhooks do not follow redirects"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { tc.respond(w) })
				id := b.enqueue(t, rcv.URL)
				d := b.waitEnded(t, id)
				require.Equal(t, store.WebhookFailed, d.Status)
				require.Contains(t, d.LastError, tc.errText)
				b.waitJobState(t, id, rivertype.JobStateCancelled)
				time.Sleep(200 * time.Millisecond) // ten backoffs: a retry would have come
				require.Len(t, rcv.got(), 1)
				attempts := b.attempts(t, id)
				require.Len(t, attempts, 1)
				require.Equal(t, tc.code, attempts[0].StatusCode)
			})
		}
	})
}

func TestDeliverBlockedURL(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{blockPrivate: true})
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
		id := b.enqueue(t, rcv.URL)
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookFailed, d.Status)
		require.Contains(t, d.LastError, "webhook URL refused")
		require.Contains(t, d.LastError, "loopback")
		require.Contains(t, d.LastError, "MCPIDP_ALLOW_PRIVATE_NETWORKS")
		b.waitJobState(t, id, rivertype.JobStateCancelled)
		require.Empty(t, rcv.got(), "no request may reach a blocked address")
		attempts := b.attempts(t, id)
		require.Len(t, attempts, 1)
		require.Zero(t, attempts[0].StatusCode)
		require.Equal(t, d.LastError, attempts[0].Error)
	})
}

func TestDeliverRetriesNetworkErrorsAndTimeouts(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{timeout: 300 * time.Millisecond})

		t.Run("Timeout", func(t *testing.T) {
			rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
				if n == 1 {
					time.Sleep(time.Second)
				}
				w.WriteHeader(http.StatusAccepted)
			})
			id := b.enqueue(t, rcv.URL)
			d := b.waitEnded(t, id)
			require.Equal(t, store.WebhookDelivered, d.Status)
			attempts := b.attempts(t, id)
			require.Len(t, attempts, 2)
			require.Zero(t, attempts[0].StatusCode)
			require.Equal(t, "no answer within 300ms", attempts[0].Error)
			require.GreaterOrEqual(t, attempts[0].LatencyMS, int64(300))
			require.Equal(t, 202, attempts[1].StatusCode)
		})

		t.Run("ConnectionRefused", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			closedURL := "http://" + ln.Addr().String() + "/hook"
			require.NoError(t, ln.Close())
			task := &store.Task{TenantID: "acme", UserID: "bob", Model: "gpt-test", Request: json.RawMessage(`{}`)}
			require.NoError(t, b.store.CreateTask(context.Background(), b.store.DB(), task))
			id := b.enqueueFor(t, "acme", task.ID, closedURL)
			require.Eventually(t, func() bool { return len(b.attempts(t, id)) >= 3 }, 10*time.Second, 10*time.Millisecond)
			d, err := b.store.GetWebhookDelivery(context.Background(), b.store.DB(), id)
			require.NoError(t, err)
			require.Equal(t, store.WebhookPending, d.Status, "network errors are retried")
			a := b.attempts(t, id)[0]
			require.Zero(t, a.StatusCode)
			require.Contains(t, a.Error, "connection refused")
		})
	})
}

func TestEnqueueRollsBackWithTheCaller(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
		ctx := context.Background()

		tx, err := b.store.DB().BeginTx(ctx, nil)
		require.NoError(t, err)
		id, err := delivery.Enqueue(ctx, tx, b.river, b.store, delivery.Event{TenantID: "acme", TaskID: b.task.ID, Type: "task.completed", URL: rcv.URL})
		require.NoError(t, err)
		// Inside the transaction, both exist.
		_, err = b.store.GetWebhookDelivery(ctx, tx, id)
		require.NoError(t, err)
		jobs, err := b.river.JobListTx(ctx, tx, river.NewJobListParams().Kinds("webhook_delivery"))
		require.NoError(t, err)
		require.Len(t, jobs.Jobs, 1)
		require.NoError(t, tx.Rollback())

		_, err = b.store.GetWebhookDelivery(ctx, b.store.DB(), id)
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := b.store.ListWebhookDeliveries(ctx, b.store.DB(), "acme", b.task.ID)
		require.NoError(t, err)
		require.Empty(t, list)
		jobs, err = b.river.JobList(ctx, river.NewJobListParams().Kinds("webhook_delivery"))
		require.NoError(t, err)
		require.Empty(t, jobs.Jobs)
		time.Sleep(200 * time.Millisecond)
		require.Empty(t, rcv.got())

		// Committed, the same call delivers.
		id = b.enqueue(t, rcv.URL)
		require.Equal(t, store.WebhookDelivered, b.waitEnded(t, id).Status)
		require.Len(t, rcv.got(), 1)
	})
}

func TestEnqueueValidates(t *testing.T) {
	t.Parallel()
	b := setup(t, storetest.DatabaseURL(t, storetest.SQLite), setupOpts{})
	ctx := context.Background()
	for _, tc := range []struct {
		ev   delivery.Event
		want string
	}{
		{delivery.Event{Type: "task.completed", URL: "https://x.example.com"}, "tenant id is required"},
		{delivery.Event{TenantID: "acme", URL: "https://x.example.com"}, "event type is required"},
		{delivery.Event{TenantID: "acme", Type: "task.completed"}, "URL is required"},
		{delivery.Event{TenantID: "acme", Type: "task.completed", URL: "https://x.example.com", Data: json.RawMessage(`{`)}, "not valid JSON"},
	} {
		err := b.store.InTx(ctx, func(tx *sql.Tx) error {
			_, err := delivery.Enqueue(ctx, tx, b.river, b.store, tc.ev)
			return err
		})
		require.ErrorContains(t, err, tc.want)
	}
}

func TestDeliverUnsignedWithoutSecret(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		require.NoError(t, b.store.UpsertTenant(context.Background(), b.store.DB(), "globex", ""))
		task := &store.Task{TenantID: "globex", UserID: "carol", Model: "gpt-test", Request: json.RawMessage(`{}`)}
		require.NoError(t, b.store.CreateTask(context.Background(), b.store.DB(), task))
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })

		id := b.enqueueFor(t, "globex", task.ID, rcv.URL)
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookDelivered, d.Status)
		r := rcv.got()[0]
		require.Equal(t, d.WebhookID, r.header.Get("webhook-id"))
		require.NotEmpty(t, r.header.Get("webhook-timestamp"))
		require.Empty(t, r.header.Get("webhook-signature"))
		require.ErrorIs(t, webhooks.Verify(b.secret, r.header, r.body, time.Now()), webhooks.ErrMissingHeaders)
	})
}

// TestDeliverToNodeReceiver has the reference standardwebhooks npm library
// verify our signatures: its receiver answers 204 only when wh.verify
// accepts, and 400 (a permanent failure for us) otherwise.
func TestDeliverToNodeReceiver(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		port := testenv.FreePort(t)
		script, err := filepath.Abs(filepath.Join("testdata", "receiver.mjs"))
		require.NoError(t, err)
		testenv.StartProcess(t, testenv.Node22(t), []string{script}, []string{
			"PORT=" + strconv.Itoa(port),
			"WEBHOOK_SECRET=" + b.secret,
			"NODE_MODULES=" + filepath.Join(testenv.NodeDir(t), "node_modules"),
		}, testenv.PortReady(port))
		url := fmt.Sprintf("http://127.0.0.1:%d/webhooks", port)

		id := b.enqueue(t, url)
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookDelivered, d.Status, "last error: %s", d.LastError)
		attempts := b.attempts(t, id)
		require.Len(t, attempts, 1)
		require.Equal(t, http.StatusNoContent, attempts[0].StatusCode)

		// The receiver does verify: a tampered body is refused by the library…
		h, err := webhooks.SignedHeaders(b.secret, "msg_tampered", time.Now(), []byte(`{"type":"a"}`))
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(`{"type":"b"}`)))
		require.NoError(t, err)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)

		// …and a delivery signed with another tenant's secret fails.
		other, err := webhooks.NewSecret()
		require.NoError(t, err)
		sealed, err := b.keyring.Seal([]byte(other), []byte("webhook-secret"))
		require.NoError(t, err)
		require.NoError(t, b.store.UpsertTenant(context.Background(), b.store.DB(), "globex", sealed))
		task := &store.Task{TenantID: "globex", UserID: "carol", Model: "gpt-test", Request: json.RawMessage(`{}`)}
		require.NoError(t, b.store.CreateTask(context.Background(), b.store.DB(), task))
		id = b.enqueueFor(t, "globex", task.ID, url)
		d = b.waitEnded(t, id)
		require.Equal(t, store.WebhookFailed, d.Status)
		require.Equal(t, "receiver answered 400 Bad Request", d.LastError)
		require.Contains(t, b.attempts(t, id)[0].ResponseBody, "No matching signature found")
	})
}

func TestDeliverGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
		id := b.enqueue(t, rcv.URL)
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookFailed, d.Status)
		require.Equal(t, delivery.DefaultMaxAttempts, d.AttemptCount)
		require.Equal(t, "receiver answered 502 Bad Gateway", d.LastError)
		require.Nil(t, d.NextAttemptAt)
		job := b.waitJobState(t, id, rivertype.JobStateDiscarded)
		require.Equal(t, delivery.DefaultMaxAttempts, job.Attempt)
		require.Len(t, rcv.got(), delivery.DefaultMaxAttempts)
		require.Len(t, b.attempts(t, id), delivery.DefaultMaxAttempts)
	})
}
