// Package mcpauth is mcpidp's OAuth engine for MCP servers, per end user:
// discovery (RFC 9728 protected-resource metadata, RFC 8414 / OpenID
// discovery, the 2025-03-26 fallbacks), client registration (pre-registered,
// Client ID Metadata Document, RFC 7591 dynamic registration, registering
// again when an authorization server forgets its clients), login links with
// PKCE S256 and single-use state bound by a cookie to the browser that opened
// the link, the code exchange, tokens sealed at
// rest, refresh ahead of expiry serialized across processes by a lease on
// the connection's row (no transaction is held during a token request), and
// RFC 7009 revocation.
//
// Tokens belong to (tenant, user, canonical server URL) and are never sent
// anywhere else. Everything a flow needs lives in the database, so one
// process can hand out a login link, a second can redirect the browser and a
// third can take the callback.
package mcpauth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Defaults for Config.
const (
	DefaultLoginTTL = 24 * time.Hour
	DefaultStateTTL = 15 * time.Minute
	// RefreshLeeway is how long before expiry an access token is refreshed
	// instead of used.
	RefreshLeeway = 60 * time.Second
)

// Paths under Config.PublicURL that the HTTP layer must serve.
const (
	CallbackPath       = "/oauth/callback"
	StartPathPrefix    = "/oauth/start/"
	ClientMetadataPath = "/oauth/client-metadata.json"
)

// Config configures an Engine.
type Config struct {
	// Store holds logins, states, client registrations and connections.
	// Required.
	Store *store.Store
	// Keyring seals access tokens, refresh tokens, client secrets and PKCE
	// verifiers; the associated data binds each to its row. Required.
	Keyring *secretbox.Keyring
	// HTTPClient makes every metadata, registration, token and revocation
	// request. In production it is the netguard client, because every URL
	// involved comes from an MCP server someone named. It must not follow
	// redirects to places a netguard client would refuse. Required.
	HTTPClient *http.Client
	// PublicURL is where this deployment is reachable, such as
	// https://mcpidp.example.com. The redirect URI is PublicURL +
	// CallbackPath, login links are PublicURL + StartPathPrefix + id, and the
	// CIMD client_id is PublicURL + ClientMetadataPath unless
	// ClientMetadataURL says otherwise. Required.
	PublicURL string
	// ClientMetadataURL, when set, is the CIMD client_id: where this
	// deployment's Client ID Metadata Document is published, for a
	// document hosted somewhere other than PublicURL + ClientMetadataPath.
	// It must be https, and the document there must be the one
	// ClientMetadataDocument returns.
	ClientMetadataURL string
	// ClientName is shown to users by authorization servers. Defaults to
	// "mcpidp".
	ClientName string
	// PreRegistered are clients registered by hand with authorization
	// servers; they win over CIMD and dynamic registration for their issuer.
	PreRegistered []PreRegisteredClient
	// LoginTTL is how long a login link works. Defaults to DefaultLoginTTL.
	LoginTTL time.Duration
	// StateTTL is how long one visit of a login link may take to come back
	// to the callback. Defaults to DefaultStateTTL.
	StateTTL time.Duration
	// Now returns the current time. Defaults to the store's clock.
	Now func() time.Time
	// Logger receives warnings (a failed revocation, a transient refresh
	// failure). Tokens, codes, verifiers and secrets are never logged.
	// Defaults to discarding.
	Logger *slog.Logger
	// RefreshFailedTxFunc, if set, is called when a refresh was refused
	// with invalid_grant and the connection was marked refresh_failed, in
	// the same transaction (for the connection.refresh_failed webhook, so
	// it is queued if and only if the status change commits). An error
	// rolls the change back.
	RefreshFailedTxFunc func(ctx context.Context, tx *sql.Tx, tenant, user string, c Connection) error
	// LoginCompletedTxFunc, if set, is called in the transaction that stores
	// a completed login's tokens (to resume the tasks waiting for it in that
	// same transaction). An error rolls the login back.
	LoginCompletedTxFunc func(ctx context.Context, tx *sql.Tx, res *CallbackResult) error
	// TokenRefreshedTxFunc, if set, is called in the transaction that stores
	// a refreshed access token, when the token is a new one (to resume the
	// tasks that paused because an earlier refresh of this connection
	// failed). serverURL is canonical. When it fails, the token is stored
	// without it (a rotated refresh token must not be lost) and the error
	// is logged.
	TokenRefreshedTxFunc func(ctx context.Context, tx *sql.Tx, tenant, user, serverURL string) error
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("store is required")
	case c.Keyring == nil:
		return errors.New("keyring is required")
	case c.HTTPClient == nil:
		return errors.New("HTTP client is required")
	case c.PublicURL == "":
		return errors.New("public URL is required")
	case c.LoginTTL < 0:
		return fmt.Errorf("invalid login TTL: %s", c.LoginTTL)
	case c.StateTTL < 0:
		return fmt.Errorf("invalid state TTL: %s", c.StateTTL)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid public URL %q: want http(s)://host[/path]", c.PublicURL)
	}
	if c.ClientMetadataURL != "" {
		u, err := url.Parse(c.ClientMetadataURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("invalid client metadata URL %q: want https://host/path without a fragment", c.ClientMetadataURL)
		}
	}
	seen := map[string]bool{}
	for _, p := range c.PreRegistered {
		if err := p.validate(); err != nil {
			return err
		}
		if seen[p.Issuer] {
			return fmt.Errorf("invalid pre-registered clients: issuer %s appears twice", p.Issuer)
		}
		seen[p.Issuer] = true
	}
	return nil
}

// Engine runs OAuth for MCP servers on behalf of each tenant's users. It is
// safe for concurrent use, and any number of processes may share one
// database.
type Engine struct {
	store          *store.Store
	keyring        *secretbox.Keyring
	client         *http.Client
	publicURL      string
	clientMDURL    string
	clientName     string
	preRegistered  map[string]PreRegisteredClient
	loginTTL       time.Duration
	stateTTL       time.Duration
	now            func() time.Time
	logger         *slog.Logger
	refreshFailed  func(ctx context.Context, tx *sql.Tx, tenant, user string, c Connection) error
	loginCompleted func(ctx context.Context, tx *sql.Tx, res *CallbackResult) error
	tokenRefreshed func(ctx context.Context, tx *sql.Tx, tenant, user, serverURL string) error
	refreshWaits   refreshWaits
	// clientChecks is when clientForgotten last asked each issuer
	// (normalized) whether it still knows our client.
	clientChecksMu sync.Mutex
	clientChecks   map[string]time.Time
	// callbackPath and secureCookies describe the login cookies: sent to
	// the callback only, and only over https when the public URL is.
	callbackPath  string
	secureCookies bool
	// userGens counts, per tenant's user, the logins completed and the
	// connections revoked in this process, so that a run's memory of
	// the user's tokens (RunAuth) is dropped at once when they change.
	userGensMu sync.Mutex
	userGens   map[string]uint64
}

func userGenKey(tenant, user string) string { return tenant + "\x00" + user }

// userGen is the user's generation (see Engine.userGens).
func (e *Engine) userGen(tenant, user string) uint64 {
	e.userGensMu.Lock()
	defer e.userGensMu.Unlock()
	return e.userGens[userGenKey(tenant, user)]
}

// bumpUserGen marks the user's tokens as changed: runs read them again.
func (e *Engine) bumpUserGen(tenant, user string) {
	e.userGensMu.Lock()
	defer e.userGensMu.Unlock()
	if e.userGens == nil {
		e.userGens = map[string]uint64{}
	}
	e.userGens[userGenKey(tenant, user)]++
}

// New returns an Engine for cfg.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mcpauth: %w", err)
	}
	e := &Engine{
		store:         cfg.Store,
		keyring:       cfg.Keyring,
		client:        cfg.HTTPClient,
		publicURL:     strings.TrimSuffix(cfg.PublicURL, "/"),
		clientMDURL:   cfg.ClientMetadataURL,
		clientName:    cfg.ClientName,
		preRegistered: map[string]PreRegisteredClient{},
		clientChecks:  map[string]time.Time{},
		loginTTL:      cfg.LoginTTL,
		stateTTL:      cfg.StateTTL,
		now:           cfg.Now,
		logger:        cfg.Logger,
		refreshFailed: cfg.RefreshFailedTxFunc, loginCompleted: cfg.LoginCompletedTxFunc,
		tokenRefreshed: cfg.TokenRefreshedTxFunc,
	}
	for _, p := range cfg.PreRegistered {
		e.preRegistered[normalizeIssuer(p.Issuer)] = p
	}
	pu, _ := url.Parse(e.publicURL) // validated above
	e.callbackPath = pu.Path + CallbackPath
	e.secureCookies = pu.Scheme == "https"
	if e.clientMDURL == "" {
		e.clientMDURL = e.publicURL + ClientMetadataPath
	}
	if e.clientName == "" {
		e.clientName = "mcpidp"
	}
	if e.loginTTL == 0 {
		e.loginTTL = DefaultLoginTTL
	}
	if e.stateTTL == 0 {
		e.stateTTL = DefaultStateTTL
	}
	if e.now == nil {
		e.now = cfg.Store.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// RedirectURI is the OAuth redirect_uri of this deployment.
func (e *Engine) RedirectURI() string { return e.publicURL + CallbackPath }

// ClientMetadataURL is the client_id used with authorization servers that
// support Client ID Metadata Documents.
func (e *Engine) ClientMetadataURL() string { return e.clientMDURL }

// cimdUsable reports whether this deployment can be identified by its CIMD
// URL: the draft requires an https client_id.
func (e *Engine) cimdUsable() bool { return strings.HasPrefix(e.clientMDURL, "https://") }

// Sentinel errors. The HTTP layer maps them (with errors.Is) to pages and
// statuses.
var (
	// ErrLoginRequired means there is no usable token: the user must log in
	// (again). AccessToken returns a *NeedsLoginError that matches it.
	ErrLoginRequired = errors.New("login required")
	// ErrLoginLinkInvalid means a /oauth/start link is unknown, expired or
	// used up (a login through it already completed).
	ErrLoginLinkInvalid = errors.New("login link is unknown or has expired")
	// ErrStateInvalid means the callback's state is missing, unknown,
	// expired or already used, or that a login through its link already
	// completed.
	ErrStateInvalid = errors.New("authorization state is invalid")
	// ErrAccessDenied means the authorization server answered the callback
	// with an error (access_denied or any other); see *AuthorizationError.
	ErrAccessDenied = errors.New("authorization was not granted")
	// ErrIssuerMismatch means the callback's iss does not name the
	// authorization server the flow was started with (RFC 9207), or is
	// missing although the server promised it.
	ErrIssuerMismatch = errors.New("authorization response came from the wrong issuer")
	// ErrExchangeFailed means the authorization code could not be exchanged
	// for a token.
	ErrExchangeFailed = errors.New("authorization code exchange failed")
	// ErrDiscovery means the MCP server's authorization server could not be
	// found or used (no metadata, no S256 PKCE, mismatched resource, no way
	// to register a client).
	ErrDiscovery = errors.New("authorization server discovery failed")
)

// NeedsLoginError is returned by AccessToken when the user has no usable
// token for the server. It matches ErrLoginRequired.
type NeedsLoginError struct {
	ServerURL string
	// Reason says why: "no connection", "refresh_failed", "revoked",
	// "expired".
	Reason string
}

func (e *NeedsLoginError) Error() string {
	return fmt.Sprintf("login required for MCP server %s: %s", e.ServerURL, e.Reason)
}

// Is makes errors.Is(err, ErrLoginRequired) true.
func (e *NeedsLoginError) Is(target error) bool { return target == ErrLoginRequired }

// AuthorizationError is an error response from the authorization server at
// the callback (RFC 6749 §4.1.2.1). It matches ErrAccessDenied whatever the
// code, since for the user it always means no access was granted.
type AuthorizationError struct {
	Code        string
	Description string
	URI         string
}

func (e *AuthorizationError) Error() string {
	msg := "authorization server returned " + e.Code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is makes errors.Is(err, ErrAccessDenied) true.
func (e *AuthorizationError) Is(target error) bool { return target == ErrAccessDenied }

// ExchangeError is a failed authorization code exchange: the token
// endpoint's error response (RFC 6749 §5.2), or why there was none. It
// matches ErrExchangeFailed. Code and Description come from the
// authorization server and are safe to show; they never hold a secret of
// ours.
type ExchangeError struct {
	// Status is the token endpoint's HTTP status, 0 when it did not answer.
	Status int
	// Code and Description are its error and error_description.
	Code        string
	Description string
	// Err is the underlying failure.
	Err error
}

func newExchangeError(err error) *ExchangeError {
	xerr := &ExchangeError{Err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		xerr.Code, xerr.Description = re.ErrorCode, re.ErrorDescription
		if re.Response != nil {
			xerr.Status = re.Response.StatusCode
		}
	}
	return xerr
}

func (e *ExchangeError) Error() string {
	if e.Err != nil {
		return ErrExchangeFailed.Error() + ": " + describeTokenError(e.Err)
	}
	msg := fmt.Sprintf("%s: token endpoint answered HTTP %d %s", ErrExchangeFailed, e.Status, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is makes errors.Is(err, ErrExchangeFailed) true.
func (e *ExchangeError) Is(target error) bool { return target == ErrExchangeFailed }

func (e *ExchangeError) Unwrap() error { return e.Err }
