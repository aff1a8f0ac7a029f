package mcpauth

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpidp/mcpidp/internal/store"
)

// LoginParams asks for a login link.
type LoginParams struct {
	Tenant string
	User   string
	// ServerURL is the MCP server's URL; it is canonicalized.
	ServerURL string
	// WWWAuthenticate is the WWW-Authenticate header of the server's 401 or
	// 403 answer, if there was one (empty when connecting ahead of time).
	WWWAuthenticate string
	// Scopes, when set, are exactly the scopes to request (Connections API:
	// connect or re-scope); they override the challenge and
	// scopes_supported.
	Scopes []string
}

// Login is a login link for one user and one MCP server.
type Login struct {
	ID string
	// AuthorizationURL is PublicURL/oauth/start/{ID}: the link to hand to
	// the user. It works as many times as needed until ExpiresAt or until a
	// login through it completes, whichever comes first.
	AuthorizationURL string
	ServerURL        string
	// Issuer is the authorization server the user will log in to.
	Issuer    string
	Scopes    []string
	ExpiresAt time.Time
}

// BeginLogin prepares a login link after an MCP server answered 401 (or
// 403 insufficient_scope), or ahead of time. It discovers the authorization
// server, refuses one without PKCE S256, picks or registers the client,
// decides the scopes and stores everything under a fresh unguessable id, so
// that any process can serve the link.
//
// Scopes: p.Scopes when given; else the challenge's scope; else the
// pre-registered client's scopes; else the resource's scopes_supported;
// else none. offline_access is added when the authorization server lists
// it. On a step-up (403 insufficient_scope) the scopes the connection
// already holds are kept.
func (e *Engine) BeginLogin(ctx context.Context, p LoginParams) (*Login, error) {
	if p.Tenant == "" || p.User == "" {
		return nil, errors.New("tenant and user are required")
	}
	serverURL, err := CanonicalServerURL(p.ServerURL)
	if err != nil {
		return nil, err
	}
	header := p.WWWAuthenticate
	if header == "" {
		// Connecting ahead of time: ask the server for its challenge the
		// way an MCP client's first request would.
		header = e.probeChallenge(ctx, serverURL)
	}
	ch := ParseChallenge(header)
	d, err := e.discover(ctx, serverURL, ch)
	if err != nil {
		return nil, err
	}
	reg, err := e.register(ctx, d.as)
	if err != nil {
		return nil, err
	}

	var scopes []string
	switch {
	case len(p.Scopes) > 0:
		scopes = p.Scopes
	case len(ch.Scopes) > 0:
		scopes = ch.Scopes
	case len(reg.scopes) > 0:
		scopes = reg.scopes
	case d.prm != nil:
		scopes = d.prm.ScopesSupported
	}
	if ch.InsufficientScope() && len(p.Scopes) == 0 {
		c, err := e.store.GetOAuthConnection(ctx, e.store.DB(), p.Tenant, p.User, serverURL)
		switch {
		case err == nil:
			scopes = append(strings.Fields(c.Scopes), scopes...)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	if len(scopes) > 0 && slices.Contains(d.as.ScopesSupported, "offline_access") {
		scopes = append(scopes, "offline_access")
	}
	scopes = uniqueScopes(scopes)

	now := e.now().UTC().Truncate(time.Microsecond)
	l := &store.OAuthLogin{
		ID:        store.NewToken(),
		TenantID:  p.Tenant,
		UserID:    p.User,
		ServerURL: serverURL,
		OAuthAuthority: store.OAuthAuthority{
			Resource:                d.resource,
			Issuer:                  d.as.Issuer,
			AuthorizationEndpoint:   d.as.AuthorizationEndpoint,
			TokenEndpoint:           d.as.TokenEndpoint,
			RevocationEndpoint:      d.as.RevocationEndpoint,
			IssParameterSupported:   d.as.AuthorizationResponseIssParameterSupported,
			ClientID:                reg.clientID,
			TokenEndpointAuthMethod: reg.authMethod,
		},
		Scopes:    strings.Join(scopes, " "),
		CreatedAt: now,
		ExpiresAt: now.Add(e.loginTTL),
	}
	if err := e.store.CreateOAuthLogin(ctx, e.store.DB(), l); err != nil {
		return nil, err
	}
	return &Login{
		ID:               l.ID,
		AuthorizationURL: e.publicURL + StartPathPrefix + l.ID,
		ServerURL:        serverURL,
		Issuer:           l.Issuer,
		Scopes:           scopes,
		ExpiresAt:        l.ExpiresAt,
	}, nil
}

// StartedLogin is where Start sends the browser.
type StartedLogin struct {
	// URL is the authorization server's URL, with a fresh state: redirect
	// the browser there.
	URL string
	// Cookie binds the state to the browser: set it on that redirect. The
	// callback refuses the state without it (ErrOtherBrowser).
	Cookie *http.Cookie
}

// Start serves GET /oauth/start/{loginID}: it makes a fresh single-use
// state and PKCE verifier, valid for StateTTL and bound to the browser by
// the returned cookie, and returns the authorization server URL to
// redirect the browser to. An unknown or expired link, or one through which
// a login already completed, gives ErrLoginLinkInvalid: nothing waits on it
// any more, and whoever holds it must not log in as the user again.
//
// A link made with a dynamically registered client that the authorization
// server no longer knows, or that was replaced since, switches to the
// current registration, registering again if needed (see currentClient).
func (e *Engine) Start(ctx context.Context, loginID string) (*StartedLogin, error) {
	l, err := e.store.GetOAuthLogin(ctx, e.store.DB(), loginID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrLoginLinkInvalid
	}
	if err != nil {
		return nil, err
	}
	now := e.now()
	if !now.Before(l.ExpiresAt) {
		return nil, ErrLoginLinkInvalid
	}
	if l.CompletedAt != nil {
		return nil, fmt.Errorf("%w: the login was already completed", ErrLoginLinkInvalid)
	}
	if err := e.currentClient(ctx, l); err != nil {
		return nil, err
	}
	state := store.NewToken()
	cookie, browserHash := e.newBrowserBinding(state)
	verifier := oauth2.GenerateVerifier()
	st := &store.OAuthState{StateHash: hashState(state), LoginID: l.ID, BrowserHash: browserHash, ExpiresAt: now.Add(e.stateTTL)}
	st.CodeVerifier, err = e.keyring.Seal([]byte(verifier), stateVerifierAD(st.StateHash, l.ID))
	if err != nil {
		return nil, fmt.Errorf("error sealing PKCE verifier: %w", err)
	}
	if err := e.store.CreateOAuthState(ctx, e.store.DB(), st); err != nil {
		return nil, err
	}
	cfg, err := e.oauthConfig(&l.OAuthAuthority, "", strings.Fields(l.Scopes))
	if err != nil {
		return nil, err
	}
	u := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", l.Resource))
	return &StartedLogin{URL: u, Cookie: cookie}, nil
}

// currentClient makes a login link use a client registration the
// authorization server still knows. A server that keeps its clients in
// memory forgets them when it restarts, and then refuses the old client on
// its own page, where mcpidp never hears of it; so a dynamic registration is
// checked here (clientForgotten), just before the browser is sent. A
// forgotten registration is dropped and made again, discovering the
// authorization server anew; a link whose registration was already replaced
// (by another login, or after a refresh was refused with invalid_client)
// follows the stored one.
func (e *Engine) currentClient(ctx context.Context, l *store.OAuthLogin) error {
	issuer := normalizeIssuer(l.Issuer)
	if _, ok := e.preRegistered[issuer]; ok || l.ClientID == e.ClientMetadataURL() {
		return nil
	}
	var reg *registration
	stored, err := e.store.GetOAuthClient(ctx, e.store.DB(), issuer, e.RedirectURI())
	switch {
	case err == nil && stored.ClientID == l.ClientID && !e.clientForgotten(ctx, &l.OAuthAuthority, stored):
		return nil
	case err == nil && stored.ClientID != l.ClientID:
		reg = &registration{clientID: stored.ClientID, authMethod: stored.TokenEndpointAuthMethod}
	case err == nil || errors.Is(err, store.ErrNotFound):
		d, err := e.discover(ctx, l.ServerURL, ParseChallenge(e.probeChallenge(ctx, l.ServerURL)))
		if err != nil {
			return err
		}
		if normalizeIssuer(d.as.Issuer) != issuer {
			return fmt.Errorf("%w: %s now uses authorization server %s, not %s", ErrLoginLinkInvalid, l.ServerURL, d.as.Issuer, l.Issuer)
		}
		if reg, err = e.register(ctx, d.as); err != nil {
			return err
		}
	default:
		return err
	}
	// The login id is not logged: until the login completes it is a
	// capability.
	e.logger.InfoContext(ctx, "mcpauth: login link switched to the current client registration",
		slog.String("server_url", l.ServerURL), slogIssuer(l.Issuer))
	if err := e.store.UpdateOAuthLoginClient(ctx, e.store.DB(), l.ID, reg.clientID, reg.authMethod); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: the login was already completed", ErrLoginLinkInvalid)
		}
		return err
	}
	l.ClientID, l.TokenEndpointAuthMethod = reg.clientID, reg.authMethod
	return nil
}

// clientCheckTimeout bounds clientForgotten's request.
const clientCheckTimeout = 10 * time.Second

// clientCheckInterval is how often, at most, this process asks one
// authorization server whether it still knows our client: login links are
// public, and each visit must not turn into requests to the server.
const clientCheckInterval = 5 * time.Minute

// clientForgotten asks the token endpoint whether it still knows a
// dynamically registered client, and drops the registration when it does
// not. The question is a refresh with a refresh token that cannot exist: a
// server authenticates the client first, so it answers invalid_client for a
// client it forgot and invalid_grant for one it knows. unauthorized_client
// (RFC 6749: the client may not use this grant) counts only when the server
// registered the client for refresh_token: then it can only mean the client
// is unknown, as the MCP Python SDK answers. No answer, any other, or no
// question because the server was asked less than clientCheckInterval ago,
// counts as known: the check must never stand in the way of a login.
func (e *Engine) clientForgotten(ctx context.Context, a *store.OAuthAuthority, stored *store.OAuthClient) bool {
	if !e.takeClientCheck(normalizeIssuer(a.Issuer)) {
		return false
	}
	secret, err := e.clientSecret(ctx, e.store.DB(), a)
	if err != nil {
		return false
	}
	cfg, err := e.oauthConfig(a, secret, nil)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, clientCheckTimeout)
	defer cancel()
	_, err = cfg.TokenSource(e.oauthContext(ctx, clientIDParam(a)), &oauth2.Token{RefreshToken: "mcpidp-client-check-" + store.NewToken()}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "unauthorized_client" && !slices.Contains(stored.GrantTypes, "refresh_token") {
		return false
	}
	return e.forgetRejectedClient(ctx, a, err)
}

// takeClientCheck reports whether clientForgotten may ask the issuer now,
// and if so records that it does (before asking, so that concurrent visits
// ask once).
func (e *Engine) takeClientCheck(issuer string) bool {
	now := e.now()
	e.clientChecksMu.Lock()
	defer e.clientChecksMu.Unlock()
	if last, ok := e.clientChecks[issuer]; ok && now.Sub(last) < clientCheckInterval && !now.Before(last) {
		return false
	}
	for iss, last := range e.clientChecks {
		// Old entries go, so the map holds only the issuers asked lately.
		if now.Sub(last) >= clientCheckInterval {
			delete(e.clientChecks, iss)
		}
	}
	e.clientChecks[issuer] = now
	return true
}

// CallbackResult tells whose login the callback completed.
type CallbackResult struct {
	Tenant       string
	User         string
	ServerURL    string
	ConnectionID string
	LoginID      string
	Issuer       string
	// Scopes are those granted (the token response's scope, else those
	// requested).
	Scopes []string
}

// Callback serves GET /oauth/callback with the query the authorization
// server redirected with and the browser's cookies. A browser without the
// cookie Start bound the state to gets ErrOtherBrowser, and the state stays
// usable by the browser that has it. Otherwise Callback consumes the state
// (ErrStateInvalid when missing, unknown, expired or replayed), checks iss
// (ErrIssuerMismatch), reports an authorization error (*AuthorizationError,
// matching ErrAccessDenied), exchanges the code with the PKCE verifier and
// resource (*ExchangeError, matching ErrExchangeFailed, logged at warn),
// and stores the tokens sealed as the user's active connection to the
// server. A login link completes once: a state from a
// link whose login already completed is ErrStateInvalid, even when it was
// made before, so that no second login through the same link replaces the
// connection.
func (e *Engine) Callback(ctx context.Context, query url.Values, cookies []*http.Cookie) (*CallbackResult, error) {
	state := query.Get("state")
	if state == "" {
		return nil, fmt.Errorf("%w: the callback carries no state", ErrStateInvalid)
	}
	stateHash := hashState(state)
	st, err := e.store.GetOAuthState(ctx, e.store.DB(), stateHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: unknown state", ErrStateInvalid)
	case err != nil:
		return nil, err
	case !fromBrowser(st.BrowserHash, state, cookies):
		// Checked before anything is used up: the browser that started
		// the login may still bring the same answer.
		return nil, ErrOtherBrowser
	case st.UsedAt != nil:
		return nil, fmt.Errorf("%w: this login response was already used", ErrStateInvalid)
	case !e.now().Before(st.ExpiresAt):
		return nil, fmt.Errorf("%w: the login took longer than %s; start again from the login link", ErrStateInvalid, e.stateTTL)
	}
	if err := e.store.UseOAuthState(ctx, e.store.DB(), stateHash); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: this login response was already used", ErrStateInvalid)
		}
		return nil, err
	}
	l, err := e.store.GetOAuthLogin(ctx, e.store.DB(), st.LoginID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: the login link is gone", ErrStateInvalid)
		}
		return nil, err
	}
	if l.CompletedAt != nil {
		return nil, errLoginCompleted
	}

	// RFC 9207: check the issuer before trusting anything else in the
	// response, error responses included.
	if query.Has("iss") {
		if iss := query.Get("iss"); normalizeIssuer(iss) != normalizeIssuer(l.Issuer) {
			return nil, fmt.Errorf("%w: got %q, want %q", ErrIssuerMismatch, iss, l.Issuer)
		}
	} else if l.IssParameterSupported {
		return nil, fmt.Errorf("%w: %s promises an iss parameter but sent none", ErrIssuerMismatch, l.Issuer)
	}
	if code := query.Get("error"); code != "" {
		return nil, &AuthorizationError{Code: code, Description: query.Get("error_description"), URI: query.Get("error_uri")}
	}
	code := query.Get("code")
	if code == "" {
		return nil, fmt.Errorf("%w: the callback carries no code", ErrExchangeFailed)
	}
	verifier, err := e.keyring.Open(st.CodeVerifier, stateVerifierAD(stateHash, l.ID))
	if err != nil {
		return nil, fmt.Errorf("error opening PKCE verifier: %w", err)
	}
	secret, err := e.clientSecret(ctx, e.store.DB(), &l.OAuthAuthority)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchangeFailed, err)
	}
	requested := strings.Fields(l.Scopes)
	cfg, err := e.oauthConfig(&l.OAuthAuthority, secret, requested)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchangeFailed, err)
	}
	tok, err := cfg.Exchange(e.oauthContext(ctx, clientIDParam(&l.OAuthAuthority)), code,
		oauth2.VerifierOption(string(verifier)), oauth2.SetAuthURLParam("resource", l.Resource))
	if err != nil {
		e.forgetRejectedClient(ctx, &l.OAuthAuthority, err)
		xerr := newExchangeError(err)
		attrs := []any{slog.String("server_url", l.ServerURL), slogIssuer(l.Issuer), slog.Int("status", xerr.Status),
			slog.String("error", xerr.Code), slog.String("error_description", xerr.Description)}
		if xerr.Code == "" {
			// No OAuth error response: say what happened instead (the
			// body is never logged, it could echo a secret).
			attrs[3] = slog.String("error", describeTokenError(err))
		}
		e.logger.WarnContext(ctx, "mcpauth: authorization code exchange failed", attrs...)
		return nil, xerr
	}
	if err := checkToken(tok); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchangeFailed, err)
	}
	scopes := grantedScopes(tok, requested)

	c := &store.OAuthConnection{
		TenantID:       l.TenantID,
		UserID:         l.UserID,
		ServerURL:      l.ServerURL,
		OAuthAuthority: l.OAuthAuthority,
		Scopes:         strings.Join(scopes, " "),
		Status:         store.OAuthConnectionActive,
		TokenType:      tok.TokenType,
		ExpiresAt:      e.tokenExpiry(tok),
	}
	if err := e.sealTokens(c, tok.AccessToken, tok.RefreshToken); err != nil {
		return nil, err
	}
	res := &CallbackResult{
		Tenant:    l.TenantID,
		User:      l.UserID,
		ServerURL: l.ServerURL,
		LoginID:   l.ID,
		Issuer:    l.Issuer,
		Scopes:    scopes,
	}
	// The code is spent: store its tokens even if the browser goes away.
	storeCtx := context.WithoutCancel(ctx)
	err = e.store.InTx(storeCtx, func(tx *sql.Tx) error {
		// Completing the login first makes it the guard: of two callbacks
		// through the same link, only one stores its tokens.
		if err := e.store.MarkOAuthLoginCompleted(storeCtx, tx, l.ID); err != nil {
			return err
		}
		if err := e.store.UpsertOAuthConnection(storeCtx, tx, c); err != nil {
			return err
		}
		res.ConnectionID = c.ID
		if e.loginCompleted != nil {
			return e.loginCompleted(storeCtx, tx, res)
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errLoginCompleted
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: the login link is gone", ErrStateInvalid)
	case err != nil:
		return nil, err
	}
	e.bumpUserGen(res.Tenant, res.User)
	return res, nil
}

// forgetRejectedClient drops a dynamic registration the authorization
// server no longer accepts (it answered clientRejection: it forgot its
// clients, say on a restart with an in-memory store), so that the next
// login registers again. It reports whether err was such a rejection,
// whatever the client.
func (e *Engine) forgetRejectedClient(ctx context.Context, a *store.OAuthAuthority, err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || !clientRejection(re.ErrorCode) {
		return false
	}
	if _, ok := e.preRegistered[normalizeIssuer(a.Issuer)]; ok || a.ClientID == e.ClientMetadataURL() {
		return true
	}
	e.logger.WarnContext(ctx, "mcpauth: the authorization server no longer accepts its registered client; the next login registers again",
		slogIssuer(a.Issuer), slog.String("client_id", a.ClientID), slog.String("error_description", re.ErrorDescription))
	if err := e.store.DeleteOAuthClient(ctx, e.store.DB(), normalizeIssuer(a.Issuer), e.RedirectURI(), a.ClientID); err != nil {
		e.logger.WarnContext(ctx, "mcpauth: error forgetting rejected client registration", slogIssuer(a.Issuer), slogError(err))
	}
	return true
}

// clientRejection reports whether a token endpoint error code says the
// client itself was refused: invalid_client (RFC 6749), or
// unauthorized_client, which the MCP Python SDK's authorization server (and
// those built on it) answers for a client it does not know. (The login
// link's check asks with a grant the client may not be registered for, and
// so takes unauthorized_client only when it was: see clientForgotten.)
func clientRejection(code string) bool {
	return code == "invalid_client" || code == "unauthorized_client"
}

// errLoginCompleted refuses a callback through a link whose login already
// completed.
var errLoginCompleted = fmt.Errorf("%w: a login through this link was already completed", ErrStateInvalid)

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// uniqueScopes drops empty and repeated scopes, keeping the first order.
func uniqueScopes(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
