package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseOAuth runs the conformance suite of the OAuth tables (client
// registrations, login links, states, connections) against databases made
// by databaseURL.
func ExerciseOAuth(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	type testBundle struct {
		clock *Clock
	}
	setup := func(t *testing.T) (*store.Store, *testBundle) {
		t.Helper()
		clock := NewClock()
		s, _ := OpenStore(t, databaseURL(t), clock.Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "globex", ""))
		return s, &testBundle{clock: clock}
	}
	authority := store.OAuthAuthority{
		Resource:                "https://mcp.example.com/mcp",
		Issuer:                  "https://auth.example.com",
		AuthorizationEndpoint:   "https://auth.example.com/authorize",
		TokenEndpoint:           "https://auth.example.com/token",
		RevocationEndpoint:      "https://auth.example.com/revoke",
		IssParameterSupported:   true,
		ClientID:                "client-1",
		TokenEndpointAuthMethod: "client_secret_basic",
	}
	newLogin := func(s *store.Store, tenant, user string) *store.OAuthLogin {
		now := s.Now().UTC().Truncate(time.Microsecond)
		return &store.OAuthLogin{ID: store.NewToken(), TenantID: tenant, UserID: user, ServerURL: "https://mcp.example.com/mcp",
			OAuthAuthority: authority, Scopes: "read write", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	}
	newConnection := func(tenant, user, server string) *store.OAuthConnection {
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		return &store.OAuthConnection{TenantID: tenant, UserID: user, ServerURL: server, OAuthAuthority: authority,
			Scopes: "read", Status: store.OAuthConnectionActive, AccessToken: "sealed-at", RefreshToken: "sealed-rt",
			TokenType: "Bearer", ExpiresAt: &exp}
	}

	t.Run("ClientRegistration", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		_, err := s.GetOAuthClient(ctx, s.DB(), "https://auth.example.com", "https://mcpidp.example.com/oauth/callback")
		require.ErrorIs(t, err, store.ErrNotFound)
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		c := &store.OAuthClient{Issuer: "https://auth.example.com", RedirectURI: "https://mcpidp.example.com/oauth/callback",
			ClientID: "dcr-1", ClientSecret: "sealed", TokenEndpointAuthMethod: "client_secret_post", SecretExpiresAt: &exp,
			GrantTypes: []string{"authorization_code", "refresh_token"}}
		require.NoError(t, s.CreateOAuthClient(ctx, s.DB(), c))
		got, err := s.GetOAuthClient(ctx, s.DB(), c.Issuer, c.RedirectURI)
		require.NoError(t, err)
		require.Equal(t, "dcr-1", got.ClientID)
		require.Equal(t, "sealed", got.ClientSecret)
		require.Equal(t, "client_secret_post", got.TokenEndpointAuthMethod)
		require.Equal(t, exp, *got.SecretExpiresAt)
		require.Equal(t, []string{"authorization_code", "refresh_token"}, got.GrantTypes)

		second := *c
		second.ClientID = "dcr-2"
		require.ErrorIs(t, s.CreateOAuthClient(ctx, s.DB(), &second), store.ErrConflict, "one registration per issuer and redirect URI")

		require.NoError(t, s.DeleteOAuthClient(ctx, s.DB(), c.Issuer, c.RedirectURI, "dcr-other"))
		_, err = s.GetOAuthClient(ctx, s.DB(), c.Issuer, c.RedirectURI)
		require.NoError(t, err, "deleting another client id leaves the registration alone")
		require.NoError(t, s.DeleteOAuthClient(ctx, s.DB(), c.Issuer, c.RedirectURI, "dcr-1"))
		_, err = s.GetOAuthClient(ctx, s.DB(), c.Issuer, c.RedirectURI)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("LoginAndSingleUseState", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		l := newLogin(s, "acme", "alice")
		require.NoError(t, s.CreateOAuthLogin(ctx, s.DB(), l))
		got, err := s.GetOAuthLogin(ctx, s.DB(), l.ID)
		require.NoError(t, err)
		require.Equal(t, l, got)

		_, err = s.GetOAuthLogin(ctx, s.DB(), "nope")
		require.ErrorIs(t, err, store.ErrNotFound)

		// A login whose client registration was replaced follows it.
		require.NoError(t, s.UpdateOAuthLoginClient(ctx, s.DB(), l.ID, "dcr-2", "client_secret_post"))
		got, err = s.GetOAuthLogin(ctx, s.DB(), l.ID)
		require.NoError(t, err)
		require.Equal(t, "dcr-2", got.ClientID)
		require.Equal(t, "client_secret_post", got.TokenEndpointAuthMethod)
		require.ErrorIs(t, s.UpdateOAuthLoginClient(ctx, s.DB(), "nope", "x", "none"), store.ErrNotFound)

		st := &store.OAuthState{StateHash: "hash-1", LoginID: l.ID, CodeVerifier: "sealed-verifier", BrowserHash: "browser-1", ExpiresAt: s.Now().Add(15 * time.Minute)}
		require.NoError(t, s.CreateOAuthState(ctx, s.DB(), st))
		gotState, err := s.GetOAuthState(ctx, s.DB(), "hash-1")
		require.NoError(t, err)
		require.Equal(t, "sealed-verifier", gotState.CodeVerifier)
		require.Equal(t, "browser-1", gotState.BrowserHash)
		require.Nil(t, gotState.UsedAt)

		require.NoError(t, s.UseOAuthState(ctx, s.DB(), "hash-1"))
		require.ErrorIs(t, s.UseOAuthState(ctx, s.DB(), "hash-1"), store.ErrConflict, "a state is used once")
		require.ErrorIs(t, s.UseOAuthState(ctx, s.DB(), "hash-unknown"), store.ErrNotFound)
		gotState, err = s.GetOAuthState(ctx, s.DB(), "hash-1")
		require.NoError(t, err)
		require.NotNil(t, gotState.UsedAt)

		require.NoError(t, s.MarkOAuthLoginCompleted(ctx, s.DB(), l.ID))
		got, err = s.GetOAuthLogin(ctx, s.DB(), l.ID)
		require.NoError(t, err)
		require.NotNil(t, got.CompletedAt)
		require.ErrorIs(t, s.UpdateOAuthLoginClient(ctx, s.DB(), l.ID, "dcr-3", "none"), store.ErrNotFound, "a completed login keeps its client")
		require.ErrorIs(t, s.MarkOAuthLoginCompleted(ctx, s.DB(), l.ID), store.ErrConflict, "a login completes once")
		require.ErrorIs(t, s.MarkOAuthLoginCompleted(ctx, s.DB(), "nope"), store.ErrNotFound)
		again, err := s.GetOAuthLogin(ctx, s.DB(), l.ID)
		require.NoError(t, err)
		require.Equal(t, got.CompletedAt, again.CompletedAt, "the first completion time stays")
	})

	t.Run("CleanupDeletesExpiredStatesAndLogins", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		old := newLogin(s, "acme", "alice")
		old.ExpiresAt = s.Now().Add(time.Hour)
		require.NoError(t, s.CreateOAuthLogin(ctx, s.DB(), old))
		fresh := newLogin(s, "acme", "bob")
		require.NoError(t, s.CreateOAuthLogin(ctx, s.DB(), fresh))
		require.NoError(t, s.CreateOAuthState(ctx, s.DB(), &store.OAuthState{StateHash: "old-state", LoginID: old.ID, CodeVerifier: "v", ExpiresAt: s.Now().Add(3 * time.Hour)}))
		require.NoError(t, s.CreateOAuthState(ctx, s.DB(), &store.OAuthState{StateHash: "short", LoginID: fresh.ID, CodeVerifier: "v", ExpiresAt: s.Now().Add(time.Minute)}))
		require.NoError(t, s.CreateOAuthState(ctx, s.DB(), &store.OAuthState{StateHash: "long", LoginID: fresh.ID, CodeVerifier: "v", ExpiresAt: s.Now().Add(5 * time.Hour)}))

		bundle.clock.Add(2 * time.Hour)
		n, err := s.DeleteExpiredOAuth(ctx, s.DB(), s.Now(), s.Now())
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "the short state and the old login")
		_, err = s.GetOAuthLogin(ctx, s.DB(), old.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetOAuthState(ctx, s.DB(), "old-state")
		require.ErrorIs(t, err, store.ErrNotFound, "states go with their login")
		_, err = s.GetOAuthState(ctx, s.DB(), "short")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetOAuthState(ctx, s.DB(), "long")
		require.NoError(t, err)
	})

	t.Run("ConnectionUpsertKeepsIdentity", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		c := newConnection("acme", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), c))
		require.Regexp(t, `^conn_[0-9a-z]{26}$`, c.ID)
		got, err := s.GetOAuthConnection(ctx, s.DB(), "acme", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, err)
		require.Equal(t, c.ID, got.ID)
		require.Equal(t, authority, got.OAuthAuthority)
		require.Equal(t, "sealed-at", got.AccessToken)
		require.Equal(t, "sealed-rt", got.RefreshToken)
		require.Equal(t, *c.ExpiresAt, *got.ExpiresAt)

		again := newConnection("acme", "alice", "https://mcp.example.com/mcp")
		again.AccessToken, again.RefreshToken, again.Scopes = "sealed-at-2", "", "read write"
		again.ExpiresAt = nil
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), again))
		require.Equal(t, c.ID, again.ID, "a new login to the same server replaces the tokens of the same connection")
		got, err = s.GetOAuthConnection(ctx, s.DB(), "acme", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, err)
		require.Equal(t, "sealed-at-2", got.AccessToken)
		require.Empty(t, got.RefreshToken)
		require.Equal(t, "read write", got.Scopes)
		require.Nil(t, got.ExpiresAt)
		require.Equal(t, c.CreatedAt, got.CreatedAt)
	})

	t.Run("ConnectionTenantAndUserIsolation", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		a := newConnection("acme", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), a))
		b := newConnection("acme", "bob", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), b))
		g := newConnection("globex", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), g))
		require.NotEqual(t, a.ID, b.ID)
		require.NotEqual(t, a.ID, g.ID)

		list, err := s.ListOAuthConnections(ctx, s.DB(), "acme", "alice")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, a.ID, list[0].ID)

		_, err = s.GetOAuthConnectionByID(ctx, s.DB(), "globex", a.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteOAuthConnection(ctx, s.DB(), "globex", a.ID), store.ErrNotFound)
		require.ErrorIs(t, s.TouchOAuthConnection(ctx, s.DB(), "globex", a.ID), store.ErrNotFound)
		_, err = s.GetOAuthConnection(ctx, s.DB(), "acme", "alice", "https://other.example.com/mcp")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, s.DeleteOAuthConnection(ctx, s.DB(), "acme", a.ID))
		_, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", a.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", b.ID)
		require.NoError(t, err, "bob's connection is untouched")
	})

	t.Run("ConnectionRefreshBookkeeping", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		soon := newConnection("acme", "alice", "https://one.example.com/mcp")
		in := time.Now().Add(30 * time.Second).UTC().Truncate(time.Microsecond)
		soon.ExpiresAt = &in
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), soon))
		later := newConnection("acme", "alice", "https://two.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), later))
		noRefresh := newConnection("acme", "alice", "https://three.example.com/mcp")
		noRefresh.RefreshToken = ""
		noRefresh.ExpiresAt = &in
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), noRefresh))

		expiring, err := s.ListOAuthConnectionsExpiring(ctx, s.DB(), time.Now().Add(5*time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, expiring, 1)
		require.Equal(t, soon.ID, expiring[0].ID)

		newExp := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Microsecond)
		require.NoError(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", soon.ID, store.OAuthTokenUpdate{
			AccessToken: "at-2", RefreshToken: "rt-2", TokenType: "Bearer", Scopes: "read", ExpiresAt: &newExp}))
		tx, err := s.DB().BeginTx(ctx, nil)
		require.NoError(t, err)
		locked, err := s.GetOAuthConnectionForUpdate(ctx, tx, "acme", soon.ID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		require.Equal(t, "at-2", locked.AccessToken)
		require.Equal(t, "rt-2", locked.RefreshToken)
		require.Equal(t, newExp, *locked.ExpiresAt)
		require.NotNil(t, locked.RefreshedAt)

		require.NoError(t, s.TouchOAuthConnection(ctx, s.DB(), "acme", soon.ID))
		require.NoError(t, s.SetOAuthConnectionStatus(ctx, s.DB(), "acme", soon.ID, store.OAuthConnectionRefreshFailed))
		got, err := s.GetOAuthConnectionByID(ctx, s.DB(), "acme", soon.ID)
		require.NoError(t, err)
		require.Equal(t, store.OAuthConnectionRefreshFailed, got.Status)
		require.Empty(t, got.AccessToken, "a failed connection keeps no tokens")
		require.Empty(t, got.RefreshToken)
		require.NotNil(t, got.LastUsedAt)

		expiring, err = s.ListOAuthConnectionsExpiring(ctx, s.DB(), time.Now().Add(24*time.Hour), 10)
		require.NoError(t, err)
		require.Len(t, expiring, 1, "only active connections with a refresh token")
		require.Equal(t, later.ID, expiring[0].ID)
	})

	t.Run("ConnectionRefreshLease", func(t *testing.T) {
		t.Parallel()
		s, bundle := setup(t)
		c := newConnection("acme", "alice", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), c))
		got, err := s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Empty(t, got.RefreshLeaseID)
		require.Nil(t, got.RefreshLeaseUntil)

		now := bundle.clock.Now().UTC().Truncate(time.Microsecond)
		until := now.Add(45 * time.Second)
		ok, err := s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-1", now, until, "")
		require.NoError(t, err)
		require.True(t, ok)
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Equal(t, "lease-1", got.RefreshLeaseID)
		require.Equal(t, until, *got.RefreshLeaseUntil)

		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-2", now, until, "")
		require.NoError(t, err)
		require.False(t, ok, "a live lease is not taken")
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-2", now, until, "lease-other")
		require.NoError(t, err)
		require.False(t, ok, "replacing names another lease")
		_, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "globex", c.ID, "lease-2", now, until, "")
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's connection")
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-2", until, until.Add(45*time.Second), "")
		require.NoError(t, err)
		require.True(t, ok, "a lease whose term ended is taken")
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-3", now, until, "lease-2")
		require.NoError(t, err)
		require.True(t, ok, "a lease the caller watched outlive its term is replaced")

		// Only the holder stores tokens or a failure, and doing so
		// releases the lease.
		upd := store.OAuthTokenUpdate{AccessToken: "at-2", RefreshToken: "rt-2", TokenType: "Bearer", Scopes: "read", LeaseID: "lease-2"}
		require.ErrorIs(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", c.ID, upd), store.ErrConflict)
		require.ErrorIs(t, s.MarkOAuthConnectionRefreshFailed(ctx, s.DB(), "acme", c.ID, "lease-2"), store.ErrConflict)
		require.NoError(t, s.ReleaseOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-2"), "releasing a lease not held does nothing")
		upd.LeaseID = "lease-3"
		require.ErrorIs(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "globex", c.ID, upd), store.ErrNotFound)
		require.NoError(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", c.ID, upd))
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Equal(t, "at-2", got.AccessToken)
		require.Equal(t, "rt-2", got.RefreshToken)
		require.NotNil(t, got.RefreshedAt)
		require.Empty(t, got.RefreshLeaseID, "storing the tokens released the lease")
		require.Nil(t, got.RefreshLeaseUntil)
		require.ErrorIs(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", c.ID, upd), store.ErrConflict, "the lease is used once")

		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-4", now, until, "")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.ReleaseOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-4"))
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Empty(t, got.RefreshLeaseID)

		// A new login drops the lease: a refresh of the old tokens still
		// under way stores nothing.
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-5", now, until, "")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), newConnection("acme", "alice", "https://mcp.example.com/mcp")))
		upd.LeaseID = "lease-5"
		require.ErrorIs(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", c.ID, upd), store.ErrConflict)
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Equal(t, "sealed-at", got.AccessToken, "the new login's tokens stay")
		require.Empty(t, got.RefreshLeaseID)

		// A failure under the lease drops the tokens and the lease.
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", c.ID, "lease-6", now, until, "")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.MarkOAuthConnectionRefreshFailed(ctx, s.DB(), "acme", c.ID, "lease-6"))
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", c.ID)
		require.NoError(t, err)
		require.Equal(t, store.OAuthConnectionRefreshFailed, got.Status)
		require.Empty(t, got.AccessToken)
		require.Empty(t, got.RefreshToken)
		require.Empty(t, got.RefreshLeaseID)

		// A status change drops the lease too.
		other := newConnection("acme", "bob", "https://mcp.example.com/mcp")
		require.NoError(t, s.UpsertOAuthConnection(ctx, s.DB(), other))
		ok, err = s.TakeOAuthRefreshLease(ctx, s.DB(), "acme", other.ID, "lease-7", now, until, "")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.SetOAuthConnectionStatus(ctx, s.DB(), "acme", other.ID, store.OAuthConnectionRevoked))
		upd.LeaseID = "lease-7"
		require.ErrorIs(t, s.UpdateOAuthConnectionTokens(ctx, s.DB(), "acme", other.ID, upd), store.ErrConflict)
		got, err = s.GetOAuthConnectionByID(ctx, s.DB(), "acme", other.ID)
		require.NoError(t, err)
		require.Equal(t, store.OAuthConnectionRevoked, got.Status)
		require.Empty(t, got.AccessToken, "a revoked connection gets no tokens back")
	})
}
