package mcpauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// lateRefreshTransport lets a refresh request reach the authorization server
// (which rotates the refresh token) and, when armed, loses the answer: the
// caller's context ends while the response is on its way, as when an HTTP
// client of the sync proxy disconnects or a worker shuts down.
type lateRefreshTransport struct {
	base   http.RoundTripper
	cancel atomic.Pointer[context.CancelFunc]
}

func (t *lateRefreshTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	refresh := false
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		refresh = strings.Contains(string(body), "grant_type=refresh_token")
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := t.base.RoundTrip(req)
	cancel := t.cancel.Load()
	if err != nil || !refresh || cancel == nil {
		return resp, err
	}
	// The caller gives up while the answer is on its way. A real transport
	// still delivers the answer unless the request's own context ended.
	(*cancel)()
	time.Sleep(20 * time.Millisecond) // let the cancellation reach derived contexts
	if err := req.Context().Err(); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

func TestCallerCancelDuringRefreshLosesRotatedToken(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		lrt := &lateRefreshTransport{base: http.DefaultTransport}
		e, bundle := setup(t, backend, func(c *mcpauth.Config) {
			c.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: lrt}
		})
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		login(t, e, srv, "acme", "alice")
		bundle.clock.Add(2 * time.Hour) // the access token has expired

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lrt.cancel.Store(&cancel)
		if _, err := e.AccessToken(ctx, "acme", "alice", srv.URL()); err != nil {
			require.ErrorIs(t, err, context.Canceled)
		}
		lrt.cancel.Store(nil)

		// The caller that gave up must not cost the user the connection:
		// the authorization server already consumed the old refresh token.
		token, err := e.AccessToken(context.Background(), "acme", "alice", srv.URL())
		require.NoError(t, err, "the rotated refresh token was lost; the user must log in again")
		require.True(t, srv.TokenValid(token))
		require.Equal(t, 1, srv.Count("refresh"), "one refresh, finished for the caller that left")
	})
}

func TestShortLivedTokensRefreshOnEveryCall(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		// Access tokens live 30 s, less than RefreshLeeway (60 s).
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, AccessTokenTTL: 30 * time.Second})
		login(t, e, srv, "acme", "alice")

		const n = 10
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
				require.NoError(t, err)
			})
		}
		wg.Wait()
		require.LessOrEqual(t, srv.Count("refresh"), 1,
			"a token that was just issued or refreshed is used, not refreshed again by every caller")
	})
}

func TestWaitersRetryAFailedRefreshOneAfterAnother(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		// The authorization server hangs; each token request times out
		// after 300 ms (30 s in production).
		e, bundle := setup(t, backend, func(c *mcpauth.Config) {
			c.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
		})
		hang := make(chan struct{})
		var hanging atomic.Bool
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, RefreshHookFunc: func() {
			if hanging.Load() {
				select {
				case <-hang:
				case <-time.After(2 * time.Second):
				}
			}
		}})
		defer close(hang)
		login(t, e, srv, "acme", "alice")
		bundle.clock.Add(2 * time.Hour)
		hanging.Store(true)

		const n = 6
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			slowest time.Duration
		)
		for range n {
			wg.Go(func() {
				start := time.Now()
				_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
				require.Error(t, err)
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
		t.Logf("refresh requests: %d, slowest caller: %v", srv.Count("refresh"), slowest)
		require.Less(t, slowest, time.Second, "a caller waited for every other caller's failed refresh in turn")
	})
}
