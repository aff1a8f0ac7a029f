package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpidp/mcpidp/internal/store"
)

// Token endpoint authentication methods mcpidp can use.
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodClientSecretBasic = "client_secret_basic"
)

// PreRegisteredClient is an OAuth client registered by hand with one
// authorization server.
type PreRegisteredClient struct {
	// Issuer is the authorization server's issuer identifier, exactly as
	// its metadata says it (a trailing slash is ignored).
	Issuer string `json:"issuer"`
	// ClientID is the registered client id.
	ClientID string `json:"client_id"`
	// ClientSecret is empty for a public client.
	ClientSecret string `json:"client_secret,omitempty"`
	// TokenEndpointAuthMethod is none, client_secret_post or
	// client_secret_basic. Defaults to client_secret_basic when there is a
	// secret and none otherwise.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// Scopes, when set, are requested with this client whenever neither the
	// caller nor the server's challenge names scopes (instead of the
	// resource's scopes_supported).
	Scopes []string `json:"scopes,omitempty"`
}

func (p *PreRegisteredClient) validate() error {
	if _, err := parseEndpoint("issuer", p.Issuer); err != nil {
		return fmt.Errorf("invalid pre-registered client: %w", err)
	}
	if p.ClientID == "" {
		return fmt.Errorf("invalid pre-registered client for %s: client_id is required", p.Issuer)
	}
	switch p.TokenEndpointAuthMethod {
	case AuthMethodNone:
		if p.ClientSecret != "" {
			return fmt.Errorf("invalid pre-registered client for %s: token_endpoint_auth_method none takes no client_secret", p.Issuer)
		}
	case AuthMethodClientSecretPost, AuthMethodClientSecretBasic:
		if p.ClientSecret == "" {
			return fmt.Errorf("invalid pre-registered client for %s: token_endpoint_auth_method %s needs a client_secret", p.Issuer, p.TokenEndpointAuthMethod)
		}
	default:
		return fmt.Errorf("invalid pre-registered client for %s: unsupported token_endpoint_auth_method %q (want none, client_secret_post or client_secret_basic)", p.Issuer, p.TokenEndpointAuthMethod)
	}
	return nil
}

// ParsePreRegistered parses MCPIDP_OAUTH_CLIENTS: a JSON array of objects
// with the fields of PreRegisteredClient, for example
//
//	[{"issuer":"https://auth.example.com","client_id":"abc","client_secret":"s3cret",
//	  "token_endpoint_auth_method":"client_secret_post","scopes":["read"]}]
//
// An empty string gives no clients.
func ParsePreRegistered(s string) ([]PreRegisteredClient, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PreRegisteredClient
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("invalid pre-registered OAuth clients: want a JSON array of {issuer, client_id, client_secret, token_endpoint_auth_method, scopes}: %w", err)
	}
	seen := map[string]bool{}
	for i := range out {
		p := &out[i]
		if p.TokenEndpointAuthMethod == "" {
			p.TokenEndpointAuthMethod = AuthMethodNone
			if p.ClientSecret != "" {
				p.TokenEndpointAuthMethod = AuthMethodClientSecretBasic
			}
		}
		if err := p.validate(); err != nil {
			return nil, err
		}
		if seen[normalizeIssuer(p.Issuer)] {
			return nil, fmt.Errorf("invalid pre-registered OAuth clients: issuer %s appears twice", p.Issuer)
		}
		seen[normalizeIssuer(p.Issuer)] = true
	}
	return out, nil
}

// registration is the client to use with one authorization server.
type registration struct {
	clientID   string
	authMethod string
	// scopes are the pre-registered client's default scopes.
	scopes []string
}

// ClientMetadataDocument returns this deployment's Client ID Metadata
// Document, served at GET PublicURL + ClientMetadataPath (or published at
// Config.ClientMetadataURL).
func (e *Engine) ClientMetadataDocument() ([]byte, error) {
	return json.Marshal(map[string]any{
		"client_id":                  e.ClientMetadataURL(),
		"client_name":                e.clientName,
		"client_uri":                 e.publicURL,
		"redirect_uris":              []string{e.RedirectURI()},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": AuthMethodNone,
	})
}

// register picks the client for an authorization server: pre-registered,
// then CIMD, then dynamic registration (stored and reused per server).
func (e *Engine) register(ctx context.Context, as *serverMetadata) (*registration, error) {
	if p, ok := e.preRegistered[normalizeIssuer(as.Issuer)]; ok {
		return &registration{clientID: p.ClientID, authMethod: p.TokenEndpointAuthMethod, scopes: p.Scopes}, nil
	}
	if as.ClientIDMetadataDocumentSupported && e.cimdUsable() {
		return &registration{clientID: e.ClientMetadataURL(), authMethod: AuthMethodNone}, nil
	}
	if as.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("%w: authorization server %s offers no way to register a client (no pre-registered client, no client_id_metadata_document_supported with an https public URL, no registration_endpoint)", ErrDiscovery, as.Issuer)
	}
	issuer := normalizeIssuer(as.Issuer)
	stored, err := e.store.GetOAuthClient(ctx, e.store.DB(), issuer, e.RedirectURI())
	switch {
	case err == nil && (stored.SecretExpiresAt == nil || stored.SecretExpiresAt.After(e.now().Add(time.Minute))):
		return &registration{clientID: stored.ClientID, authMethod: stored.TokenEndpointAuthMethod}, nil
	case err == nil:
		if err := e.store.DeleteOAuthClient(ctx, e.store.DB(), issuer, e.RedirectURI(), stored.ClientID); err != nil {
			return nil, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	c, err := e.registerDynamically(ctx, as)
	if err != nil {
		return nil, err
	}
	err = e.store.CreateOAuthClient(ctx, e.store.DB(), c)
	if errors.Is(err, store.ErrConflict) {
		// Another process registered at the same moment: use its client so
		// every process agrees.
		stored, err := e.store.GetOAuthClient(ctx, e.store.DB(), issuer, e.RedirectURI())
		if err != nil {
			return nil, err
		}
		return &registration{clientID: stored.ClientID, authMethod: stored.TokenEndpointAuthMethod}, nil
	}
	if err != nil {
		return nil, err
	}
	return &registration{clientID: c.ClientID, authMethod: c.TokenEndpointAuthMethod}, nil
}

// registerDynamically runs RFC 7591 registration and returns the client
// with its secret sealed.
func (e *Engine) registerDynamically(ctx context.Context, as *serverMetadata) (*store.OAuthClient, error) {
	method, err := chooseAuthMethod(as.TokenEndpointAuthMethodsSupported)
	if err != nil {
		return nil, fmt.Errorf("%w: authorization server %s: %w", ErrDiscovery, as.Issuer, err)
	}
	body, err := json.Marshal(map[string]any{
		"client_name":                e.clientName,
		"client_uri":                 e.publicURL,
		"redirect_uris":              []string{e.RedirectURI()},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
	})
	if err != nil {
		return nil, fmt.Errorf("error encoding client registration: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: invalid registration endpoint: %w", ErrDiscovery, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: error registering client at %s: %w", ErrDiscovery, as.RegistrationEndpoint, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: error reading client registration: %w", ErrDiscovery, err)
	}
	if len(respBody) > maxMetadataBytes {
		return nil, fmt.Errorf("%w: client registration at %s answered more than %d bytes", ErrDiscovery, as.RegistrationEndpoint, maxMetadataBytes)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var oe struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		_ = json.Unmarshal(respBody, &oe)
		return nil, fmt.Errorf("%w: client registration at %s failed with HTTP %d %s %s", ErrDiscovery, as.RegistrationEndpoint, resp.StatusCode, oe.Error, oe.ErrorDescription)
	}
	var reg struct {
		ClientID                string `json:"client_id"`
		ClientSecret            string `json:"client_secret"`
		ClientSecretExpiresAt   int64  `json:"client_secret_expires_at"`
		TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
		// GrantTypes are kept so that clientForgotten can tell "unknown
		// client" from "not allowed to refresh".
		GrantTypes []string `json:"grant_types"`
	}
	if err := json.Unmarshal(respBody, &reg); err != nil {
		return nil, fmt.Errorf("%w: error decoding client registration: %w", ErrDiscovery, err)
	}
	if reg.ClientID == "" {
		return nil, fmt.Errorf("%w: client registration at %s returned no client_id", ErrDiscovery, as.RegistrationEndpoint)
	}
	switch {
	case reg.TokenEndpointAuthMethod != "":
		method = reg.TokenEndpointAuthMethod
	case reg.ClientSecret == "":
		method = AuthMethodNone
	}
	if _, err := authStyle(method); err != nil {
		return nil, fmt.Errorf("%w: client registration at %s: %w", ErrDiscovery, as.RegistrationEndpoint, err)
	}
	if method != AuthMethodNone && reg.ClientSecret == "" {
		return nil, fmt.Errorf("%w: client registration at %s chose %s but returned no client_secret", ErrDiscovery, as.RegistrationEndpoint, method)
	}
	c := &store.OAuthClient{
		Issuer:                  normalizeIssuer(as.Issuer),
		RedirectURI:             e.RedirectURI(),
		ClientID:                reg.ClientID,
		TokenEndpointAuthMethod: method,
		GrantTypes:              reg.GrantTypes,
	}
	if reg.ClientSecretExpiresAt > 0 {
		t := time.Unix(reg.ClientSecretExpiresAt, 0)
		c.SecretExpiresAt = &t
	}
	if reg.ClientSecret != "" {
		c.ClientSecret, err = e.keyring.Seal([]byte(reg.ClientSecret), clientSecretAD(c.Issuer, c.RedirectURI))
		if err != nil {
			return nil, fmt.Errorf("error sealing client secret: %w", err)
		}
	}
	return c, nil
}

// chooseAuthMethod picks what to ask for at registration: a confidential
// client when the server allows it (mcpidp can keep a secret), else public.
// client_secret_post comes first: everything then travels in the body,
// which every server that offers it reads (some, like the MCP Python SDK's,
// look for client_id only there). An empty list means client_secret_basic
// (RFC 8414 §2).
func chooseAuthMethod(supported []string) (string, error) {
	if len(supported) == 0 {
		return AuthMethodClientSecretBasic, nil
	}
	for _, m := range []string{AuthMethodClientSecretPost, AuthMethodClientSecretBasic, AuthMethodNone} {
		if slices.Contains(supported, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("none of its token_endpoint_auth_methods_supported %v is supported (want none, client_secret_post or client_secret_basic)", supported)
}

// authStyle maps a token endpoint auth method onto x/oauth2.
func authStyle(method string) (oauth2.AuthStyle, error) {
	switch method {
	case AuthMethodNone, AuthMethodClientSecretPost:
		return oauth2.AuthStyleInParams, nil
	case AuthMethodClientSecretBasic:
		return oauth2.AuthStyleInHeader, nil
	}
	return 0, fmt.Errorf("unsupported token_endpoint_auth_method %q", method)
}

// errClientGone means the dynamic registration a login or connection was
// made with has been dropped (the authorization server rejected it) or
// replaced, so its secret is gone: only a new login helps.
var errClientGone = fmt.Errorf("client registration is gone: %w", ErrLoginRequired)

// clientSecret returns the plaintext secret of the client an authority
// uses: from the pre-registered configuration, or from the stored dynamic
// registration. Public clients have none.
func (e *Engine) clientSecret(ctx context.Context, q store.DBTX, a *store.OAuthAuthority) (string, error) {
	if a.TokenEndpointAuthMethod == AuthMethodNone {
		return "", nil
	}
	if p, ok := e.preRegistered[normalizeIssuer(a.Issuer)]; ok && p.ClientID == a.ClientID {
		return p.ClientSecret, nil
	}
	c, err := e.store.GetOAuthClient(ctx, q, normalizeIssuer(a.Issuer), e.RedirectURI())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if err != nil || c.ClientID != a.ClientID {
		return "", fmt.Errorf("the client registration %s at %s is no longer known: %w", a.ClientID, a.Issuer, errClientGone)
	}
	secret, err := e.keyring.Open(c.ClientSecret, clientSecretAD(c.Issuer, c.RedirectURI))
	if err != nil {
		return "", fmt.Errorf("error opening client secret for %s: %w", a.Issuer, err)
	}
	return string(secret), nil
}

// oauthConfig is the x/oauth2 view of an authority.
func (e *Engine) oauthConfig(a *store.OAuthAuthority, secret string, scopes []string) (*oauth2.Config, error) {
	style, err := authStyle(a.TokenEndpointAuthMethod)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID:     a.ClientID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   a.AuthorizationEndpoint,
			TokenURL:  a.TokenEndpoint,
			AuthStyle: style,
		},
		RedirectURL: e.RedirectURI(),
		Scopes:      scopes,
	}, nil
}

// Associated data for sealed values: each binds a value to the row (and
// column) it was written to, so a value copied elsewhere does not open.
func clientSecretAD(issuer, redirectURI string) []byte {
	return []byte("mcpidp/oauth-client-secret\x00" + issuer + "\x00" + redirectURI)
}

func stateVerifierAD(stateHash, loginID string) []byte {
	return []byte("mcpidp/oauth-state-verifier\x00" + stateHash + "\x00" + loginID)
}

func tokenAD(kind, tenant, user, serverURL string) []byte {
	return []byte("mcpidp/oauth-" + kind + "\x00" + tenant + "\x00" + user + "\x00" + serverURL)
}
