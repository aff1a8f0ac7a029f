package mcpauth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/store"
)

// ErrNotFound is store.ErrNotFound, returned for a connection id that does
// not exist or belongs to another tenant.
var ErrNotFound = store.ErrNotFound

// Connection statuses as the Connections API shows them.
const (
	StatusActive        = "active"
	StatusExpired       = "expired"
	StatusRevoked       = "revoked"
	StatusRefreshFailed = "refresh_failed"
)

// Connection is a user's login to one MCP server, as the
// Connections API lists it.
type Connection struct {
	ID        string   `json:"id"`
	ServerURL string   `json:"server_url"`
	Scopes    []string `json:"scopes"`
	// Status is active, expired (the access token expired and there is no
	// refresh token), revoked or refresh_failed.
	Status    string     `json:"status"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
	// LastUsedAt is updated at most once a minute.
	LastUsedAt *time.Time `json:"last_used_at"`
	// Issuer is the authorization server that issued the tokens.
	Issuer string `json:"-"`
}

// touchInterval limits last_used_at writes.
const touchInterval = time.Minute

// AccessToken returns a valid access token of the tenant's user for the MCP
// server, refreshing it first when it expires within RefreshLeeway. Only one
// refresh per connection runs at a time across all processes: the refresher
// holds the connection's refresh lease (a column of its row, taken in a
// short transaction; no transaction is open during the token request), and
// whoever waited for the lease re-reads the row and uses the new token. The
// rotated refresh token is stored in the same statement as the access
// token.
//
// When there is no usable token it returns a *NeedsLoginError (matching
// ErrLoginRequired); a refresh refused with invalid_grant marks the
// connection refresh_failed first.
func (e *Engine) AccessToken(ctx context.Context, tenant, user, serverURL string) (string, error) {
	token, _, err := e.accessToken(ctx, tenant, user, serverURL, 0)
	return token, err
}

// accessToken is AccessToken that also says until when the token may be
// used without asking again: at most maxReuse from now, and never past the
// point where AccessToken would refresh it. A token that was just refreshed
// gets now (not to be kept): the next call reads it back with its expiry.
func (e *Engine) accessToken(ctx context.Context, tenant, user, serverURL string, maxReuse time.Duration) (string, time.Time, error) {
	serverURL, err := CanonicalServerURL(serverURL)
	if err != nil {
		return "", time.Time{}, err
	}
	c, err := e.store.GetOAuthConnection(ctx, e.store.Prepared(), tenant, user, serverURL)
	if errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, &NeedsLoginError{ServerURL: serverURL, Reason: "no connection"}
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if c.Status != store.OAuthConnectionActive {
		return "", time.Time{}, &NeedsLoginError{ServerURL: serverURL, Reason: string(c.Status)}
	}
	now := e.now()
	if usable(c, now, RefreshLeeway) {
		token, err := e.openToken(c, "access-token", c.AccessToken)
		if err != nil {
			return "", time.Time{}, err
		}
		if c.LastUsedAt == nil || now.Sub(*c.LastUsedAt) > touchInterval {
			if err := e.store.TouchOAuthConnection(ctx, e.store.DB(), tenant, c.ID); err != nil {
				e.logger.WarnContext(ctx, "mcpauth: error recording connection use", slogError(err))
			}
		}
		reuseUntil := now.Add(maxReuse)
		if until, ok := goodUntil(c, RefreshLeeway); ok && until.Before(reuseUntil) {
			reuseUntil = until
		}
		return token, reuseUntil, nil
	}
	if c.RefreshToken == "" {
		return "", time.Time{}, &NeedsLoginError{ServerURL: serverURL, Reason: StatusExpired}
	}
	token, _, err := e.refresh(ctx, tenant, c.ID, RefreshLeeway)
	return token, now, err
}

// TokenRejected tells the engine that the MCP server answered 401 to a
// request that carried accessToken. If that is still the stored token, it
// is marked expired so that the next AccessToken refreshes it (a refresh
// refused with invalid_grant then marks the connection refresh_failed). It
// returns true when a retry can work (there is a refresh token, or another
// request already replaced the token): the caller may then retry the
// request once, and otherwise start a login.
func (e *Engine) TokenRejected(ctx context.Context, tenant, user, serverURL, accessToken string) (bool, error) {
	serverURL, err := CanonicalServerURL(serverURL)
	if err != nil {
		return false, err
	}
	c, err := e.store.GetOAuthConnection(ctx, e.store.DB(), tenant, user, serverURL)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	retry := false
	err = e.store.InTx(ctx, func(tx *sql.Tx) error {
		c, err := e.store.GetOAuthConnectionForUpdate(ctx, tx, tenant, c.ID)
		if err != nil {
			return err
		}
		if c.Status != store.OAuthConnectionActive || c.AccessToken == "" {
			return nil
		}
		current, err := e.openToken(c, "access-token", c.AccessToken)
		if err != nil {
			return err
		}
		if current != accessToken {
			retry = true
			return nil
		}
		// Without a refresh token the connection is now expired: the user
		// must log in again.
		retry = c.RefreshToken != ""
		return e.store.ExpireOAuthAccessToken(ctx, tx, tenant, c.ID, e.now())
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return retry, err
}

// TokenUsableTx locks the tenant's user's connection to serverURL in tx and
// reports whether it is active with an access token good for RefreshLeeway
// more. A task pausing because a refresh failed locks the row before it
// records its wait: a refresh storing a new token meanwhile has then either
// committed already (its token is seen here) or waits for the pause to
// commit (and then finds the wait).
func (e *Engine) TokenUsableTx(ctx context.Context, tx *sql.Tx, tenant, user, serverURL string) (bool, error) {
	serverURL, err := CanonicalServerURL(serverURL)
	if err != nil {
		return false, err
	}
	c, err := e.store.GetOAuthConnection(ctx, tx, tenant, user, serverURL)
	if err == nil {
		c, err = e.store.GetOAuthConnectionForUpdate(ctx, tx, tenant, c.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.Status == store.OAuthConnectionActive && usable(c, e.now(), RefreshLeeway), nil
}

// usable reports whether the connection's access token is good for at
// least leeway more.
func usable(c *store.OAuthConnection, now time.Time, leeway time.Duration) bool {
	if c.AccessToken == "" {
		return false
	}
	until, expires := goodUntil(c, leeway)
	return !expires || until.After(now)
}

// goodUntil is when the connection's access token stops being usable with
// leeway, or false when it does not expire.
func goodUntil(c *store.OAuthConnection, leeway time.Duration) (time.Time, bool) {
	if c.ExpiresAt == nil {
		return time.Time{}, false
	}
	// A token that lives shorter than the leeway would be refreshed on
	// every call: refresh it in the second half of its life instead.
	if life := c.ExpiresAt.Sub(c.UpdatedAt); life > 0 && life/2 < leeway {
		leeway = life / 2
	}
	return c.ExpiresAt.Add(-leeway), true
}

// RefreshExpiring refreshes every active connection whose access token
// expires within the given time, for a periodic job, and returns how many
// it refreshed. Connections refused with invalid_grant become
// refresh_failed and are not errors; other failures are joined in err.
func (e *Engine) RefreshExpiring(ctx context.Context, within time.Duration) (int, error) {
	conns, err := e.store.ListOAuthConnectionsExpiring(ctx, e.store.DB(), e.now().Add(within), 1000)
	if err != nil {
		return 0, err
	}
	var (
		n    int
		errs []error
	)
	for _, c := range conns {
		_, refreshed, err := e.refresh(ctx, c.TenantID, c.ID, within)
		switch {
		case errors.Is(err, ErrLoginRequired), errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("connection %s: %w", c.ID, err))
		case refreshed:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Transport returns a RoundTripper that sends each request through base
// with the user's bearer token for serverURL (from AccessToken). When there
// is no usable token it sends the request without one, so that the server
// answers 401 with its challenge. A failure other than "login required"
// (a database error) fails the request.
func (e *Engine) Transport(base http.RoundTripper, tenant, user, serverURL string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, authorize: e.Authorizer(tenant, user), serverURL: serverURL}
}

type transport struct {
	base      http.RoundTripper
	authorize func(ctx context.Context, serverURL string, req *http.Request) error
	serverURL string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if err := t.authorize(req.Context(), t.serverURL, req); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(req)
}

// Authorizer returns a function that sets "Authorization: Bearer …" on a
// request to serverURL for the tenant's user, or leaves the request alone
// when the user has no usable token. Its signature is
// mcpclient.AuthorizeFunc's.
func (e *Engine) Authorizer(tenant, user string) func(ctx context.Context, serverURL string, req *http.Request) error {
	return func(ctx context.Context, serverURL string, req *http.Request) error {
		token, err := e.AccessToken(ctx, tenant, user, serverURL)
		if errors.Is(err, ErrLoginRequired) {
			req.Header.Del("Authorization")
			return nil
		}
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// Unauthorized returns the function that decides, after an MCP server
// answered 401 to a request for the tenant's user, whether the request is
// worth sending again; its signature is mcpclient.UnauthorizedFunc's.
// authorization is the header the refused request carried. Without a token
// it retries when a login stored one since. With one, the token is reported
// (TokenRejected) and refreshed at once under the connection's refresh
// lease, so that a refresh that fails is told apart from a server that
// refuses a fresh token: the first returns the refresh's error (a later
// refresh may answer the challenge), the second needs a login.
func (e *Engine) Unauthorized(tenant, user string) func(ctx context.Context, serverURL, authorization string) (bool, error) {
	return func(ctx context.Context, serverURL, authorization string) (bool, error) {
		token, _ := bearer.Token(authorization)
		if token != "" {
			retry, err := e.TokenRejected(ctx, tenant, user, serverURL, token)
			if err != nil || !retry {
				return false, err
			}
		}
		_, err := e.AccessToken(ctx, tenant, user, serverURL)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, ErrLoginRequired):
			return false, nil
		case token == "":
			// A failure to read a token that was not there: nothing to renew.
			return false, nil
		}
		return false, err
	}
}

// ListConnections returns the tenant's user's connections.
func (e *Engine) ListConnections(ctx context.Context, tenant, user string) ([]Connection, error) {
	rows, err := e.store.ListOAuthConnections(ctx, e.store.DB(), tenant, user)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, 0, len(rows))
	for _, c := range rows {
		out = append(out, e.connection(c))
	}
	return out, nil
}

// GetConnection returns one of the tenant's connections, or ErrNotFound.
func (e *Engine) GetConnection(ctx context.Context, tenant, id string) (*Connection, error) {
	c, err := e.store.GetOAuthConnectionByID(ctx, e.store.DB(), tenant, id)
	if err != nil {
		return nil, err
	}
	conn := e.connection(c)
	return &conn, nil
}

func (e *Engine) connection(c *store.OAuthConnection) Connection {
	status := string(c.Status)
	if c.Status == store.OAuthConnectionActive && c.RefreshToken == "" && c.ExpiresAt != nil && !e.now().Before(*c.ExpiresAt) {
		status = StatusExpired
	}
	scopes := strings.Fields(c.Scopes)
	if scopes == nil {
		scopes = []string{}
	}
	return Connection{
		ID:         c.ID,
		ServerURL:  c.ServerURL,
		Scopes:     scopes,
		Status:     status,
		ExpiresAt:  c.ExpiresAt,
		CreatedAt:  c.CreatedAt,
		LastUsedAt: c.LastUsedAt,
		Issuer:     c.Issuer,
	}
}

// Revoke disconnects one of the tenant's connections: when the
// authorization server offers RFC 7009 revocation, the refresh token and
// then the access token are revoked there (a failure is logged, not
// returned: the user asked to be disconnected), then the connection and its
// tokens are deleted. Another tenant's id is ErrNotFound.
func (e *Engine) Revoke(ctx context.Context, tenant, connectionID string) error {
	c, err := e.store.GetOAuthConnectionByID(ctx, e.store.DB(), tenant, connectionID)
	if err != nil {
		return err
	}
	if c.RevocationEndpoint != "" {
		if err := e.revokeAtServer(ctx, c); err != nil {
			e.logger.WarnContext(ctx, "mcpauth: error revoking tokens at the authorization server",
				slog.String("connection_id", c.ID), slogIssuer(c.Issuer), slogError(err))
		}
	}
	err = e.store.DeleteOAuthConnection(ctx, e.store.DB(), tenant, connectionID)
	e.bumpUserGen(tenant, c.UserID)
	return err
}

func (e *Engine) revokeAtServer(ctx context.Context, c *store.OAuthConnection) error {
	secret, err := e.clientSecret(ctx, e.store.DB(), &c.OAuthAuthority)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range []struct{ hint, sealed string }{{"refresh_token", c.RefreshToken}, {"access_token", c.AccessToken}} {
		if t.sealed == "" {
			continue
		}
		kind := strings.ReplaceAll(t.hint, "_", "-")
		token, err := e.openToken(c, kind, t.sealed)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.postRevocation(ctx, &c.OAuthAuthority, secret, token, t.hint); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) postRevocation(ctx context.Context, a *store.OAuthAuthority, secret, token, hint string) error {
	// client_id goes in the body with every method: see clientIDParam.
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {a.ClientID}}
	if a.TokenEndpointAuthMethod == AuthMethodClientSecretPost {
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("invalid revocation endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a.TokenEndpointAuthMethod == AuthMethodClientSecretBasic {
		req.SetBasicAuth(url.QueryEscape(a.ClientID), url.QueryEscape(secret))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("error revoking %s: %w", hint, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoking %s: authorization server answered HTTP %d", hint, resp.StatusCode)
	}
	return nil
}

// Cleanup deletes expired states and login links, for a periodic job.
// Login links are kept one StateTTL past their expiry so a flow started
// just before it can still finish.
func (e *Engine) Cleanup(ctx context.Context) (int64, error) {
	now := e.now()
	return e.store.DeleteExpiredOAuth(ctx, e.store.DB(), now, now.Add(-e.stateTTL))
}

// sealTokens seals the tokens into c, bound to its (tenant, user, server).
// An empty refresh token stays empty.
func (e *Engine) sealTokens(c *store.OAuthConnection, access, refresh string) error {
	var err error
	c.AccessToken, err = e.keyring.Seal([]byte(access), tokenAD("access-token", c.TenantID, c.UserID, c.ServerURL))
	if err != nil {
		return fmt.Errorf("error sealing access token: %w", err)
	}
	c.RefreshToken = ""
	if refresh != "" {
		c.RefreshToken, err = e.keyring.Seal([]byte(refresh), tokenAD("refresh-token", c.TenantID, c.UserID, c.ServerURL))
		if err != nil {
			return fmt.Errorf("error sealing refresh token: %w", err)
		}
	}
	return nil
}

func (e *Engine) openToken(c *store.OAuthConnection, kind, sealed string) (string, error) {
	b, err := e.keyring.Open(sealed, tokenAD(kind, c.TenantID, c.UserID, c.ServerURL))
	if err != nil {
		return "", fmt.Errorf("error opening %s of connection %s: %w", kind, c.ID, err)
	}
	return string(b), nil
}

// oauthContext gives x/oauth2 our HTTP client. extra form parameters are
// added to token requests: x/oauth2 has no option for them on refresh, and
// RFC 8707 wants resource there too.
func (e *Engine) oauthContext(ctx context.Context, extra url.Values) context.Context {
	client := *e.client
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if len(extra) > 0 {
		base = &formParamTransport{base: base, extra: extra}
	}
	client.Transport = &limitTransport{base: base, limit: maxTokenResponseBytes, what: "token response"}
	return context.WithValue(ctx, oauth2.HTTPClient, &client)
}

// maxTokenResponseBytes bounds a token endpoint's answer. x/oauth2 reads at most 1 MiB of it and
// silently drops the rest, which then fails to parse for no visible reason: below that bound the
// body itself reports why.
const maxTokenResponseBytes = 512 << 10

// limitTransport makes response bodies fail once they exceed limit bytes.
type limitTransport struct {
	base  http.RoundTripper
	limit int64
	what  string
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.limit, err: fmt.Errorf("%s is larger than %d bytes", t.what, t.limit)}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, b.err
	}
	return n, err
}

// clientIDParam is the client_id to add to the body of a token request
// authenticated with HTTP Basic, where x/oauth2 leaves it out. The MCP
// Python SDK's authorization server (and FastMCP's, built on it) refuses a
// token request without client_id in the body whatever the authentication,
// and RFC 6749 lets a client identify itself there (§3.2.1): client_id is
// not a credential, so this is still one authentication method. With the
// other methods x/oauth2 already sends it.
func clientIDParam(a *store.OAuthAuthority) url.Values {
	if a.TokenEndpointAuthMethod != AuthMethodClientSecretBasic {
		return nil
	}
	return url.Values{"client_id": {a.ClientID}}
}

// formParamTransport adds parameters to form-encoded POST bodies.
type formParamTransport struct {
	base  http.RoundTripper
	extra url.Values
}

func (t *formParamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range t.extra {
		if !form.Has(k) {
			form[k] = vs
		}
	}
	encoded := form.Encode()
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(strings.NewReader(encoded))
	req.ContentLength = int64(len(encoded))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(encoded)), nil }
	return t.base.RoundTrip(req)
}

// checkToken refuses token responses we cannot use.
func checkToken(tok *oauth2.Token) error {
	if tok.AccessToken == "" {
		return errors.New("token response has no access_token")
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer") {
		return fmt.Errorf("unsupported token_type %q", tok.TokenType)
	}
	return nil
}

// grantedScopes is the token response's scope, or what was requested when
// the server did not say (RFC 6749 §5.1).
func grantedScopes(tok *oauth2.Token, requested []string) []string {
	if s, ok := tok.Extra("scope").(string); ok && strings.TrimSpace(s) != "" {
		return strings.Fields(s)
	}
	return requested
}

// tokenExpiry reads expires_in against the engine's clock (x/oauth2's
// Expiry uses the wall clock, which tests cannot move).
func (e *Engine) tokenExpiry(tok *oauth2.Token) *time.Time {
	var t time.Time
	switch {
	case tok.ExpiresIn > 0:
		t = e.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		t = tok.Expiry
	default:
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

// describeTokenError renders a token endpoint failure without echoing
// anything secret: RFC 6749 error fields only, never the raw body.
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("token endpoint answered HTTP %d", re.Response.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		return msg
	}
	return err.Error()
}

func slogIssuer(issuer string) slog.Attr { return slog.String("issuer", issuer) }

func slogError(err error) slog.Attr { return slog.String("error", err.Error()) }
