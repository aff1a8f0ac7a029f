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

// The MCP Python SDK's authorization server (and FastMCP's) refuses token
// and revocation requests without client_id in the body, even with HTTP
// Basic. Login, refresh and revocation all work with it, whichever method
// the client registered with; with a choice, registration asks for
// client_secret_post.
func TestClientIDInTokenRequestBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		methods []string
		want    string
	}{
		{"AllMethods", []string{"client_secret_basic", "client_secret_post", "none"}, mcpauth.AuthMethodClientSecretPost},
		{"Unlisted", nil, mcpauth.AuthMethodClientSecretBasic}, // RFC 8414's default
		{"BasicOnly", []string{"client_secret_basic"}, mcpauth.AuthMethodClientSecretBasic},
		{"BasicOrPost", []string{"client_secret_basic", "client_secret_post"}, mcpauth.AuthMethodClientSecretPost},
		{"None", []string{"none"}, mcpauth.AuthMethodNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e, bundle := setup(t, storetest.SQLite, nil)
			srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, RequireClientIDInBody: true, TokenEndpointAuthMethods: tc.methods})
			res := login(t, e, srv, "acme", "alice")
			require.Equal(t, tc.want, srv.Registrations()[0]["token_endpoint_auth_method"])

			bundle.clock.Add(2 * time.Hour)
			token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
			require.NoError(t, err, "refresh")
			require.Equal(t, 1, srv.Count("refresh"))
			require.True(t, srv.TokenValid(token))
			for _, req := range srv.TokenRequests() {
				require.NotEmpty(t, req.Get("client_id"))
				if tc.want == mcpauth.AuthMethodClientSecretBasic {
					require.Empty(t, req.Get("client_secret"), "one authentication method per request")
					require.NotEmpty(t, req.Get("basic_client_secret"))
				}
			}

			require.NoError(t, e.Revoke(ctx, "acme", res.ConnectionID))
			require.False(t, srv.TokenValid(token), "the revocation was accepted")
		})
	}
}

// An authorization server that keeps its clients in memory forgets them
// (and its tokens) when it restarts, and then refuses the old client on its
// own authorization page, which mcpidp never sees. So opening a login link
// first checks that the server still knows the client, and registers again
// when it does not. After the restart: a new login link works with a fresh
// registration; a link made before the restart follows it; a connection
// from before cannot be refreshed (its refresh token was the forgotten
// client's) and needs a new login, which works; and a restart between the
// authorization and the code exchange fails that exchange (invalid_client)
// but leaves the link usable.
func TestAuthorizationServerRestart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		login(t, e, srv, "acme", "alice")
		oldLink, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "bob", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		require.Equal(t, 1, srv.Count("register"))

		srv.Restart()
		// The server was asked about the client when alice's link was
		// opened; it is asked again only after a while.
		bundle.clock.Add(6 * time.Minute)

		// The next login, through a new link, registers afresh.
		login(t, e, srv, "acme", "dave")
		require.Equal(t, 2, srv.Count("register"))
		token, err := e.AccessToken(ctx, "acme", "dave", srv.URL())
		require.NoError(t, err)
		require.True(t, srv.TokenValid(token))

		// The link made before the restart uses the new registration.
		started, err := e.Start(ctx, oldLink.ID)
		require.NoError(t, err)
		res, err := e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		require.Equal(t, "bob", res.User)
		require.Equal(t, 2, srv.Count("register"))

		// Alice's connection, from before the restart, needs a new login.
		bundle.clock.Add(2 * time.Hour)
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		var nle *mcpauth.NeedsLoginError
		require.ErrorAs(t, err, &nle)
		require.Equal(t, mcpauth.StatusRefreshFailed, nle.Reason)
		login(t, e, srv, "acme", "alice")
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, 2, srv.Count("register"), "a client the server knows is kept")

		// A restart between the authorization and the code exchange.
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "carol", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		started, err = e.Start(ctx, l.ID)
		require.NoError(t, err)
		q := mcpauthtest.Approve(t, started.URL)
		srv.Restart()
		_, err = e.Callback(ctx, q, []*http.Cookie{started.Cookie})
		var xerr *mcpauth.ExchangeError
		require.ErrorAs(t, err, &xerr)
		require.ErrorIs(t, err, mcpauth.ErrExchangeFailed)
		require.Equal(t, "invalid_client", xerr.Code)
		require.Equal(t, http.StatusUnauthorized, xerr.Status)
		started, err = e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.Equal(t, 3, srv.Count("register"))
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		_, err = e.AccessToken(ctx, "acme", "carol", srv.URL())
		require.NoError(t, err)
	})
}

// A restart noticed first by a refresh: the connection needs a new login,
// the registration is dropped there, and the next login registers afresh.
func TestAuthorizationServerRestartSeenAtRefresh(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, TokenEndpointAuthMethods: []string{"none"}})
		login(t, e, srv, "acme", "alice")
		srv.Restart()

		bundle.clock.Add(2 * time.Hour)
		_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		var nle *mcpauth.NeedsLoginError
		require.ErrorAs(t, err, &nle)
		require.Equal(t, mcpauth.StatusRefreshFailed, nle.Reason)
		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Equal(t, mcpauth.StatusRefreshFailed, conns[0].Status)

		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		require.Equal(t, 2, srv.Count("register"), "the link is made with a fresh registration")
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, 2, srv.Count("register"))
	})
}

// The same with a server like the MCP Python SDK's, which says
// unauthorized_client where RFC 6749 says invalid_client.
func TestPythonSDKStyleServerRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, bundle := setup(t, storetest.SQLite, nil)
	srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, RequireClientIDInBody: true,
		TokenEndpointAuthMethods: []string{"client_secret_post", "client_secret_basic"}})
	login(t, e, srv, "acme", "alice")
	srv.Restart()
	bundle.clock.Add(6 * time.Minute) // past the last check of the client

	login(t, e, srv, "acme", "bob")
	require.Equal(t, 2, srv.Count("register"))
	bundle.clock.Add(2 * time.Hour)
	_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
	var nle *mcpauth.NeedsLoginError
	require.ErrorAs(t, err, &nle)
	require.Equal(t, mcpauth.StatusRefreshFailed, nle.Reason)
	_, err = e.AccessToken(ctx, "acme", "bob", srv.URL())
	require.NoError(t, err, "bob's refresh works")
	require.Equal(t, 1, srv.Count("refresh"))
}

// An authorization server that registered our client for authorization_code
// only answers the login link's check (a refresh grant) with
// unauthorized_client, as RFC 6749 says: the client may not refresh, and is
// known. Opening links must then neither drop the shared registration nor
// register again, so a login in flight in another tenant still completes;
// and visits of public links ask the server at most once in a while.
func TestAuthorizationCodeOnlyServerKeepsClient(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now, AuthorizationCodeOnly: true})
		checks := func() int { return srv.Count("unauthorized_grant") + srv.Count("refresh_unknown") }

		// Alice (acme) is at the authorization server's page.
		la, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		startedA, err := e.Start(ctx, la.ID)
		require.NoError(t, err)
		qA := mcpauthtest.Approve(t, startedA.URL)
		require.Equal(t, 1, srv.Count("register"))

		// Bob (globex) opens his link twice, then a few more visits.
		lb, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "globex", User: "bob", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		var startedB *mcpauth.StartedLogin
		for range 4 {
			startedB, err = e.Start(ctx, lb.ID)
			require.NoError(t, err)
		}
		require.LessOrEqual(t, checks(), 1, "five visits ask the server at most once")
		require.Equal(t, 1, srv.Count("register"), "the client is kept")

		resA, err := e.Callback(ctx, qA, []*http.Cookie{startedA.Cookie})
		require.NoError(t, err, "alice's login in flight completes")
		require.Equal(t, "alice", resA.User)
		resB, err := e.Callback(ctx, mcpauthtest.Approve(t, startedB.URL), []*http.Cookie{startedB.Cookie})
		require.NoError(t, err)
		require.Equal(t, "bob", resB.User)

		// Later the server is asked again, and the client is still kept.
		before := checks()
		bundle.clock.Add(6 * time.Minute)
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "carol", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.NoError(t, err)
		_, err = e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.Equal(t, before+1, checks())
		require.Equal(t, 1, srv.Count("register"))
	})
}
