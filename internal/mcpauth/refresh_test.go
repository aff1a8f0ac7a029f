package mcpauth_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// heldRefresh makes the authorization server hold every refresh request
// until the test lets it go.
type heldRefresh struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

// newHeldRefresh returns a hold; the caller defers let, which must run
// before the server's cleanup (Close waits for the held request).
func newHeldRefresh() *heldRefresh {
	return &heldRefresh{started: make(chan struct{}, 10), release: make(chan struct{})}
}

func (h *heldRefresh) hook() {
	h.started <- struct{}{}
	<-h.release
}

func (h *heldRefresh) let() { h.once.Do(func() { close(h.release) }) }

func (h *heldRefresh) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh request reached the authorization server")
	}
}

type tokenResult struct {
	token string
	err   error
}

func accessTokenAsync(e *mcpauth.Engine, tenant, user, serverURL string) <-chan tokenResult {
	ch := make(chan tokenResult, 1)
	go func() {
		token, err := e.AccessToken(context.Background(), tenant, user, serverURL)
		ch <- tokenResult{token, err}
	}()
	return ch
}

func TestRefreshHoldsNoTransaction(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		e, bundle := setup(t, backend, nil)
		held := newHeldRefresh()
		defer held.let()
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, RefreshHookFunc: held.hook})
		login(t, e, srv, "acme", "alice")
		login(t, e, srv, "acme", "bob")
		bobToken, err := e.AccessToken(context.Background(), "acme", "bob", srv.URL())
		require.NoError(t, err)
		bundle.clock.Add(2 * time.Hour) // both tokens have expired

		refreshing := accessTokenAsync(e, "acme", "alice", srv.URL())
		held.waitStarted(t)

		// While alice's refresh request hangs, the same process (with
		// SQLite: the same single database connection) reads and writes:
		// a whole login for another user, and a write transaction on
		// bob's connection.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "globex", User: "carol", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		retry, err := e.TokenRejected(ctx, "acme", "bob", srv.URL(), bobToken)
		require.NoError(t, err)
		require.True(t, retry)
		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Len(t, conns, 1)
		require.Less(t, time.Since(start), 2*time.Second, "the database waited for the refresh request")

		// Another caller for alice waits for the refresh under way rather
		// than making a second one, and gives up with its context.
		short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancelShort()
		_, err = e.AccessToken(short, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 1, srv.Count("refresh"))
		select {
		case r := <-refreshing:
			t.Fatalf("the refresh ended while its request was held: %+v", r)
		default:
		}

		held.let()
		r := <-refreshing
		require.NoError(t, r.err)
		require.True(t, srv.TokenValid(r.token))
		again, err := e.AccessToken(context.Background(), "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, r.token, again, "the refreshed token was stored")
		require.Equal(t, 1, srv.Count("refresh"))
	})
}

func TestRefreshLeaseOfAGoneRefresherExpires(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		res := login(t, e, srv, "acme", "alice")
		bundle.clock.Add(2 * time.Hour)

		// A process took the refresh lease and died.
		s, _ := storetest.OpenStore(t, bundle.databaseURL, bundle.clock.Now)
		now := bundle.clock.Now()
		ok, err := s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", res.ConnectionID, "dead-process", now, now.Add(45*time.Second), "")
		require.NoError(t, err)
		require.True(t, ok)

		waiting := accessTokenAsync(e, "acme", "alice", srv.URL())
		time.Sleep(300 * time.Millisecond)
		select {
		case r := <-waiting:
			t.Fatalf("AccessToken did not wait for the live lease: %+v", r)
		default:
		}
		require.Zero(t, srv.Count("refresh"), "nobody refreshes while someone else holds a live lease")

		bundle.clock.Add(time.Minute) // the lease's term ends
		select {
		case r := <-waiting:
			require.NoError(t, r.err)
			require.True(t, srv.TokenValid(r.token))
		case <-time.After(10 * time.Second):
			t.Fatal("AccessToken kept waiting for an expired lease")
		}
		require.Equal(t, 1, srv.Count("refresh"))

		// The dead process's lease is gone: were it to come back, it could
		// store nothing.
		err = s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", res.ConnectionID, store.OAuthTokenUpdate{
			AccessToken: "stale", TokenType: "Bearer", LeaseID: "dead-process"})
		require.ErrorIs(t, err, store.ErrConflict)
	})
}

func TestRefreshLeaseReleasedWaiterRefreshes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		res := login(t, e, srv, "acme", "alice")
		bundle.clock.Add(2 * time.Hour)

		// Another process holds the lease, then gives up without storing
		// anything (its request failed): a waiter refreshes itself.
		s, _ := storetest.OpenStore(t, bundle.databaseURL, bundle.clock.Now)
		now := bundle.clock.Now()
		ok, err := s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", res.ConnectionID, "other-process", now, now.Add(45*time.Second), "")
		require.NoError(t, err)
		require.True(t, ok)
		waiting := accessTokenAsync(e, "acme", "alice", srv.URL())
		time.Sleep(200 * time.Millisecond)
		require.Zero(t, srv.Count("refresh"))
		require.NoError(t, s.ReleaseOAuthRefreshLease(ctx, s.DB(), "acme", res.ConnectionID, "other-process"))
		select {
		case r := <-waiting:
			require.NoError(t, r.err)
			require.True(t, srv.TokenValid(r.token))
		case <-time.After(10 * time.Second):
			t.Fatal("AccessToken kept waiting for a released lease")
		}
		require.Equal(t, 1, srv.Count("refresh"))
	})
}

func TestNewLoginDuringRefreshWins(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		held := newHeldRefresh()
		defer held.let()
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, RefreshHookFunc: held.hook})
		login(t, e, srv, "acme", "alice")
		bundle.clock.Add(2 * time.Hour)

		refreshing := accessTokenAsync(e, "acme", "alice", srv.URL())
		held.waitStarted(t)
		login(t, e, srv, "acme", "alice") // the user logs in again meanwhile
		fresh, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		held.let()
		r := <-refreshing
		require.NoError(t, r.err)
		require.Equal(t, fresh, r.token, "the refresh of the old tokens gives way to the new login")
		stored, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, fresh, stored, "the refresh did not store its outcome over the new login's tokens")
	})
}

func TestRefreshFailedTxFuncErrorRollsBack(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		var (
			mu    sync.Mutex
			calls int
		)
		e, bundle := setup(t, backend, func(c *mcpauth.Config) {
			c.RefreshFailedTxFunc = func(ctx context.Context, tx *sql.Tx, tenant, user string, conn mcpauth.Connection) error {
				mu.Lock()
				defer mu.Unlock()
				calls++
				require.Equal(t, mcpauth.StatusRefreshFailed, conn.Status)
				// The status change is visible inside the transaction.
				var status string
				require.NoError(t, tx.QueryRowContext(ctx, `SELECT status FROM mcpidp_oauth_connection WHERE id = $1`, conn.ID).Scan(&status))
				require.Equal(t, "refresh_failed", status)
				if calls == 1 {
					return errors.New("webhook queue unavailable")
				}
				return nil
			}
		})
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		login(t, e, srv, "acme", "alice")
		srv.RevokeAll()
		bundle.clock.Add(2 * time.Hour)

		_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.ErrorContains(t, err, "webhook queue unavailable")
		require.NotErrorIs(t, err, mcpauth.ErrLoginRequired)
		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Equal(t, mcpauth.StatusActive, conns[0].Status, "the status change was rolled back with the hook")

		// The lease was given back: the next call refreshes at once.
		ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = e.AccessToken(ctx2, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
		require.Equal(t, 2, srv.Count("refresh"))
		conns, err = e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Equal(t, mcpauth.StatusRefreshFailed, conns[0].Status)
	})
}
