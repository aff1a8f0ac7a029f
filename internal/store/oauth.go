package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// OAuthClient is a client registration mcpidp obtained by dynamic client
// registration (RFC 7591) at one authorization server, reused for every
// tenant and user. ClientSecret is sealed (secretbox); empty for public
// clients.
type OAuthClient struct {
	Issuer                  string
	RedirectURI             string
	ClientID                string
	ClientSecret            string
	TokenEndpointAuthMethod string
	// SecretExpiresAt is when the AS stops accepting the secret; nil when
	// it never expires.
	SecretExpiresAt *time.Time
	// GrantTypes are the grant types the AS says it registered the client
	// for; empty when it did not say (RFC 7591: authorization_code only).
	GrantTypes []string
	CreatedAt  time.Time
}

// OAuthAuthority is what a login and a connection know about the
// authorization server and the client registration used with it, so that
// refresh and revocation need no discovery.
type OAuthAuthority struct {
	// Resource is the RFC 8707 resource indicator sent to the AS.
	Resource              string
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	// RevocationEndpoint is empty when the AS offers none.
	RevocationEndpoint string
	// IssParameterSupported is the AS metadata's
	// authorization_response_iss_parameter_supported (RFC 9207).
	IssParameterSupported   bool
	ClientID                string
	TokenEndpointAuthMethod string
}

// OAuthLogin is a login link: /oauth/start/{ID} works until ExpiresAt.
type OAuthLogin struct {
	ID        string
	TenantID  string
	UserID    string
	ServerURL string
	OAuthAuthority
	// Scopes is the space-separated scope to request; empty for none.
	Scopes      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	CompletedAt *time.Time
}

// OAuthState is one visit of a login link. StateHash is the SHA-256 of the
// state sent to the AS; CodeVerifier is sealed.
type OAuthState struct {
	StateHash    string
	LoginID      string
	CodeVerifier string
	// BrowserHash is the SHA-256 of the value of the cookie that binds the
	// state to the browser that opened the login link; the callback must
	// come from that browser.
	BrowserHash string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      *time.Time
}

// OAuthConnectionStatus is the stored state of a connection. "expired" is not
// stored: it is an active connection whose access token has expired and that
// has no refresh token.
type OAuthConnectionStatus string

const (
	OAuthConnectionActive        OAuthConnectionStatus = "active"
	OAuthConnectionRevoked       OAuthConnectionStatus = "revoked"
	OAuthConnectionRefreshFailed OAuthConnectionStatus = "refresh_failed"
)

// OAuthConnection is one user's tokens for one MCP server, unique per
// (TenantID, UserID, ServerURL). AccessToken and RefreshToken are sealed.
type OAuthConnection struct {
	ID        string
	TenantID  string
	UserID    string
	ServerURL string
	OAuthAuthority
	Scopes       string
	Status       OAuthConnectionStatus
	AccessToken  string
	RefreshToken string
	TokenType    string
	// ExpiresAt is when the access token expires; nil when the AS did not
	// say.
	ExpiresAt   *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastUsedAt  *time.Time
	RefreshedAt *time.Time
	// RefreshLeaseID names the refresh under way, if any, and
	// RefreshLeaseUntil is when its lease ends (see TakeOAuthRefreshLease).
	// Both are empty when nobody is refreshing.
	RefreshLeaseID    string
	RefreshLeaseUntil *time.Time
}

// GetOAuthClient returns the registration stored for the issuer and redirect
// URI, or ErrNotFound.
func (s *Store) GetOAuthClient(ctx context.Context, q DBTX, issuer, redirectURI string) (*OAuthClient, error) {
	var (
		c               OAuthClient
		secretExpiresAt sql.NullInt64
		grantTypes      string
		created         int64
	)
	err := q.QueryRowContext(ctx, `SELECT issuer, redirect_uri, client_id, client_secret, token_endpoint_auth_method, secret_expires_at, grant_types, created_at
		FROM mcpidp_oauth_client WHERE issuer = $1 AND redirect_uri = $2`, issuer, redirectURI).
		Scan(&c.Issuer, &c.RedirectURI, &c.ClientID, &c.ClientSecret, &c.TokenEndpointAuthMethod, &secretExpiresAt, &grantTypes, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("oauth client for %s: %w", issuer, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading oauth client for %s: %w", issuer, err)
	}
	c.SecretExpiresAt = timePtr(secretExpiresAt)
	c.GrantTypes = strings.Fields(grantTypes)
	c.CreatedAt = fromMicros(created)
	return &c, nil
}

// CreateOAuthClient stores a registration. When one already exists for the
// issuer and redirect URI (another process registered first) it returns
// ErrConflict; the caller should use the stored one.
func (s *Store) CreateOAuthClient(ctx context.Context, q DBTX, c *OAuthClient) error {
	c.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_oauth_client
		(issuer, redirect_uri, client_id, client_secret, token_endpoint_auth_method, secret_expires_at, grant_types, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		c.Issuer, c.RedirectURI, c.ClientID, c.ClientSecret, c.TokenEndpointAuthMethod, nullMicros(c.SecretExpiresAt),
		strings.Join(c.GrantTypes, " "), micros(c.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("oauth client for %s: %w", c.Issuer, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error saving oauth client for %s: %w", c.Issuer, err)
	}
	return nil
}

// DeleteOAuthClient forgets a registration, but only if it is still the one
// with clientID (so a process does not delete a newer registration made by
// another). Deleting nothing is not an error.
func (s *Store) DeleteOAuthClient(ctx context.Context, q DBTX, issuer, redirectURI, clientID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM mcpidp_oauth_client WHERE issuer = $1 AND redirect_uri = $2 AND client_id = $3`,
		issuer, redirectURI, clientID); err != nil {
		return fmt.Errorf("error deleting oauth client for %s: %w", issuer, err)
	}
	return nil
}

const authorityColumns = `resource, issuer, authorization_endpoint, token_endpoint, revocation_endpoint, iss_parameter_supported,
	client_id, token_endpoint_auth_method`

func authorityArgs(a *OAuthAuthority) []any {
	return []any{a.Resource, a.Issuer, a.AuthorizationEndpoint, a.TokenEndpoint, a.RevocationEndpoint, a.IssParameterSupported,
		a.ClientID, a.TokenEndpointAuthMethod}
}

func authorityDest(a *OAuthAuthority) []any {
	return []any{&a.Resource, &a.Issuer, &a.AuthorizationEndpoint, &a.TokenEndpoint, &a.RevocationEndpoint, &a.IssParameterSupported,
		&a.ClientID, &a.TokenEndpointAuthMethod}
}

// placeholders returns "$from, …, $to".
func placeholders(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		if i > from {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i)
	}
	return b.String()
}

const loginColumns = `id, tenant_id, user_id, server_url, ` + authorityColumns + `, scopes, created_at, expires_at, completed_at`

// CreateOAuthLogin inserts a login link. ID, CreatedAt and ExpiresAt must be
// set by the caller.
func (s *Store) CreateOAuthLogin(ctx context.Context, q DBTX, l *OAuthLogin) error {
	args := []any{l.ID, l.TenantID, l.UserID, l.ServerURL}
	args = append(args, authorityArgs(&l.OAuthAuthority)...)
	args = append(args, l.Scopes, micros(l.CreatedAt), micros(l.ExpiresAt), nullMicros(l.CompletedAt))
	if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_oauth_login (`+loginColumns+`) VALUES (`+placeholders(1, len(args))+`)`, args...); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("oauth login: %w", ErrConflict)
		}
		return fmt.Errorf("error saving oauth login: %w", err)
	}
	return nil
}

// GetOAuthLogin returns a login link whatever its expiry (the caller decides
// what an expired link means), or ErrNotFound.
func (s *Store) GetOAuthLogin(ctx context.Context, q DBTX, id string) (*OAuthLogin, error) {
	var (
		l                OAuthLogin
		created, expires int64
		completed        sql.NullInt64
	)
	dest := []any{&l.ID, &l.TenantID, &l.UserID, &l.ServerURL}
	dest = append(dest, authorityDest(&l.OAuthAuthority)...)
	dest = append(dest, &l.Scopes, &created, &expires, &completed)
	err := q.QueryRowContext(ctx, `SELECT `+loginColumns+` FROM mcpidp_oauth_login WHERE id = $1`, id).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("oauth login: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading oauth login: %w", err)
	}
	l.CreatedAt, l.ExpiresAt, l.CompletedAt = fromMicros(created), fromMicros(expires), timePtr(completed)
	return &l, nil
}

// MarkOAuthLoginCompleted records that a flow started from the link
// finished; a link completes once. Exactly one caller wins: the others (and
// any later call) get ErrConflict. An unknown id is ErrNotFound.
func (s *Store) MarkOAuthLoginCompleted(ctx context.Context, q DBTX, id string) error {
	n, err := execCount(ctx, q, `UPDATE mcpidp_oauth_login SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL`, micros(s.now()), id)
	if err != nil {
		return fmt.Errorf("error updating oauth login: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, err := s.GetOAuthLogin(ctx, q, id); err != nil {
		return err
	}
	return fmt.Errorf("oauth login already completed: %w", ErrConflict)
}

// UpdateOAuthLoginClient points a login link that is not completed yet at
// another client registration with the same authorization server (its
// registration was dropped or replaced). An unknown or completed login is
// ErrNotFound.
func (s *Store) UpdateOAuthLoginClient(ctx context.Context, q DBTX, id, clientID, authMethod string) error {
	n, err := execCount(ctx, q, `UPDATE mcpidp_oauth_login SET client_id = $1, token_endpoint_auth_method = $2
		WHERE id = $3 AND completed_at IS NULL`, clientID, authMethod, id)
	if err != nil {
		return fmt.Errorf("error updating oauth login: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("oauth login: %w", ErrNotFound)
	}
	return nil
}

// CreateOAuthState inserts a state. StateHash, LoginID, CodeVerifier,
// BrowserHash and ExpiresAt must be set; CreatedAt is filled.
func (s *Store) CreateOAuthState(ctx context.Context, q DBTX, st *OAuthState) error {
	st.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_oauth_state (state_hash, login_id, code_verifier, browser_hash, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, NULL)`, st.StateHash, st.LoginID, st.CodeVerifier, st.BrowserHash, micros(st.CreatedAt), micros(st.ExpiresAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("oauth state: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error saving oauth state: %w", err)
	}
	return nil
}

// GetOAuthState returns a state, used or not, expired or not, or
// ErrNotFound.
func (s *Store) GetOAuthState(ctx context.Context, q DBTX, stateHash string) (*OAuthState, error) {
	var (
		st               OAuthState
		created, expires int64
		used             sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT state_hash, login_id, code_verifier, browser_hash, created_at, expires_at, used_at
		FROM mcpidp_oauth_state WHERE state_hash = $1`, stateHash).
		Scan(&st.StateHash, &st.LoginID, &st.CodeVerifier, &st.BrowserHash, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("oauth state: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading oauth state: %w", err)
	}
	st.CreatedAt, st.ExpiresAt, st.UsedAt = fromMicros(created), fromMicros(expires), timePtr(used)
	return &st, nil
}

// UseOAuthState marks a state used. Exactly one caller wins: the others (and
// any later replay) get ErrConflict. An unknown state is ErrNotFound.
func (s *Store) UseOAuthState(ctx context.Context, q DBTX, stateHash string) error {
	n, err := execCount(ctx, q, `UPDATE mcpidp_oauth_state SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL`,
		micros(s.now()), stateHash)
	if err != nil {
		return fmt.Errorf("error using oauth state: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, err := s.GetOAuthState(ctx, q, stateHash); err != nil {
		return err
	}
	return fmt.Errorf("oauth state already used: %w", ErrConflict)
}

// DeleteExpiredOAuth deletes states that expired before statesBefore and
// login links (with their states) that expired before loginsBefore, and
// returns how many rows went.
func (s *Store) DeleteExpiredOAuth(ctx context.Context, q DBTX, statesBefore, loginsBefore time.Time) (int64, error) {
	var total int64
	for _, del := range []struct {
		query  string
		before time.Time
	}{
		{`DELETE FROM mcpidp_oauth_state WHERE expires_at < $1`, statesBefore},
		{`DELETE FROM mcpidp_oauth_login WHERE expires_at < $1`, loginsBefore},
	} {
		n, err := execCount(ctx, q, del.query, micros(del.before))
		if err != nil {
			return total, fmt.Errorf("error deleting expired oauth rows: %w", err)
		}
		total += n
	}
	return total, nil
}

// connectionDataColumns are those a login writes; connectionColumns add
// the refresh lease, which only the lease methods write.
const (
	connectionDataColumns = `id, tenant_id, user_id, server_url, ` + authorityColumns + `, scopes, status, access_token, refresh_token,
	token_type, expires_at, created_at, updated_at, last_used_at, refreshed_at`
	connectionColumns = connectionDataColumns + `, refresh_lease_id, refresh_lease_until`
)

func scanConnection(row interface{ Scan(...any) error }) (*OAuthConnection, error) {
	var (
		c                            OAuthConnection
		created, updated             int64
		expires, lastUsed, refreshed sql.NullInt64
		leaseID                      sql.NullString
		leaseUntil                   sql.NullInt64
	)
	dest := []any{&c.ID, &c.TenantID, &c.UserID, &c.ServerURL}
	dest = append(dest, authorityDest(&c.OAuthAuthority)...)
	dest = append(dest, &c.Scopes, &c.Status, &c.AccessToken, &c.RefreshToken, &c.TokenType, &expires, &created, &updated, &lastUsed, &refreshed,
		&leaseID, &leaseUntil)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	c.ExpiresAt, c.LastUsedAt, c.RefreshedAt = timePtr(expires), timePtr(lastUsed), timePtr(refreshed)
	c.RefreshLeaseID, c.RefreshLeaseUntil = leaseID.String, timePtr(leaseUntil)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &c, nil
}

func connectionResult(c *OAuthConnection, err error) (*OAuthConnection, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("oauth connection: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading oauth connection: %w", err)
	}
	return c, nil
}

// UpsertOAuthConnection stores the tokens of a completed login: a new row,
// or, when the tenant's user already has a connection to the server, the
// same row (same ID and CreatedAt) with everything else replaced. It fills
// c.ID, CreatedAt and UpdatedAt. Sealed values must therefore be bound to
// the (tenant, user, server) key, not to the id. A refresh lease is
// dropped: a refresh of the old tokens that is still under way then cannot
// store its outcome over the new ones.
func (s *Store) UpsertOAuthConnection(ctx context.Context, q DBTX, c *OAuthConnection) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	id := NewID("conn_", now)
	args := []any{id, c.TenantID, c.UserID, c.ServerURL}
	args = append(args, authorityArgs(&c.OAuthAuthority)...)
	args = append(args, c.Scopes, string(c.Status), c.AccessToken, c.RefreshToken, c.TokenType, nullMicros(c.ExpiresAt),
		micros(now), micros(now), nullMicros(c.LastUsedAt), nullMicros(c.RefreshedAt))
	var created int64
	err := q.QueryRowContext(ctx, `INSERT INTO mcpidp_oauth_connection (`+connectionDataColumns+`) VALUES (`+placeholders(1, len(args))+`)
		ON CONFLICT (tenant_id, user_id, server_url) DO UPDATE SET
			resource = excluded.resource, issuer = excluded.issuer, authorization_endpoint = excluded.authorization_endpoint,
			token_endpoint = excluded.token_endpoint, revocation_endpoint = excluded.revocation_endpoint,
			iss_parameter_supported = excluded.iss_parameter_supported, client_id = excluded.client_id,
			token_endpoint_auth_method = excluded.token_endpoint_auth_method, scopes = excluded.scopes, status = excluded.status,
			access_token = excluded.access_token, refresh_token = excluded.refresh_token, token_type = excluded.token_type,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at, refreshed_at = excluded.refreshed_at,
			refresh_lease_id = NULL, refresh_lease_until = NULL
		RETURNING id, created_at`, args...).Scan(&c.ID, &created)
	if err != nil {
		return fmt.Errorf("error saving oauth connection: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = fromMicros(created), now
	return nil
}

// GetOAuthConnection returns the tenant's user's connection to serverURL, or
// ErrNotFound.
func (s *Store) GetOAuthConnection(ctx context.Context, q DBTX, tenantID, userID, serverURL string) (*OAuthConnection, error) {
	return connectionResult(scanConnection(q.QueryRowContext(ctx, `SELECT `+connectionColumns+` FROM mcpidp_oauth_connection
		WHERE tenant_id = $1 AND user_id = $2 AND server_url = $3`, tenantID, userID, serverURL)))
}

// GetOAuthConnectionByID returns the tenant's connection, or ErrNotFound
// (also for another tenant's id).
func (s *Store) GetOAuthConnectionByID(ctx context.Context, q DBTX, tenantID, id string) (*OAuthConnection, error) {
	return connectionResult(scanConnection(q.QueryRowContext(ctx, `SELECT `+connectionColumns+` FROM mcpidp_oauth_connection
		WHERE tenant_id = $1 AND id = $2`, tenantID, id)))
}

// GetOAuthConnectionForUpdate is GetOAuthConnectionByID that also locks the
// row until q's transaction ends (PostgreSQL; SQLite's immediate
// transactions already hold the write lock). Callers keep such a
// transaction short: never across a network request.
func (s *Store) GetOAuthConnectionForUpdate(ctx context.Context, q DBTX, tenantID, id string) (*OAuthConnection, error) {
	return connectionResult(scanConnection(q.QueryRowContext(ctx, `SELECT `+connectionColumns+` FROM mcpidp_oauth_connection
		WHERE tenant_id = $1 AND id = $2`+s.forUpdate(), tenantID, id)))
}

// ListOAuthConnections returns the tenant's user's connections, oldest
// first.
func (s *Store) ListOAuthConnections(ctx context.Context, q DBTX, tenantID, userID string) ([]*OAuthConnection, error) {
	return s.listConnections(ctx, q, `tenant_id = $1 AND user_id = $2 ORDER BY created_at, id`, tenantID, userID)
}

// ListOAuthConnectionsExpiring returns up to limit active connections that
// hold a refresh token and whose access token expires before before, soonest
// first.
func (s *Store) ListOAuthConnectionsExpiring(ctx context.Context, q DBTX, before time.Time, limit int) ([]*OAuthConnection, error) {
	return s.listConnections(ctx, q, `status = $1 AND refresh_token <> '' AND expires_at IS NOT NULL AND expires_at < $2
		ORDER BY expires_at, id LIMIT $3`, string(OAuthConnectionActive), micros(before), limit)
}

func (s *Store) listConnections(ctx context.Context, q DBTX, where string, args ...any) ([]*OAuthConnection, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+connectionColumns+` FROM mcpidp_oauth_connection WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("error listing oauth connections: %w", err)
	}
	defer rows.Close()
	var out []*OAuthConnection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("error listing oauth connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error listing oauth connections: %w", err)
	}
	return out, nil
}

// OAuthTokenUpdate is the outcome of a refresh, written in one statement so
// a rotated refresh token is never stored apart from its access token.
type OAuthTokenUpdate struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	Scopes       string
	ExpiresAt    *time.Time
	// LeaseID, when set, is the refresh lease the refresh was made under:
	// the tokens are stored only if the connection is active and the lease
	// is still held (else ErrConflict), and the lease is released.
	LeaseID string
}

// UpdateOAuthConnectionTokens stores refreshed tokens, sets the connection
// active and records the refresh time.
func (s *Store) UpdateOAuthConnectionTokens(ctx context.Context, q DBTX, tenantID, id string, u OAuthTokenUpdate) error {
	now := micros(s.now())
	if u.LeaseID != "" {
		return s.updateLeased(ctx, q, tenantID, id, `UPDATE mcpidp_oauth_connection SET access_token = $1, refresh_token = $2,
			token_type = $3, scopes = $4, expires_at = $5, updated_at = $6, refreshed_at = $6,
			refresh_lease_id = NULL, refresh_lease_until = NULL
			WHERE tenant_id = $7 AND id = $8 AND refresh_lease_id = $9 AND status = $10`,
			u.AccessToken, u.RefreshToken, u.TokenType, u.Scopes, nullMicros(u.ExpiresAt), now, tenantID, id, u.LeaseID,
			string(OAuthConnectionActive))
	}
	return s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET access_token = $1, refresh_token = $2, token_type = $3,
		scopes = $4, expires_at = $5, status = $6, updated_at = $7, refreshed_at = $7 WHERE tenant_id = $8 AND id = $9`,
		u.AccessToken, u.RefreshToken, u.TokenType, u.Scopes, nullMicros(u.ExpiresAt), string(OAuthConnectionActive), now, tenantID, id)
}

// TakeOAuthRefreshLease makes leaseID the connection's refresh lease until
// until, provided nobody holds the lease, its term ended by now, or it is
// replacing (a lease the caller watched outlive its term; "" for none). It
// reports whether leaseID got the lease; a connection that does not exist
// is ErrNotFound. The holder makes the token request with no transaction
// open and stores the outcome with UpdateOAuthConnectionTokens or
// MarkOAuthConnectionRefreshFailed under the lease, which release it.
func (s *Store) TakeOAuthRefreshLease(ctx context.Context, q DBTX, tenantID, id, leaseID string, now, until time.Time, replacing string) (bool, error) {
	if leaseID == "" {
		return false, errors.New("a refresh lease needs an id")
	}
	err := s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET refresh_lease_id = $1, refresh_lease_until = $2
		WHERE tenant_id = $3 AND id = $4 AND (refresh_lease_id IS NULL OR refresh_lease_until IS NULL OR refresh_lease_until <= $5
			OR refresh_lease_id = $6)`,
		leaseID, micros(until), tenantID, id, micros(now), replacing)
	if errors.Is(err, ErrNotFound) {
		if _, err := s.GetOAuthConnectionByID(ctx, q, tenantID, id); err != nil {
			return false, err
		}
		return false, nil
	}
	return err == nil, err
}

// ReleaseOAuthRefreshLease gives up the refresh lease if leaseID still holds
// it, and does nothing otherwise.
func (s *Store) ReleaseOAuthRefreshLease(ctx context.Context, q DBTX, tenantID, id, leaseID string) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_oauth_connection SET refresh_lease_id = NULL, refresh_lease_until = NULL
		WHERE tenant_id = $1 AND id = $2 AND refresh_lease_id = $3`, tenantID, id, leaseID); err != nil {
		return fmt.Errorf("error releasing oauth refresh lease: %w", err)
	}
	return nil
}

// MarkOAuthConnectionRefreshFailed sets the connection refresh_failed,
// drops its tokens and releases the refresh lease, provided the connection
// is active and leaseID still holds its lease (else ErrConflict).
func (s *Store) MarkOAuthConnectionRefreshFailed(ctx context.Context, q DBTX, tenantID, id, leaseID string) error {
	return s.updateLeased(ctx, q, tenantID, id, `UPDATE mcpidp_oauth_connection SET status = $1, updated_at = $2, access_token = '',
		refresh_token = '', refresh_lease_id = NULL, refresh_lease_until = NULL
		WHERE tenant_id = $3 AND id = $4 AND refresh_lease_id = $5 AND status = $6`,
		string(OAuthConnectionRefreshFailed), micros(s.now()), tenantID, id, leaseID, string(OAuthConnectionActive))
}

// updateLeased runs an update guarded by a refresh lease: ErrConflict when
// it changed nothing although the connection exists.
func (s *Store) updateLeased(ctx context.Context, q DBTX, tenantID, id, query string, args ...any) error {
	err := s.updateConnection(ctx, q, query, args...)
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if _, err := s.GetOAuthConnectionByID(ctx, q, tenantID, id); err != nil {
		return err
	}
	return fmt.Errorf("oauth connection: the refresh lease is no longer held: %w", ErrConflict)
}

// ExpireOAuthAccessToken marks the connection's access token expired at
// expiresAt (the resource server refused it), so the next use refreshes it.
func (s *Store) ExpireOAuthAccessToken(ctx context.Context, q DBTX, tenantID, id string, expiresAt time.Time) error {
	return s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET expires_at = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4`,
		micros(expiresAt), micros(s.now()), tenantID, id)
}

// SetOAuthConnectionStatus changes a connection's status. Any status other
// than active also drops its tokens, which are no longer usable, and its
// refresh lease, so that a refresh under way cannot store tokens again.
func (s *Store) SetOAuthConnectionStatus(ctx context.Context, q DBTX, tenantID, id string, status OAuthConnectionStatus) error {
	if status == OAuthConnectionActive {
		return s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4`,
			string(status), micros(s.now()), tenantID, id)
	}
	return s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET status = $1, updated_at = $2, access_token = '', refresh_token = '',
		refresh_lease_id = NULL, refresh_lease_until = NULL WHERE tenant_id = $3 AND id = $4`, string(status), micros(s.now()), tenantID, id)
}

// TouchOAuthConnection records a use of the connection's access token.
func (s *Store) TouchOAuthConnection(ctx context.Context, q DBTX, tenantID, id string) error {
	return s.updateConnection(ctx, q, `UPDATE mcpidp_oauth_connection SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3`,
		micros(s.now()), tenantID, id)
}

// DeleteOAuthConnection deletes the tenant's connection, or returns
// ErrNotFound.
func (s *Store) DeleteOAuthConnection(ctx context.Context, q DBTX, tenantID, id string) error {
	return s.updateConnection(ctx, q, `DELETE FROM mcpidp_oauth_connection WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func (s *Store) updateConnection(ctx context.Context, q DBTX, query string, args ...any) error {
	n, err := execCount(ctx, q, query, args...)
	if err != nil {
		return fmt.Errorf("error updating oauth connection: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("oauth connection: %w", ErrNotFound)
	}
	return nil
}
