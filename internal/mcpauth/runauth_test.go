package mcpauth_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// authorized runs the run's Authorize on a fresh request and returns the
// Authorization header it set.
func authorized(t *testing.T, run *mcpauth.RunAuth, serverURL string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, serverURL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer left-over")
	require.NoError(t, run.Authorize(context.Background(), serverURL, req))
	return req.Header.Get("Authorization")
}

// TestRunAuthReusesWithinBounds checks what a run may reuse: the token it
// read, for at most RunTokenTTL, never past the point where it would be
// refreshed, and not after the server refused it.
func TestRunAuthReusesWithinBounds(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{AccessTokenTTL: time.Hour, NoRotation: true, Now: bundle.clock.Now})
		res := login(t, e, srv, "acme", "alice")
		token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		// A user without a token: no header, and that too is remembered.
		bob := e.RunAuth("acme", "bob")
		require.Empty(t, authorized(t, bob, srv.URL()))

		run := e.RunAuth("acme", "alice")
		require.Equal(t, "Bearer "+token, authorized(t, run, srv.URL()))

		// Revoked behind the run's back, by another process: the run keeps
		// the token it read for at most RunTokenTTL, then learns there is none.
		other := newEngine(t, bundle, nil)
		require.NoError(t, other.Revoke(ctx, "acme", res.ConnectionID))
		require.Equal(t, "Bearer "+token, authorized(t, run, srv.URL()))
		bundle.clock.Add(mcpauth.RunTokenTTL)
		require.Empty(t, authorized(t, run, srv.URL()))
		require.Empty(t, authorized(t, e.RunAuth("acme", "alice"), srv.URL()), "a new run asks the database")

		// A login in this process is seen at once, by every run of the user
		// (a step-up login retried in the same run), and so is a revocation.
		res = login(t, e, srv, "acme", "alice")
		here, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, "Bearer "+here, authorized(t, run, srv.URL()))
		require.NoError(t, e.Revoke(ctx, "acme", res.ConnectionID))
		require.Empty(t, authorized(t, run, srv.URL()))

		// A login in another process: a refusal makes the run ask again at once.
		login(t, other, srv, "acme", "alice")
		require.Empty(t, authorized(t, run, srv.URL()), "still remembered as none")
		retry, err := run.Unauthorized(ctx, srv.URL(), "")
		require.NoError(t, err)
		require.True(t, retry, "a login stored a token since")
		fresh, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, "Bearer "+fresh, authorized(t, run, srv.URL()))

		// The server refuses the token: it is refreshed, and the run sends
		// the new one.
		retry, err = run.Unauthorized(ctx, srv.URL(), "Bearer "+fresh)
		require.NoError(t, err)
		require.True(t, retry)
		refreshed, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.NotEqual(t, fresh, refreshed)
		require.Equal(t, "Bearer "+refreshed, authorized(t, run, srv.URL()))
	})
}

// TestRunAuthRefreshesOnTime checks that a token about to expire is not
// reused past the point where AccessToken refreshes it, even within
// RunTokenTTL.
func TestRunAuthRefreshesOnTime(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		// Lives 40s, shorter than RefreshLeeway: refreshed in the second
		// half of its life, 20s after it was issued.
		srv := mcpauthtest.New(t, mcpauthtest.Config{AccessTokenTTL: 40 * time.Second, Now: bundle.clock.Now})
		login(t, e, srv, "acme", "alice")
		token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		run := e.RunAuth("acme", "alice")
		require.Equal(t, "Bearer "+token, authorized(t, run, srv.URL()))
		bundle.clock.Add(21 * time.Second) // within RunTokenTTL
		got := authorized(t, run, srv.URL())
		require.NotEqual(t, "Bearer "+token, got, "reused a token due for refresh")
		require.Equal(t, 1, srv.Count("refresh"))
		require.Equal(t, got, authorized(t, run, srv.URL()), "the refreshed token is kept for the run")
		require.Equal(t, 1, srv.Count("refresh"))
	})
}
