package mcpauth_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestCompletedLoginLinkIsUsedUp(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{})
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)

		// Two visits of the link before the login completes: the second
		// one's state was made while the link was still open.
		first, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		second, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		res, err := e.Callback(ctx, mcpauthtest.Approve(t, first.URL), []*http.Cookie{first.Cookie})
		require.NoError(t, err)
		token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		_, err = e.Start(ctx, l.ID)
		require.ErrorIs(t, err, mcpauth.ErrLoginLinkInvalid, "the link is used up once its login completed")
		require.Contains(t, err.Error(), "already completed")

		tokens := srv.Count("token")
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, second.URL), []*http.Cookie{second.Cookie})
		require.ErrorIs(t, err, mcpauth.ErrStateInvalid, "an earlier state of a completed link is refused")
		require.Equal(t, tokens, srv.Count("token"), "the refused callback never reaches the token endpoint")
		again, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, token, again, "the connection keeps the tokens of the login that completed")
		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Len(t, conns, 1)
		require.Equal(t, res.ConnectionID, conns[0].ID)

		// A new link for the same user and server works as before.
		fresh := login(t, e, srv, "acme", "alice")
		require.Equal(t, res.ConnectionID, fresh.ConnectionID)
	})
}

func TestConcurrentCallbacksOfOneLinkCompleteOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		other := newEngine(t, bundle, nil) // a second process takes the other callback
		srv := mcpauthtest.New(t, mcpauthtest.Config{})
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		var (
			queries [2]url.Values
			cookies [2][]*http.Cookie
		)
		for i := range queries {
			started, err := e.Start(ctx, l.ID)
			require.NoError(t, err)
			queries[i], cookies[i] = mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie}
		}

		var (
			wg   sync.WaitGroup
			errs [2]error
		)
		for i, engine := range []*mcpauth.Engine{e, other} {
			wg.Go(func() { _, errs[i] = engine.Callback(ctx, queries[i], cookies[i]) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, mcpauth.ErrStateInvalid)
		}
		require.Equal(t, 1, ok, "exactly one callback completes the login: %v", errs)
		_, err = e.Start(ctx, l.ID)
		require.ErrorIs(t, err, mcpauth.ErrLoginLinkInvalid)
	})
}
