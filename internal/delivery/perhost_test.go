package delivery_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// A receiver that never answers gets at most PerHost attempts at once;
// the other workers stay free for other receivers.
func TestDeliverCapsAttemptsPerHost(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		// Four workers, two of which may wait on one host: the attempt
		// timeout (30s) is far beyond what the test waits for.
		b := setup(t, databaseURL, setupOpts{perHost: 2, timeout: 30 * time.Second})

		var mu sync.Mutex
		inFlight, most := 0, 0
		release := make(chan struct{})
		hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
		}))
		t.Cleanup(hanging.Close)
		t.Cleanup(func() { close(release) })
		ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		t.Cleanup(ok.Close)

		for range 6 {
			b.enqueue(t, hanging.URL+"/hook")
		}
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return inFlight == 2
		}, 10*time.Second, 10*time.Millisecond, "two attempts reach the hanging receiver")

		start := time.Now()
		id := b.enqueue(t, ok.URL+"/hook")
		d := b.waitEnded(t, id)
		require.Equal(t, store.WebhookDelivered, d.Status)
		require.Less(t, time.Since(start), 5*time.Second, "another receiver is not held up by the hanging one")

		time.Sleep(300 * time.Millisecond) // snoozed deliveries come back meanwhile
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 2, most, "never more than PerHost attempts to one host at once")
	})
}
