package llm_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// TestDefaultClientReusesConnections checks that the default client keeps
// its connections to the upstream for the next calls when many run at once:
// a second wave of concurrent calls dials nothing new.
func TestDefaultClientReusesConnections(t *testing.T) {
	t.Parallel()
	var dialed atomic.Int64
	var release atomic.Pointer[chan struct{}]
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-*release.Load() // hold every call of the wave open at once
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := llm.New(llm.Config{BaseURL: srv.URL})
	require.NoError(t, err)

	const n = 32
	wave := func() {
		arrived.Add(n)
		ch := make(chan struct{})
		release.Store(&ch)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, err := c.Complete(context.Background(), []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), llm.CallOptions{})
				require.NoError(t, err)
			})
		}
		arrived.Wait()
		close(ch)
		wg.Wait()
	}
	wave()
	require.EqualValues(t, n, dialed.Load())
	wave()
	require.EqualValues(t, n, dialed.Load(), "the second wave dialed new connections instead of reusing the idle ones")
}
