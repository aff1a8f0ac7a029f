package mcpauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// Login CSRF: browser A opens alice's login link, and the answer the
// authorization server gives A is opened in browser B (sent there by A's
// owner, or by mistake). B has not got A's cookie, so nothing is connected
// and the state is left alone: A can still finish.
func TestCallbackFromAnotherBrowser(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{})
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		a, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.True(t, a.Cookie.HttpOnly)
		require.Equal(t, http.SameSiteLaxMode, a.Cookie.SameSite)
		require.Equal(t, "/oauth/callback", a.Cookie.Path, "sent to the callback only")
		require.False(t, a.Cookie.Secure, "the public URL is http")
		require.Equal(t, int(mcpauth.DefaultStateTTL.Seconds()), a.Cookie.MaxAge)
		q := mcpauthtest.Approve(t, a.URL)

		// B has no cookie, or its own login's, or a forged one by A's name.
		other, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		forged := *a.Cookie
		forged.Value = "guessed"
		for _, cookies := range [][]*http.Cookie{nil, {other.Cookie}, {&forged}} {
			_, err = e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrOtherBrowser)
		}
		require.Equal(t, 0, srv.Count("token"), "the code was not exchanged")
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, mcpauth.ErrLoginRequired, "nothing was connected")

		// A finishes its login with the same answer.
		res, err := e.Callback(ctx, q, []*http.Cookie{other.Cookie, a.Cookie})
		require.NoError(t, err)
		require.Equal(t, "alice", res.User)
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
	})
}

// Several logins in flight in one browser each have their own cookie, and
// the browser sends all of them to the callback.
func TestSeveralLoginsInOneBrowser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _ := setup(t, storetest.SQLite, func(c *mcpauth.Config) { c.PublicURL = "https://mcpidp.example.com/base/" })
	var (
		jar     []*http.Cookie
		answers []map[string][]string
		servers []*mcpauthtest.Server
	)
	for range 3 {
		srv := mcpauthtest.New(t, mcpauthtest.Config{})
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.True(t, started.Cookie.Secure, "https public URL")
		require.Equal(t, "/base/oauth/callback", started.Cookie.Path)
		for _, c := range jar {
			require.NotEqual(t, c.Name, started.Cookie.Name)
		}
		jar = append(jar, started.Cookie)
		answers = append(answers, mcpauthtest.Approve(t, started.URL))
		servers = append(servers, srv)
	}
	for i, q := range answers {
		res, err := e.Callback(ctx, q, jar)
		require.NoError(t, err)
		require.Equal(t, servers[i].URL(), res.ServerURL)
	}
}
