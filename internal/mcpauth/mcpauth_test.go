package mcpauth_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

type testBundle struct {
	clock       *storetest.Clock
	databaseURL string
	keyring     *secretbox.Keyring
}

// setup returns an engine on a fresh database of the backend, with a
// settable clock.
func setup(t *testing.T, backend storetest.Backend, configure func(*mcpauth.Config)) (*mcpauth.Engine, *testBundle) {
	t.Helper()
	key, err := secretbox.GenerateKey()
	require.NoError(t, err)
	keyring, err := secretbox.ParseKeyring(key)
	require.NoError(t, err)
	bundle := &testBundle{clock: storetest.NewClock(), databaseURL: storetest.DatabaseURL(t, backend), keyring: keyring}
	return newEngine(t, bundle, configure), bundle
}

// newEngine opens another engine on the bundle's database: another
// process, as far as the database is concerned.
func newEngine(t *testing.T, bundle *testBundle, configure func(*mcpauth.Config)) *mcpauth.Engine {
	t.Helper()
	s, _ := storetest.OpenStore(t, bundle.databaseURL, bundle.clock.Now)
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), tenant, ""))
	}
	cfg := mcpauth.Config{
		Store:      s,
		Keyring:    bundle.keyring,
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		PublicURL:  "http://mcpidp.test",
	}
	if configure != nil {
		configure(&cfg)
	}
	e, err := mcpauth.New(cfg)
	require.NoError(t, err)
	return e
}

// backends runs fn on SQLite and PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, backend storetest.Backend)) {
	for _, b := range []storetest.Backend{storetest.SQLite, storetest.Postgres} {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// login runs the whole flow for the user like a browser that approves.
func login(t *testing.T, e *mcpauth.Engine, srv *mcpauthtest.Server, tenant, user string) *mcpauth.CallbackResult {
	t.Helper()
	ctx := context.Background()
	l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: tenant, User: user, ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
	require.NoError(t, err)
	started, err := e.Start(ctx, l.ID)
	require.NoError(t, err)
	res, err := e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
	require.NoError(t, err)
	return res
}

// callResource sends one request to the server's resource through the
// engine's transport and returns the status.
func callResource(t *testing.T, e *mcpauth.Engine, srv *mcpauthtest.Server, tenant, user string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: e.Transport(http.DefaultTransport, tenant, user, srv.URL())}
	resp, err := client.Get(srv.URL())
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestFullFlow(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{IssParameter: true, ChallengeScope: "mcp:read", ASScopesSupported: []string{"mcp:read", "offline_access"}})

		status, challenge := callResource(t, e, srv, "acme", "alice")
		require.Equal(t, http.StatusUnauthorized, status, "no token yet: the request goes out bare and gets the challenge")

		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: challenge})
		require.NoError(t, err)
		require.Equal(t, "http://mcpidp.test/oauth/start/"+l.ID, l.AuthorizationURL)
		require.GreaterOrEqual(t, len(l.ID), 43, "login ids carry at least 256 bits")
		require.Equal(t, []string{"mcp:read", "offline_access"}, l.Scopes)

		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(started.URL, srv.Issuer()+"/authorize?"), started.URL)
		q := mcpauthtest.Approve(t, started.URL)
		res, err := e.Callback(ctx, q, []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		require.Equal(t, "acme", res.Tenant)
		require.Equal(t, "alice", res.User)
		require.Equal(t, srv.URL(), res.ServerURL)
		require.Equal(t, []string{"mcp:read", "offline_access"}, res.Scopes)

		authz := srv.AuthorizeRequests()[0]
		require.Equal(t, "S256", authz.Get("code_challenge_method"))
		require.Equal(t, srv.URL(), authz.Get("resource"))
		require.Equal(t, "http://mcpidp.test/oauth/callback", authz.Get("redirect_uri"))
		require.Equal(t, "mcp:read offline_access", authz.Get("scope"))
		require.GreaterOrEqual(t, len(authz.Get("state")), 22, "state carries at least 128 bits")
		tokenReq := srv.TokenRequests()[0]
		require.Equal(t, srv.URL(), tokenReq.Get("resource"))
		require.NotEmpty(t, tokenReq.Get("code_verifier"))
		require.NotEmpty(t, tokenReq.Get("basic_client_secret"), "a dynamically registered confidential client authenticates with HTTP Basic")

		token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.True(t, srv.TokenValid(token))
		status, _ = callResource(t, e, srv, "acme", "alice")
		require.Equal(t, http.StatusOK, status)

		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Len(t, conns, 1)
		require.Equal(t, res.ConnectionID, conns[0].ID)
		require.Equal(t, mcpauth.StatusActive, conns[0].Status)
		require.Equal(t, srv.URL(), conns[0].ServerURL)
		require.NotNil(t, conns[0].ExpiresAt)
		require.NotNil(t, conns[0].LastUsedAt)
	})
}

func TestConcurrentRefreshHappensOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		other := newEngine(t, bundle, nil) // a second process on the same database
		srv := mcpauthtest.New(t, mcpauthtest.Config{AccessTokenTTL: 10 * time.Minute, RefreshDelay: 50 * time.Millisecond, Now: bundle.clock.Now})
		login(t, e, srv, "acme", "alice")
		old, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		bundle.clock.Add(10 * time.Minute)
		require.False(t, srv.TokenValid(old), "the access token has expired")

		const n = 50
		var (
			wg     sync.WaitGroup
			tokens [n]string
			errs   [n]error
		)
		for i := range n {
			wg.Go(func() {
				engine := e
				if i%2 == 1 {
					engine = other
				}
				tokens[i], errs[i] = engine.AccessToken(ctx, "acme", "alice", srv.URL())
			})
		}
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, tokens[0], tokens[i], "call %d", i)
		}
		require.NotEqual(t, old, tokens[0])
		require.True(t, srv.TokenValid(tokens[0]))
		require.Equal(t, 1, srv.Count("refresh"), "exactly one refresh request reached the authorization server")
		refresh := srv.TokenRequests()[1]
		require.Equal(t, "refresh_token", refresh.Get("grant_type"))
		require.Equal(t, srv.URL(), refresh.Get("resource"), "resource is sent on refresh too")

		// The rotated refresh token was stored with the access token: the
		// next refresh uses it, and the server (which detects reuse)
		// accepts it.
		bundle.clock.Add(10 * time.Minute)
		third, err := other.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.True(t, srv.TokenValid(third))
		require.Equal(t, 2, srv.Count("refresh"))
	})
}

func TestInvalidGrantMarksRefreshFailed(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		var (
			mu     sync.Mutex
			failed []mcpauth.Connection
		)
		e, bundle := setup(t, backend, func(c *mcpauth.Config) {
			c.RefreshFailedTxFunc = func(_ context.Context, tx *sql.Tx, tenant, user string, conn mcpauth.Connection) error {
				mu.Lock()
				defer mu.Unlock()
				require.NotNil(t, tx, "called inside the transaction")
				require.Equal(t, "acme", tenant)
				require.Equal(t, "alice", user)
				failed = append(failed, conn)
				return nil
			}
		})
		srv := mcpauthtest.New(t, mcpauthtest.Config{Now: bundle.clock.Now})
		res := login(t, e, srv, "acme", "alice")
		srv.RevokeAll()
		bundle.clock.Add(2 * time.Hour)

		_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
		var nle *mcpauth.NeedsLoginError
		require.ErrorAs(t, err, &nle)
		require.Equal(t, mcpauth.StatusRefreshFailed, nle.Reason)
		require.Equal(t, 1, srv.Count("refresh"))

		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Len(t, conns, 1)
		require.Equal(t, mcpauth.StatusRefreshFailed, conns[0].Status)
		mu.Lock()
		require.Len(t, failed, 1)
		require.Equal(t, res.ConnectionID, failed[0].ID)
		mu.Unlock()

		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
		require.Equal(t, 1, srv.Count("refresh"), "a failed connection is not refreshed again")
		status, _ := callResource(t, e, srv, "acme", "alice")
		require.Equal(t, http.StatusUnauthorized, status)

		// Logging in again makes the same connection active.
		again := login(t, e, srv, "acme", "alice")
		require.Equal(t, res.ConnectionID, again.ConnectionID)
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{})
		res := login(t, e, srv, "acme", "alice")
		token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		require.ErrorIs(t, e.Revoke(ctx, "globex", res.ConnectionID), mcpauth.ErrNotFound, "another tenant's connection")
		require.Equal(t, 0, srv.Count("revoke"))

		require.NoError(t, e.Revoke(ctx, "acme", res.ConnectionID))
		require.Equal(t, 2, srv.Count("revoke"), "refresh token, then access token")
		require.False(t, srv.TokenValid(token))
		conns, err := e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Empty(t, conns)
		_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
		require.ErrorIs(t, e.Revoke(ctx, "acme", res.ConnectionID), mcpauth.ErrNotFound)
	})
}

func TestRevokeWithoutRevocationEndpointDeletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _ := setup(t, storetest.SQLite, nil)
	srv := mcpauthtest.New(t, mcpauthtest.Config{DisableRevocation: true})
	res := login(t, e, srv, "acme", "alice")
	require.NoError(t, e.Revoke(ctx, "acme", res.ConnectionID))
	require.Equal(t, 0, srv.Count("revoke"))
	_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
	require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
}

func TestCallbackErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, bundle := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{IssParameter: true})
		// cookies are those of the browser that opened the login links.
		var cookies []*http.Cookie
		begin := func(srv *mcpauthtest.Server) url.Values {
			l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
			require.NoError(t, err)
			started, err := e.Start(ctx, l.ID)
			require.NoError(t, err)
			cookies = append(cookies, started.Cookie)
			return mcpauthtest.Approve(t, started.URL)
		}

		t.Run("Replay", func(t *testing.T) {
			q := begin(srv)
			_, err := e.Callback(ctx, q, cookies)
			require.NoError(t, err)
			_, err = e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrStateInvalid)
			require.Equal(t, 1, srv.Count("token"), "a replayed response never reaches the token endpoint")
		})
		t.Run("UnknownAndMissingState", func(t *testing.T) {
			q := begin(srv)
			q.Set("state", "forged")
			_, err := e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrStateInvalid)
			q.Del("state")
			_, err = e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrStateInvalid)
		})
		t.Run("Expired", func(t *testing.T) {
			q := begin(srv)
			bundle.clock.Add(16 * time.Minute)
			_, err := e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrStateInvalid)
			require.Contains(t, err.Error(), "longer than")
		})
		t.Run("IssMissing", func(t *testing.T) {
			q := begin(srv)
			q.Del("iss")
			tokens := srv.Count("token")
			_, err := e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrIssuerMismatch)
			require.Equal(t, tokens, srv.Count("token"))
		})
		t.Run("IssWrong", func(t *testing.T) {
			evil := mcpauthtest.New(t, mcpauthtest.Config{IssOverride: "https://evil.example.com"})
			tokens := evil.Count("token")
			_, err := e.Callback(ctx, begin(evil), cookies)
			require.ErrorIs(t, err, mcpauth.ErrIssuerMismatch)
			require.Equal(t, tokens, evil.Count("token"))
		})
		t.Run("AccessDenied", func(t *testing.T) {
			denying := mcpauthtest.New(t, mcpauthtest.Config{Deny: true})
			_, err := e.Callback(ctx, begin(denying), cookies)
			require.ErrorIs(t, err, mcpauth.ErrAccessDenied)
			var ae *mcpauth.AuthorizationError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "access_denied", ae.Code)
			require.Equal(t, "The user said no", ae.Description)
		})
		t.Run("ExchangeFailed", func(t *testing.T) {
			q := begin(srv)
			q.Set("code", "not-a-code")
			_, err := e.Callback(ctx, q, cookies)
			require.ErrorIs(t, err, mcpauth.ErrExchangeFailed)
			require.Contains(t, err.Error(), "invalid_grant")
		})
		t.Run("LoginLinkExpires", func(t *testing.T) {
			l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
			require.NoError(t, err)
			_, err = e.Start(ctx, l.ID)
			require.NoError(t, err)
			_, err = e.Start(ctx, l.ID)
			require.NoError(t, err, "a login link works many times")
			bundle.clock.Add(mcpauth.DefaultLoginTTL)
			_, err = e.Start(ctx, l.ID)
			require.ErrorIs(t, err, mcpauth.ErrLoginLinkInvalid)
			_, err = e.Start(ctx, "unknown")
			require.ErrorIs(t, err, mcpauth.ErrLoginLinkInvalid)
		})
	})
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srvA := mcpauthtest.New(t, mcpauthtest.Config{})
		srvB := mcpauthtest.New(t, mcpauthtest.Config{})
		resA := login(t, e, srvA, "acme", "alice")
		tokenA, err := e.AccessToken(ctx, "acme", "alice", srvA.URL())
		require.NoError(t, err)

		for _, c := range []struct{ tenant, user, server string }{
			{"acme", "bob", srvA.URL()},
			{"globex", "alice", srvA.URL()},
			{"acme", "alice", srvB.URL()},
		} {
			_, err := e.AccessToken(ctx, c.tenant, c.user, c.server)
			require.ErrorIs(t, err, mcpauth.ErrLoginRequired, "%+v", c)
		}
		status, _ := callResource(t, e, srvA, "acme", "bob")
		require.Equal(t, http.StatusUnauthorized, status, "bob's requests carry no token")
		status, _ = callResource(t, e, srvA, "globex", "alice")
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = callResource(t, e, srvB, "acme", "alice")
		require.Equal(t, http.StatusUnauthorized, status, "alice's token for A is not sent to B")

		resB := login(t, e, srvB, "acme", "alice")
		require.NotEqual(t, resA.ConnectionID, resB.ConnectionID)
		tokenB, err := e.AccessToken(ctx, "acme", "alice", srvB.URL())
		require.NoError(t, err)
		require.NotEqual(t, tokenA, tokenB)
		require.False(t, srvB.TokenValid(tokenA))

		conns, err := e.ListConnections(ctx, "globex", "alice")
		require.NoError(t, err)
		require.Empty(t, conns)
		_, err = e.GetConnection(ctx, "globex", resA.ConnectionID)
		require.ErrorIs(t, err, mcpauth.ErrNotFound)
		conns, err = e.ListConnections(ctx, "acme", "alice")
		require.NoError(t, err)
		require.Len(t, conns, 2)

		// The same URL written differently is the same server.
		upper := strings.Replace(srvA.URL(), "http://", "HTTP://", 1)
		again, err := e.AccessToken(ctx, "acme", "alice", upper)
		require.NoError(t, err)
		require.Equal(t, tokenA, again)
	})
}

func TestRefreshExpiring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, bundle := setup(t, storetest.SQLite, nil)
	srv := mcpauthtest.New(t, mcpauthtest.Config{AccessTokenTTL: 10 * time.Minute, Now: bundle.clock.Now})
	login(t, e, srv, "acme", "alice")
	login(t, e, srv, "acme", "bob")
	noRefresh := mcpauthtest.New(t, mcpauthtest.Config{AccessTokenTTL: 10 * time.Minute, NoRefreshTokens: true, Now: bundle.clock.Now})
	login(t, e, noRefresh, "acme", "carol")

	n, err := e.RefreshExpiring(ctx, time.Minute)
	require.NoError(t, err)
	require.Zero(t, n, "nothing expires within a minute")

	bundle.clock.Add(5 * time.Minute)
	n, err = e.RefreshExpiring(ctx, 15*time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 2, srv.Count("refresh"))
	require.Equal(t, 0, noRefresh.Count("refresh"))

	bundle.clock.Add(6 * time.Minute)
	conns, err := e.ListConnections(ctx, "acme", "carol")
	require.NoError(t, err)
	require.Equal(t, mcpauth.StatusExpired, conns[0].Status, "expired, and no refresh token to renew it")
	_, err = e.AccessToken(ctx, "acme", "carol", noRefresh.URL())
	require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
	token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
	require.NoError(t, err)
	require.True(t, srv.TokenValid(token), "the periodic refresh renewed alice's token ahead of time")
	require.Equal(t, 2, srv.Count("refresh"))
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	flow := func(t *testing.T, cfg mcpauthtest.Config, challenge func(*mcpauthtest.Server) string) (*mcpauthtest.Server, *mcpauth.Login) {
		t.Helper()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, cfg)
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: challenge(srv)})
		require.NoError(t, err)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		status, _ := callResource(t, e, srv, "acme", "alice")
		require.Equal(t, http.StatusOK, status)
		return srv, l
	}
	fromServer := func(s *mcpauthtest.Server) string { return s.Challenge() }
	noHeader := func(*mcpauthtest.Server) string { return "" }
	gets := func(srv *mcpauthtest.Server) []string {
		var out []string
		for _, r := range srv.Requests() {
			if strings.HasPrefix(r, "GET /.well-known/") || strings.HasPrefix(r, "GET /metadata/") || strings.HasPrefix(r, "GET /tenant1/.well-known/") {
				out = append(out, strings.TrimPrefix(r, "GET "))
			}
		}
		return out
	}

	t.Run("ResourceMetadataFromHeader", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{PRM: mcpauthtest.PRMHeader}, fromServer)
		require.Equal(t, []string{"/metadata/from-header", "/.well-known/oauth-authorization-server"}, gets(srv))
	})
	t.Run("PathBasedWellKnown", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{PRM: mcpauthtest.PRMPath}, noHeader)
		require.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server"}, gets(srv))
	})
	t.Run("RootWellKnown", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{PRM: mcpauthtest.PRMRoot}, fromServer)
		require.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
			"/.well-known/oauth-authorization-server"}, gets(srv))
	})
	t.Run("IssuerWithPathOpenIDOrder", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{IssuerPath: "/tenant1", OIDC: true}, fromServer)
		require.Equal(t, []string{"/metadata/from-header", "/.well-known/oauth-authorization-server/tenant1",
			"/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration"}, gets(srv))
	})
	t.Run("Legacy20250326Metadata", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{PRM: mcpauthtest.PRMNone}, fromServer)
		require.Equal(t, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
			"/.well-known/oauth-authorization-server"}, gets(srv))
	})
	t.Run("Legacy20250326DefaultEndpoints", func(t *testing.T) {
		t.Parallel()
		srv, _ := flow(t, mcpauthtest.Config{PRM: mcpauthtest.PRMNone, NoMetadata: true}, fromServer)
		require.Equal(t, 1, srv.Count("register"), "registered at /register on the server's origin")
		require.Equal(t, 1, srv.Count("authorize"))
		require.Equal(t, 1, srv.Count("token"))
		require.Equal(t, srv.URL(), srv.AuthorizeRequests()[0].Get("resource"))
	})
	t.Run("Legacy20250326IssuerOnServerOrigin", func(t *testing.T) {
		t.Parallel()
		// A 2025-03-26 server publishes its metadata at its root, for an
		// issuer that may have a path (the conformance suite's layout).
		e, _ := setup(t, storetest.SQLite, nil)
		srv := legacyServer(t, func(origin string) string { return origin + "/oauth" })
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL + "/mcp", WWWAuthenticate: `Bearer error="invalid_token"`})
		require.NoError(t, err)
		require.Equal(t, srv.URL+"/oauth", l.Issuer)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(started.URL, srv.URL+"/oauth/authorize?"), started.URL)
	})
	t.Run("Legacy20250326IssuerOnOtherOriginRefused", func(t *testing.T) {
		t.Parallel()
		// Claiming another authorization server's issuer would get that
		// server's pre-registered client (and secret) used here.
		other := "https://auth.example.com"
		e, _ := setup(t, storetest.SQLite, func(c *mcpauth.Config) {
			c.PreRegistered = []mcpauth.PreRegisteredClient{{Issuer: other, ClientID: "pre", ClientSecret: "s3cret", TokenEndpointAuthMethod: mcpauth.AuthMethodClientSecretBasic}}
		})
		srv := legacyServer(t, func(string) string { return other })
		_, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL + "/mcp", WWWAuthenticate: `Bearer error="invalid_token"`})
		require.ErrorIs(t, err, mcpauth.ErrDiscovery)
		require.ErrorContains(t, err, other)
	})
	t.Run("NoS256Refused", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{NoS256: true})
		_, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.ErrorIs(t, err, mcpauth.ErrDiscovery)
		require.Contains(t, err.Error(), "S256")
		require.Equal(t, 0, srv.Count("register"))
	})
	t.Run("ResourceMismatchRefused", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{PRMResource: "https://evil.example.com/mcp"})
		_, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.ErrorIs(t, err, mcpauth.ErrDiscovery)
		require.Equal(t, 0, srv.Count("metadata"))
	})
	t.Run("NoWayToRegister", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{DisableDCR: true, CIMD: true})
		_, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
		require.ErrorIs(t, err, mcpauth.ErrDiscovery, "CIMD needs an https public URL")
	})
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DynamicRegistrationReusedPerServer", func(t *testing.T) {
		t.Parallel()
		backends(t, func(t *testing.T, backend storetest.Backend) {
			e, bundle := setup(t, backend, nil)
			srv := mcpauthtest.New(t, mcpauthtest.Config{})
			login(t, e, srv, "acme", "alice")
			login(t, e, srv, "globex", "bob")
			login(t, newEngine(t, bundle, nil), srv, "acme", "carol")
			require.Equal(t, 1, srv.Count("register"), "one registration per authorization server, shared by processes")
			reg := srv.Registrations()[0]
			require.Equal(t, []any{"http://mcpidp.test/oauth/callback"}, reg["redirect_uris"])
			require.Equal(t, []any{"authorization_code", "refresh_token"}, reg["grant_types"])
			clients := map[string]bool{}
			for _, a := range srv.AuthorizeRequests() {
				clients[a.Get("client_id")] = true
			}
			require.Len(t, clients, 1)
		})
	})
	t.Run("PublicClientRegistration", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{TokenEndpointAuthMethods: []string{"none"}})
		login(t, e, srv, "acme", "alice")
		req := srv.TokenRequests()[0]
		require.Empty(t, req.Get("basic_client_id"))
		require.Empty(t, req.Get("client_secret"))
		require.NotEmpty(t, req.Get("client_id"))
	})
	t.Run("ClientSecretPost", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{TokenEndpointAuthMethods: []string{"client_secret_post"}})
		res := login(t, e, srv, "acme", "alice")
		req := srv.TokenRequests()[0]
		require.Empty(t, req.Get("basic_client_id"))
		require.NotEmpty(t, req.Get("client_secret"))
		require.NoError(t, e.Revoke(ctx, "acme", res.ConnectionID), "revocation authenticates the same way")
		require.Equal(t, 2, srv.Count("revoke"))
	})
	t.Run("CIMDWhenAdvertisedAndHTTPS", func(t *testing.T) {
		t.Parallel()
		var e *mcpauth.Engine
		srv := mcpauthtest.New(t, mcpauthtest.Config{CIMD: true, ClientMetadataFunc: func(clientID string) ([]byte, error) {
			if clientID != e.ClientMetadataURL() {
				return nil, errors.New("not found")
			}
			return e.ClientMetadataDocument()
		}})
		e, _ = setup(t, storetest.SQLite, func(c *mcpauth.Config) { c.PublicURL = "https://mcpidp.example.com" })
		login(t, e, srv, "acme", "alice")
		require.Equal(t, 0, srv.Count("register"))
		require.Equal(t, "https://mcpidp.example.com/oauth/client-metadata.json", srv.AuthorizeRequests()[0].Get("client_id"))
		require.Equal(t, "https://mcpidp.example.com/oauth/callback", srv.AuthorizeRequests()[0].Get("redirect_uri"))
		_, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
	})
	t.Run("CIMDPublishedElsewhere", func(t *testing.T) {
		t.Parallel()
		const docURL = "https://static.example.com/mcpidp/client.json"
		var e *mcpauth.Engine
		srv := mcpauthtest.New(t, mcpauthtest.Config{CIMD: true, ClientMetadataFunc: func(clientID string) ([]byte, error) {
			if clientID != docURL {
				return nil, errors.New("not found")
			}
			return e.ClientMetadataDocument()
		}})
		var bundle *testBundle
		e, bundle = setup(t, storetest.SQLite, func(c *mcpauth.Config) { c.ClientMetadataURL = docURL })
		require.Equal(t, docURL, e.ClientMetadataURL())
		login(t, e, srv, "acme", "alice")
		require.Equal(t, 0, srv.Count("register"))
		require.Equal(t, docURL, srv.AuthorizeRequests()[0].Get("client_id"))
		require.Equal(t, "http://mcpidp.test/oauth/callback", srv.AuthorizeRequests()[0].Get("redirect_uri"))

		s, _ := storetest.OpenStore(t, bundle.databaseURL, nil)
		_, err := mcpauth.New(mcpauth.Config{Store: s, Keyring: bundle.keyring, HTTPClient: http.DefaultClient,
			PublicURL: "https://mcpidp.example.com", ClientMetadataURL: "http://static.example.com/client.json"})
		require.ErrorContains(t, err, "invalid client metadata URL", "a CIMD client_id must be https")
	})
	t.Run("CIMDSkippedOnHTTPPublicURL", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{CIMD: true})
		login(t, e, srv, "acme", "alice")
		require.Equal(t, 1, srv.Count("register"), "falls back to dynamic registration")
	})
	t.Run("PreRegisteredWins", func(t *testing.T) {
		t.Parallel()
		srv := mcpauthtest.New(t, mcpauthtest.Config{CIMD: true, TokenEndpointAuthMethods: []string{"client_secret_post"}})
		srv.AddClient(mcpauthtest.Client{ID: "pre-1", Secret: "pre-secret", AuthMethod: "client_secret_post", RedirectURIs: []string{"https://mcpidp.example.com/oauth/callback"}})
		clients, err := mcpauth.ParsePreRegistered(`[{"issuer":"` + srv.Issuer() + `/","client_id":"pre-1","client_secret":"pre-secret","token_endpoint_auth_method":"client_secret_post","scopes":["files:read"]}]`)
		require.NoError(t, err)
		e, _ := setup(t, storetest.SQLite, func(c *mcpauth.Config) {
			c.PublicURL = "https://mcpidp.example.com"
			c.PreRegistered = clients
		})
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL()})
		require.NoError(t, err)
		require.Equal(t, []string{"files:read"}, l.Scopes, "the pre-registered client's scopes when nobody names any")
		require.Equal(t, 1, srv.Count("resource"), "without a challenge, BeginLogin asks the server for one")
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		_, err = e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
		require.NoError(t, err)
		require.Equal(t, 0, srv.Count("register"))
		require.Equal(t, "pre-1", srv.AuthorizeRequests()[0].Get("client_id"))
		require.Equal(t, "pre-secret", srv.TokenRequests()[0].Get("client_secret"))
	})
}

func TestScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	begin := func(t *testing.T, cfg mcpauthtest.Config, p mcpauth.LoginParams) (*mcpauth.Login, url.Values) {
		t.Helper()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := mcpauthtest.New(t, cfg)
		p.Tenant, p.User, p.ServerURL = "acme", "alice", srv.URL()
		if p.WWWAuthenticate == "" {
			p.WWWAuthenticate = srv.Challenge()
		}
		l, err := e.BeginLogin(ctx, p)
		require.NoError(t, err)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		u, err := url.Parse(started.URL)
		require.NoError(t, err)
		return l, u.Query()
	}

	t.Run("FromChallenge", func(t *testing.T) {
		t.Parallel()
		_, q := begin(t, mcpauthtest.Config{ChallengeScope: "a b", ScopesSupported: []string{"x"}}, mcpauth.LoginParams{})
		require.Equal(t, "a b", q.Get("scope"))
	})
	t.Run("FromScopesSupported", func(t *testing.T) {
		t.Parallel()
		_, q := begin(t, mcpauthtest.Config{ScopesSupported: []string{"x", "y"}}, mcpauth.LoginParams{})
		require.Equal(t, "x y", q.Get("scope"))
	})
	t.Run("OmittedWhenUndefined", func(t *testing.T) {
		t.Parallel()
		_, q := begin(t, mcpauthtest.Config{ASScopesSupported: []string{"offline_access"}}, mcpauth.LoginParams{})
		require.False(t, q.Has("scope"))
	})
	t.Run("OfflineAccessOnlyWhenAdvertised", func(t *testing.T) {
		t.Parallel()
		_, q := begin(t, mcpauthtest.Config{ScopesSupported: []string{"x"}, ASScopesSupported: []string{"x", "offline_access"}}, mcpauth.LoginParams{})
		require.Equal(t, "x offline_access", q.Get("scope"))
		_, q = begin(t, mcpauthtest.Config{ScopesSupported: []string{"x"}, ASScopesSupported: []string{"x"}}, mcpauth.LoginParams{})
		require.Equal(t, "x", q.Get("scope"))
	})
	t.Run("ExplicitWins", func(t *testing.T) {
		t.Parallel()
		_, q := begin(t, mcpauthtest.Config{ChallengeScope: "a"}, mcpauth.LoginParams{Scopes: []string{"z"}})
		require.Equal(t, "z", q.Get("scope"))
	})
	t.Run("StepUpKeepsGrantedScopes", func(t *testing.T) {
		t.Parallel()
		backends(t, func(t *testing.T, backend storetest.Backend) {
			e, _ := setup(t, backend, nil)
			srv := mcpauthtest.New(t, mcpauthtest.Config{ChallengeScope: "files:read", RequiredScopes: []string{"files:write"}})
			res := login(t, e, srv, "acme", "alice")
			require.Equal(t, []string{"files:read"}, res.Scopes)
			status, challenge := callResource(t, e, srv, "acme", "alice")
			require.Equal(t, http.StatusForbidden, status)
			require.True(t, mcpauth.ParseChallenge(challenge).InsufficientScope())

			l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: challenge})
			require.NoError(t, err)
			require.Equal(t, []string{"files:read", "files:write"}, l.Scopes)
			started, err := e.Start(ctx, l.ID)
			require.NoError(t, err)
			again, err := e.Callback(ctx, mcpauthtest.Approve(t, started.URL), []*http.Cookie{started.Cookie})
			require.NoError(t, err)
			require.Equal(t, res.ConnectionID, again.ConnectionID)
			status, _ = callResource(t, e, srv, "acme", "alice")
			require.Equal(t, http.StatusOK, status)
		})
	})
}

func TestClientMetadataDocument(t *testing.T) {
	t.Parallel()
	e, _ := setup(t, storetest.SQLite, func(c *mcpauth.Config) { c.PublicURL = "https://mcpidp.example.com/"; c.ClientName = "Acme Assistant" })
	doc, err := e.ClientMetadataDocument()
	require.NoError(t, err)
	require.JSONEq(t, `{
		"client_id": "https://mcpidp.example.com/oauth/client-metadata.json",
		"client_name": "Acme Assistant",
		"client_uri": "https://mcpidp.example.com",
		"redirect_uris": ["https://mcpidp.example.com/oauth/callback"],
		"grant_types": ["authorization_code", "refresh_token"],
		"response_types": ["code"],
		"token_endpoint_auth_method": "none"
	}`, string(doc))
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, bundle := setup(t, storetest.SQLite, nil)
	srv := mcpauthtest.New(t, mcpauthtest.Config{})
	l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice", ServerURL: srv.URL(), WWWAuthenticate: srv.Challenge()})
	require.NoError(t, err)
	_, err = e.Start(ctx, l.ID)
	require.NoError(t, err)
	n, err := e.Cleanup(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	bundle.clock.Add(mcpauth.DefaultLoginTTL + mcpauth.DefaultStateTTL + time.Minute)
	n, err = e.Cleanup(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the state and the login")
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := mcpauth.New(mcpauth.Config{})
	require.ErrorContains(t, err, "store is required")
	_, err = mcpauth.ParsePreRegistered(`[{"issuer":"https://a.example.com","client_id":"x","token_endpoint_auth_method":"client_secret_post"}]`)
	require.ErrorContains(t, err, "needs a client_secret")
	_, err = mcpauth.ParsePreRegistered(`[{"issuer":"a.example.com","client_id":"x"}]`)
	require.ErrorContains(t, err, "issuer")
	_, err = mcpauth.ParsePreRegistered(`{"issuer":"https://a.example.com"}`)
	require.ErrorContains(t, err, "JSON array")
	clients, err := mcpauth.ParsePreRegistered(`[{"issuer":"https://a.example.com","client_id":"x","client_secret":"s"}]`)
	require.NoError(t, err)
	require.Equal(t, mcpauth.AuthMethodClientSecretBasic, clients[0].TokenEndpointAuthMethod)
	clients, err = mcpauth.ParsePreRegistered(" ")
	require.NoError(t, err)
	require.Empty(t, clients)
}

func TestTokenRejectedRefreshes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, backend storetest.Backend) {
		ctx := context.Background()
		e, _ := setup(t, backend, nil)
		srv := mcpauthtest.New(t, mcpauthtest.Config{NoRotation: true})
		login(t, e, srv, "acme", "alice")
		old, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)

		retry, err := e.TokenRejected(ctx, "acme", "alice", srv.URL(), "some-other-token")
		require.NoError(t, err)
		require.True(t, retry, "a token that was already replaced: retry with the current one")
		same, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.Equal(t, old, same, "a stale report does not touch the current token")

		retry, err = e.TokenRejected(ctx, "acme", "alice", srv.URL(), old)
		require.NoError(t, err)
		require.True(t, retry)
		fresh, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
		require.NoError(t, err)
		require.NotEqual(t, old, fresh)
		require.Equal(t, 1, srv.Count("refresh"))

		retry, err = e.TokenRejected(ctx, "acme", "bob", srv.URL(), fresh)
		require.NoError(t, err)
		require.False(t, retry, "bob has no connection")
	})
}

func TestTokenRejectedWithoutRefreshTokenExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _ := setup(t, storetest.SQLite, nil)
	srv := mcpauthtest.New(t, mcpauthtest.Config{NoRefreshTokens: true})
	login(t, e, srv, "acme", "alice")
	token, err := e.AccessToken(ctx, "acme", "alice", srv.URL())
	require.NoError(t, err)
	retry, err := e.TokenRejected(ctx, "acme", "alice", srv.URL(), token)
	require.NoError(t, err)
	require.False(t, retry)
	_, err = e.AccessToken(ctx, "acme", "alice", srv.URL())
	require.ErrorIs(t, err, mcpauth.ErrLoginRequired)
	conns, err := e.ListConnections(ctx, "acme", "alice")
	require.NoError(t, err)
	require.Equal(t, mcpauth.StatusExpired, conns[0].Status)
}

// legacyServer is a 2025-03-26 MCP server without protected-resource
// metadata whose root serves authorization server metadata naming the
// issuer issuerFor(origin), with endpoints under origin/oauth.
func legacyServer(t *testing.T, issuerFor func(origin string) string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		origin := "http://" + r.Host
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"registration_endpoint":%q,`+
			`"code_challenge_methods_supported":["S256"],"token_endpoint_auth_methods_supported":["none"]}`,
			issuerFor(origin), origin+"/oauth/authorize", origin+"/oauth/token", origin+"/oauth/register")
	})
	mux.HandleFunc("POST /oauth/register", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"client_id":"legacy-client","token_endpoint_auth_method":"none"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
