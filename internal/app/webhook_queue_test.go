package app_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
)

// Webhook receivers that never answer hold webhook workers only: a task
// submitted while every webhook worker waits on one still runs at once,
// far sooner than the 10 s a delivery attempt may take.
func TestHangingWebhookReceiversDoNotDelayTasks(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "done"} })

		// More receivers than there are workers of either kind (20 each by
		// default), each on its own port, so that the per-host cap does not
		// hold them back: only the separate queue protects the tasks.
		var hanging atomic.Int64
		release := make(chan struct{})
		const receivers = 30
		urls := make([]string, receivers)
		for i := range urls {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hanging.Add(1)
				defer hanging.Add(-1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(srv.Close)
			urls[i] = srv.URL + "/hook"
		}
		t.Cleanup(func() { close(release) })

		for _, u := range urls {
			env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "hi", "webhook": map[string]string{"url": u}})
		}
		require.Eventually(t, func() bool { return hanging.Load() >= 20 }, 30*time.Second, 20*time.Millisecond,
			"deliveries reach the receivers and hang there")

		start := time.Now()
		done := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "after the webhooks"}))
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Less(t, time.Since(start), 3*time.Second, "the task waited for webhook receivers")
	})
}
