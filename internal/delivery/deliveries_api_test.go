package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/api"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// TestListDeliveries checks what GET /v1/tasks/{id}/deliveries shows of
// deliveries made by the real worker. It lives here, beside the worker that
// makes them, and calls the API method without the HTTP framework.
func TestListDeliveries(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setup(t, databaseURL, setupOpts{})
		const publicURL = "https://mcpidp.example.com"
		oauth, err := mcpauth.New(mcpauth.Config{Store: b.store, Keyring: b.keyring, HTTPClient: http.DefaultClient, PublicURL: publicURL})
		require.NoError(t, err)
		a, err := api.New(api.Config{Store: b.store, River: b.river, Keyring: b.keyring, OAuth: oauth, PublicURL: publicURL, Retention: time.Hour})
		require.NoError(t, err)
		ctx := context.Background()

		empty, err := a.ListDeliveries(ctx, "acme", b.task.ID)
		require.NoError(t, err)
		raw, err := json.Marshal(empty)
		require.NoError(t, err)
		require.JSONEq(t, `{"object":"list","data":[]}`, string(raw))

		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		id := b.enqueue(t, rcv.URL)
		d := b.waitEnded(t, id)

		list, err := a.ListDeliveries(ctx, "acme", b.task.ID)
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
		require.Equal(t, rcv.got()[0].header.Get("webhook-id"), g.WebhookID)
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
			_, err := a.ListDeliveries(ctx, tc.tenant, tc.task)
			var apiErr *api.Error
			require.True(t, errors.As(err, &apiErr), "%v", err)
			require.Equal(t, http.StatusNotFound, apiErr.Status)
			require.Equal(t, "not_found", apiErr.Code)
		}
	})
}
