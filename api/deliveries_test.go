package api_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/api"
	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
	"github.com/mcpidp/mcpidp/webhooks"
)

// TestListDeliveries checks what GET /v1/tasks/{id}/deliveries shows of
// deliveries made by the real delivery worker, calling the API method
// without the HTTP framework.
func TestListDeliveries(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setupDeliveries(t, databaseURL)
		a := b.api
		ctx := context.Background()

		empty, err := a.ListDeliveries(ctx, &api.TaskRef{Tenant: "acme", ID: b.task.ID})
		require.NoError(t, err)
		raw, err := json.Marshal(empty)
		require.NoError(t, err)
		require.JSONEq(t, `{"object":"list","data":[]}`, string(raw))

		rcv := newReceiver(t)
		id := b.enqueue(t, rcv.URL)
		d := b.waitEnded(t, id)

		list, err := a.ListDeliveries(ctx, &api.TaskRef{Tenant: "acme", ID: b.task.ID})
		require.NoError(t, err)
		raw, err = json.Marshal(list)
		require.NoError(t, err)
		var got struct {
			Object string `json:"object"`
			Data   []struct {
				ID            string     `json:"id"`
				Type          string     `json:"type"`
				URL           string     `json:"url"`
				Status        string     `json:"status"`
				WebhookID     string     `json:"webhook_id"`
				CreatedAt     time.Time  `json:"created_at"`
				NextAttemptAt *time.Time `json:"next_attempt_at"`
				Attempts      []struct {
					Attempt    int       `json:"attempt"`
					StatusCode *int      `json:"status_code"`
					LatencyMS  *int64    `json:"latency_ms"`
					Error      *string   `json:"error"`
					At         time.Time `json:"at"`
				} `json:"attempts"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(raw, &got))
		require.Equal(t, "list", got.Object)
		require.Len(t, got.Data, 1)
		g := got.Data[0]
		require.Equal(t, id, g.ID)
		require.Equal(t, "task.completed", g.Type)
		require.Equal(t, rcv.URL, g.URL)
		require.Equal(t, "delivered", g.Status)
		require.Equal(t, d.WebhookID, g.WebhookID)
		require.Equal(t, rcv.firstWebhookID(), g.WebhookID)
		require.Nil(t, g.NextAttemptAt)
		require.Len(t, g.Attempts, 2)
		require.Equal(t, 1, g.Attempts[0].Attempt)
		require.Equal(t, 503, *g.Attempts[0].StatusCode)
		require.Equal(t, "receiver answered 503 Service Unavailable", *g.Attempts[0].Error)
		require.NotNil(t, g.Attempts[0].LatencyMS)
		require.False(t, g.Attempts[0].At.IsZero())
		require.Equal(t, 200, *g.Attempts[1].StatusCode)
		require.Nil(t, g.Attempts[1].Error)

		// Another tenant's task and an unknown one are both 404.
		for _, tc := range []struct{ tenant, task string }{{"globex", b.task.ID}, {"acme", "task_missing"}} {
			_, err := a.ListDeliveries(ctx, &api.TaskRef{Tenant: tc.tenant, ID: tc.task})
			var apiErr *api.Error
			require.True(t, errors.As(err, &apiErr), "%v", err)
			require.Equal(t, http.StatusNotFound, apiErr.Status)
			require.Equal(t, "not_found", apiErr.Code)
		}
	})
}

type deliveriesBundle struct {
	api   *api.API
	store *store.Store
	river *river.Client[*sql.Tx]
	task  *store.Task
}

// setupDeliveries runs the webhook delivery worker on a fresh database with
// one task of tenant acme, and the API over it.
func setupDeliveries(t *testing.T, databaseURL string) *deliveriesBundle {
	t.Helper()
	ctx := context.Background()
	st, db := storetest.OpenStore(t, databaseURL, nil)
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
	require.NoError(t, st.UpsertTenant(ctx, st.DB(), "acme", sealed))
	tk := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
	require.NoError(t, st.CreateTask(ctx, st.DB(), tk))

	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	deliverer, err := delivery.NewDeliverer(delivery.DelivererConfig{
		Store: st, Keyring: keyring, HTTPClient: netguard.New(netguard.Config{AllowPrivateNetworks: true}).Client(0), Timeout: 5 * time.Second,
		BackoffFunc: func(int) time.Duration { return 20 * time.Millisecond }, Logger: logger,
	})
	require.NoError(t, err)
	workers := river.NewWorkers()
	river.AddWorker(workers, deliverer)
	rc, err := river.NewClient(driver, &river.Config{
		Logger: logger, Workers: workers, Queues: map[string]river.QueueConfig{delivery.Queue: {MaxWorkers: 4}},
		FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, rc.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, rc.Stop(stopCtx))
	})

	const publicURL = "https://mcpidp.example.com"
	oauth, err := mcpauth.New(mcpauth.Config{Store: st, Keyring: keyring, HTTPClient: http.DefaultClient, PublicURL: publicURL})
	require.NoError(t, err)
	tasks, err := task.NewService(task.ServiceConfig{Store: st, Keyring: keyring, OAuth: oauth,
		RiverFunc: func() *river.Client[*sql.Tx] { return rc }, PublicURL: publicURL, Retention: time.Hour})
	require.NoError(t, err)
	a, err := api.New(api.Config{Store: st, OAuth: oauth, Tasks: tasks, PublicURL: publicURL})
	require.NoError(t, err)
	return &deliveriesBundle{api: a, store: st, river: rc, task: tk}
}

// enqueue commits one task.completed delivery to url.
func (b *deliveriesBundle) enqueue(t *testing.T, url string) string {
	t.Helper()
	var id string
	require.NoError(t, b.store.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = delivery.Enqueue(context.Background(), tx, b.river, b.store, delivery.Event{
			TenantID: "acme", TaskID: b.task.ID, Type: "task.completed", URL: url,
			Data: json.RawMessage(`{"id":"` + b.task.ID + `","status":"completed"}`),
		})
		return err
	}))
	return id
}

// waitEnded waits until the delivery is no longer pending and returns it.
func (b *deliveriesBundle) waitEnded(t *testing.T, id string) *store.WebhookDelivery {
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

// receiver is a webhook endpoint on loopback that is down for the first
// request and answers 200 after that.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	ids []string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		n := len(r.ids)
		r.mu.Unlock()
		if n == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) firstWebhookID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return ""
	}
	return r.ids[0]
}
