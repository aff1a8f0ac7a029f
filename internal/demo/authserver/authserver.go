// Package authserver runs an OAuth authorization server and an
// OAuth-protected MCP-like resource in process, on loopback: the one
// `mcpidp demo` logs its user in to, and (through mcpauthtest) the one the
// tests of the OAuth engine and of everything built on it use. Both are real
// HTTP servers; their behaviour (discovery layout, registration methods,
// refresh rotation with reuse detection, revocation, iss, lifetimes, a
// consent page) is configurable and every request is counted.
package authserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// PRMMode says where the resource publishes its protected-resource
// metadata (RFC 9728).
type PRMMode int

const (
	// PRMHeader: at a URL given only in the 401 challenge's
	// resource_metadata parameter.
	PRMHeader PRMMode = iota
	// PRMPath: at the path-based well-known URL, not named in the
	// challenge.
	PRMPath
	// PRMRoot: at the root well-known URL, not named in the challenge.
	PRMRoot
	// PRMNone: no protected-resource metadata (a 2025-03-26 server); the
	// authorization server then lives at the resource's origin.
	PRMNone
)

// Config configures a Server. The zero value is a 2025-11-25 server with
// dynamic registration, S256, rotating refresh tokens, revocation and
// one-hour access tokens.
type Config struct {
	PRM PRMMode
	// PRMResource overrides the resource the metadata names (default: the
	// MCP endpoint URL).
	PRMResource string
	// ScopesSupported goes into the protected-resource metadata.
	ScopesSupported []string
	// ChallengeScope is the scope parameter of the 401 challenge.
	ChallengeScope string
	// RequiredScopes are needed by the resource; a token without them gets
	// 403 insufficient_scope naming them.
	RequiredScopes []string

	// IssuerPath is appended to the authorization server's origin to form
	// its issuer, e.g. "/tenant1".
	IssuerPath string
	// OIDC publishes metadata only at the OpenID configuration URL.
	OIDC bool
	// NoMetadata publishes no authorization server metadata at all (with
	// PRMNone: the 2025-03-26 default endpoints).
	NoMetadata bool
	// NoS256 advertises only the "plain" PKCE method.
	NoS256 bool
	// ASScopesSupported goes into the authorization server metadata.
	ASScopesSupported []string
	// TokenEndpointAuthMethods is token_endpoint_auth_methods_supported.
	TokenEndpointAuthMethods []string
	// DisableDCR removes the registration endpoint.
	DisableDCR bool
	// CIMD advertises client_id_metadata_document_supported and accepts
	// https client ids, whose documents it gets from ClientMetadataFunc.
	CIMD               bool
	ClientMetadataFunc func(clientID string) ([]byte, error)
	// RequireClientIDInBody refuses token and revocation requests without
	// client_id in the form body, whatever the client authentication, as
	// the MCP Python SDK's authorization server (and FastMCP's) do; with
	// HTTP Basic the two client ids must agree. Like that server, it answers
	// every failed client authentication (an unknown client too) with
	// unauthorized_client.
	RequireClientIDInBody bool
	// AuthorizationCodeOnly registers dynamic clients for the
	// authorization_code grant only (whatever they ask for, and says so in
	// the registration response) and answers their refresh grants with
	// unauthorized_client, as RFC 6749 §5.2 says; it issues no refresh
	// tokens.
	AuthorizationCodeOnly bool
	// DisableRevocation removes the revocation endpoint.
	DisableRevocation bool
	// IssParameter advertises authorization_response_iss_parameter_supported
	// and sends iss with every authorization response.
	IssParameter bool
	// IssOverride, when set, is sent as iss instead of the real issuer.
	IssOverride string
	// Deny makes the authorization endpoint refuse (access_denied).
	Deny bool
	// Consent makes the authorization endpoint show a consent page whose
	// Allow button (a form POSTed back to it) grants the code, as a real
	// authorization server asks its user; Deny on that page refuses.
	Consent bool

	// AccessTokenTTL defaults to one hour.
	AccessTokenTTL time.Duration
	// NoRefreshTokens issues no refresh tokens.
	NoRefreshTokens bool
	// NoRotation keeps the same refresh token across refreshes.
	NoRotation bool
	// RefreshDelay is slept in each refresh, widening race windows.
	RefreshDelay time.Duration
	// RefreshHookFunc, when set, runs at the start of every refresh
	// request (before RefreshDelay): tests use it to hold a refresh.
	RefreshHookFunc func()
	// Now is the server's clock; defaults to time.Now.
	Now func() time.Time

	// Resource, when set, answers the authorized requests to the MCP
	// endpoint (e.g. a real mcp-go server); default: a small JSON body.
	Resource http.Handler
	// PRMHookFunc, when set, runs at the start of every protected-resource
	// metadata request: tests use it to hold a client in discovery.
	PRMHookFunc func()
}

// Server is a running authorization server and resource.
type Server struct {
	// AS serves the authorization server (nil with PRMNone, where the
	// resource server serves it).
	AS *httptest.Server
	// RS serves the resource at /mcp and its metadata.
	RS  *httptest.Server
	cfg Config

	mu        sync.Mutex
	clients   map[string]*Client
	codes     map[string]*grant
	access    map[string]*token
	refresh   map[string]*token
	counts    map[string]int
	requests  []string
	authorize []url.Values
	tokenReqs []url.Values
	registers []map[string]any
	// refreshDown makes refresh requests fail with 503 temporarily_unavailable.
	refreshDown bool
}

// Client is a client registration known to the authorization server.
type Client struct {
	ID           string
	Secret       string
	AuthMethod   string
	RedirectURIs []string
	// GrantTypes, when set, are the only grants the client may use.
	GrantTypes []string
	// dynamic marks a client registered at the registration endpoint,
	// which Restart forgets.
	dynamic bool
}

type grant struct {
	client, redirectURI, challenge, scope, resource string
}

type token struct {
	value    string
	family   string
	client   string
	scope    string
	resource string
	expires  time.Time
	used     bool // refresh tokens: already exchanged
	revoked  bool
}

// Start starts a Server on loopback; Close stops it.
func Start(cfg Config) *Server {
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:     cfg,
		clients: map[string]*Client{},
		codes:   map[string]*grant{},
		access:  map[string]*token{},
		refresh: map[string]*token{},
		counts:  map[string]int{},
	}
	rsMux := http.NewServeMux()
	s.RS = httptest.NewUnstartedServer(s.logging(rsMux))
	rsMux.HandleFunc("/mcp", s.handleResource)
	switch cfg.PRM {
	case PRMHeader:
		rsMux.HandleFunc("GET /metadata/from-header", s.handlePRM)
	case PRMPath:
		rsMux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", s.handlePRM)
	case PRMRoot:
		rsMux.HandleFunc("GET /.well-known/oauth-protected-resource", s.handlePRM)
	}
	asMux := rsMux
	if cfg.PRM != PRMNone {
		asMux = http.NewServeMux()
		s.AS = httptest.NewUnstartedServer(s.logging(asMux))
	}
	p := cfg.IssuerPath
	if !cfg.NoMetadata {
		if cfg.OIDC {
			if p == "" {
				asMux.HandleFunc("GET /.well-known/openid-configuration", s.handleASMetadata)
			} else {
				asMux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.handleASMetadata)
			}
		} else {
			asMux.HandleFunc("GET /.well-known/oauth-authorization-server"+p, s.handleASMetadata)
		}
	}
	asMux.HandleFunc("GET "+p+"/authorize", s.handleAuthorize)
	if cfg.Consent {
		asMux.HandleFunc("POST "+p+"/authorize", s.handleConsent)
	}
	asMux.HandleFunc("POST "+p+"/token", s.handleToken)
	if !cfg.DisableDCR {
		asMux.HandleFunc("POST "+p+"/register", s.handleRegister)
	}
	if !cfg.DisableRevocation {
		asMux.HandleFunc("POST "+p+"/revoke", s.handleRevoke)
	}
	s.RS.Start()
	if s.AS != nil {
		s.AS.Start()
	}
	return s
}

// Close stops the servers.
func (s *Server) Close() {
	if s.AS != nil {
		s.AS.Close()
	}
	s.RS.Close()
}

// URL is the MCP endpoint, the protected resource.
func (s *Server) URL() string { return s.RS.URL + "/mcp" }

// Issuer is the authorization server's issuer identifier.
func (s *Server) Issuer() string {
	if s.AS == nil {
		return s.RS.URL
	}
	return s.AS.URL + s.cfg.IssuerPath
}

// Challenge is the WWW-Authenticate header of the resource's 401.
func (s *Server) Challenge() string {
	parts := []string{`Bearer realm="mcp"`}
	if s.cfg.PRM == PRMHeader {
		parts = append(parts, fmt.Sprintf(`resource_metadata=%q`, s.RS.URL+"/metadata/from-header"))
	}
	if s.cfg.ChallengeScope != "" {
		parts = append(parts, fmt.Sprintf(`scope=%q`, s.cfg.ChallengeScope))
	}
	return strings.Join(parts, ", ")
}

// AddClient pre-registers a client.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
}

// Count returns how many requests an endpoint got: "prm", "metadata",
// "authorize", "consent" (answers of the consent page), "token" (code exchanges), "refresh" (of refresh tokens it
// issued), "refresh_unknown" (of any other), "unauthorized_grant" (token
// requests with a grant the client is not registered for), "register",
// "revoke", "resource".
func (s *Server) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name]
}

// Requests returns "METHOD /path" of every request both servers got, in
// order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// AuthorizeRequests returns the query of every authorization request.
func (s *Server) AuthorizeRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authorize)
}

// TokenRequests returns the form of every token request but refreshes of
// tokens it never issued (client secrets included, so tests can check how
// the client authenticated).
func (s *Server) TokenRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenReqs)
}

// Registrations returns the body of every registration request.
func (s *Server) Registrations() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.registers)
}

// TokenValid reports whether the resource would accept the access token.
func (s *Server) TokenValid(accessToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.validLocked(accessToken)
	return ok
}

// RevokeAll revokes every token, as an administrator at the AS would.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.revoked = true
	}
	for _, t := range s.refresh {
		t.revoked = true
	}
}

// RevokeAccessTokens revokes every access token and keeps the refresh
// tokens, as an authorization server does when it cuts access tokens short.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.revoked = true
	}
}

// SetRefreshUnavailable makes refresh requests fail with HTTP 503
// (temporarily_unavailable) while down is true, refresh tokens untouched.
func (s *Server) SetRefreshUnavailable(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshDown = down
}

// Restart plays an authorization server restarted with an in-memory
// store: it forgets every dynamically registered client, code and token
// (pre-registered clients, from its configuration, stay).
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.clients {
		if c.dynamic {
			delete(s.clients, id)
		}
	}
	clear(s.codes)
	clear(s.access)
	clear(s.refresh)
}

func (s *Server) logging(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) count(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[name]++
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func randomString() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) handlePRM(w http.ResponseWriter, _ *http.Request) {
	s.count("prm")
	if s.cfg.PRMHookFunc != nil {
		s.cfg.PRMHookFunc()
	}
	resource := s.cfg.PRMResource
	if resource == "" {
		resource = s.URL()
	}
	md := map[string]any{"resource": resource, "authorization_servers": []string{s.Issuer()}}
	if len(s.cfg.ScopesSupported) > 0 {
		md["scopes_supported"] = s.cfg.ScopesSupported
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) handleASMetadata(w http.ResponseWriter, _ *http.Request) {
	s.count("metadata")
	iss := s.Issuer()
	md := map[string]any{
		"issuer":                           iss,
		"authorization_endpoint":           iss + "/authorize",
		"token_endpoint":                   iss + "/token",
		"response_types_supported":         []string{"code"},
		"grant_types_supported":            []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported": []string{"S256"},
	}
	if s.cfg.NoS256 {
		md["code_challenge_methods_supported"] = []string{"plain"}
	}
	if !s.cfg.DisableDCR {
		md["registration_endpoint"] = iss + "/register"
	}
	if !s.cfg.DisableRevocation {
		md["revocation_endpoint"] = iss + "/revoke"
	}
	if s.cfg.CIMD {
		md["client_id_metadata_document_supported"] = true
	}
	if s.cfg.IssParameter {
		md["authorization_response_iss_parameter_supported"] = true
	}
	if len(s.cfg.ASScopesSupported) > 0 {
		md["scopes_supported"] = s.cfg.ASScopesSupported
	}
	if len(s.cfg.TokenEndpointAuthMethods) > 0 {
		md["token_endpoint_auth_methods_supported"] = s.cfg.TokenEndpointAuthMethods
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	s.count("register")
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", err.Error())
		return
	}
	var redirects []string
	if list, ok := req["redirect_uris"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				redirects = append(redirects, s)
			}
		}
	}
	if len(redirects) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris is required")
		return
	}
	method, _ := req["token_endpoint_auth_method"].(string)
	supported := s.cfg.TokenEndpointAuthMethods
	if len(supported) == 0 {
		supported = []string{"client_secret_basic", "client_secret_post", "none"}
	}
	if !slices.Contains(supported, method) {
		method = supported[0]
	}
	grantTypes := []string{"authorization_code"} // RFC 7591's default
	if list, ok := req["grant_types"].([]any); ok && len(list) > 0 && !s.cfg.AuthorizationCodeOnly {
		grantTypes = nil
		for _, v := range list {
			if g, ok := v.(string); ok {
				grantTypes = append(grantTypes, g)
			}
		}
	}
	c := &Client{ID: "dcr-" + randomString(), AuthMethod: method, RedirectURIs: redirects, GrantTypes: grantTypes, dynamic: true}
	if method != "none" {
		c.Secret = randomString()
	}
	s.mu.Lock()
	s.clients[c.ID] = c
	s.registers = append(s.registers, req)
	s.mu.Unlock()
	resp := map[string]any{"client_id": c.ID, "redirect_uris": redirects, "token_endpoint_auth_method": method,
		"grant_types": grantTypes, "client_id_issued_at": s.cfg.Now().Unix()}
	if c.Secret != "" {
		resp["client_secret"] = c.Secret
		resp["client_secret_expires_at"] = 0
	}
	writeJSON(w, http.StatusCreated, resp)
}

// lookupClient finds a registered client, or fetches a CIMD.
func (s *Server) lookupClient(id string) (*Client, error) {
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	if !s.cfg.CIMD || !strings.HasPrefix(id, "https://") || s.cfg.ClientMetadataFunc == nil {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	body, err := s.cfg.ClientMetadataFunc(id)
	if err != nil {
		return nil, fmt.Errorf("fetching client metadata document: %w", err)
	}
	var doc struct {
		ClientID     string   `json:"client_id"`
		ClientName   string   `json:"client_name"`
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("client metadata document: %w", err)
	}
	if doc.ClientID != id || doc.ClientName == "" || len(doc.RedirectURIs) == 0 {
		return nil, fmt.Errorf("client metadata document for %q is invalid", id)
	}
	return &Client{ID: id, AuthMethod: "none", RedirectURIs: doc.RedirectURIs}, nil
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	s.count("authorize")
	q := r.URL.Query()
	s.mu.Lock()
	s.authorize = append(s.authorize, q)
	s.mu.Unlock()
	c, err := s.checkAuthorize(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.cfg.Consent {
		s.writeConsentPage(w, r.URL.Path, q, c)
		return
	}
	s.grant(w, r, q, c, s.cfg.Deny)
}

// handleConsent is the consent page's form: Allow grants the code.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	s.count("consent")
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.PostForm
	c, err := s.checkAuthorize(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.grant(w, r, q, c, s.cfg.Deny || q.Get("decision") != "allow")
}

// checkAuthorize checks an authorization request's client, redirect URI
// and PKCE challenge.
func (s *Server) checkAuthorize(q url.Values) (*Client, error) {
	c, err := s.lookupClient(q.Get("client_id"))
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.RedirectURIs, q.Get("redirect_uri")) {
		return nil, errors.New("redirect_uri is not registered")
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		return nil, errors.New("want response_type=code and an S256 code_challenge")
	}
	return c, nil
}

// consentPage asks the user to allow the client; the form carries the
// authorization request back in hidden fields.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Allow access?</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto">
<h1>Allow access?</h1>
<p>The application at <strong>{{.App}}</strong> (OAuth client {{.Client}}) asks to use this MCP server on your behalf{{if .Scope}} (scope: {{.Scope}}){{end}}.</p>
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
`))

func (s *Server) writeConsentPage(w http.ResponseWriter, action string, q url.Values, c *Client) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	app := q.Get("redirect_uri")
	if u, err := url.Parse(app); err == nil && u.Host != "" {
		app = u.Host
	}
	_ = consentPage.Execute(w, map[string]any{"App": app, "Client": c.ID, "Scope": q.Get("scope"), "Action": action, "Params": q})
}

// grant redirects back to the client with a code, or with access_denied.
func (s *Server) grant(w http.ResponseWriter, r *http.Request, q url.Values, c *Client, deny bool) {
	redirectURI := q.Get("redirect_uri")
	back, _ := url.Parse(redirectURI)
	params := back.Query()
	params.Set("state", q.Get("state"))
	if s.cfg.IssOverride != "" {
		params.Set("iss", s.cfg.IssOverride)
	} else if s.cfg.IssParameter {
		params.Set("iss", s.Issuer())
	}
	if deny {
		params.Set("error", "access_denied")
		params.Set("error_description", "The user said no")
	} else {
		code := randomString()
		s.mu.Lock()
		s.codes[code] = &grant{client: c.ID, redirectURI: redirectURI, challenge: q.Get("code_challenge"),
			scope: q.Get("scope"), resource: q.Get("resource")}
		s.mu.Unlock()
		params.Set("code", code)
	}
	back.RawQuery = params.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// authenticate checks client authentication at the token and revocation
// endpoints against the client's registered method.
func (s *Server) authenticate(r *http.Request) (*Client, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if s.cfg.RequireClientIDInBody {
		switch body := r.PostForm.Get("client_id"); {
		case body == "":
			return nil, errMissingClientID
		case body != id:
			return nil, fmt.Errorf("client_id %q in the body differs from %q in the Authorization header", body, id)
		}
	}
	c, err := s.lookupClient(id)
	if err != nil {
		return nil, err
	}
	switch c.AuthMethod {
	case "none":
		if basic || secret != "" {
			return nil, fmt.Errorf("client %s is public", id)
		}
	case "client_secret_basic":
		if !basic || secret != c.Secret {
			return nil, fmt.Errorf("client %s must authenticate with HTTP Basic", id)
		}
	case "client_secret_post":
		if basic || secret != c.Secret {
			return nil, fmt.Errorf("client %s must send client_secret in the body", id)
		}
	}
	return c, nil
}

// errMissingClientID is RequireClientIDInBody's refusal.
var errMissingClientID = errors.New("missing client_id")

// authError answers a failed client authentication: invalid_client, or,
// with RequireClientIDInBody, unauthorized_client as the Python SDK does.
func (s *Server) authError(w http.ResponseWriter, err error) {
	if s.cfg.RequireClientIDInBody {
		oauthError(w, http.StatusUnauthorized, "unauthorized_client", err.Error())
		return
	}
	oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.mu.Lock()
	form := url.Values{}
	for k, v := range r.PostForm {
		form[k] = v
	}
	if id, secret, ok := r.BasicAuth(); ok {
		form.Set("basic_client_id", id)
		form.Set("basic_client_secret", secret)
	}
	if form.Get("grant_type") != "refresh_token" || s.refresh[form.Get("refresh_token")] != nil {
		// Refreshes of tokens it never issued are only counted.
		s.tokenReqs = append(s.tokenReqs, form)
	}
	s.mu.Unlock()
	c, err := s.authenticate(r)
	if err != nil {
		s.authError(w, err)
		return
	}
	if len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, r.PostForm.Get("grant_type")) {
		s.count("unauthorized_grant")
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "the client is not registered for this grant type")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.count("token")
		s.exchangeCode(w, r, c)
	case "refresh_token":
		if !s.issuedRefreshToken(r.PostForm.Get("refresh_token")) {
			// A token this server never issued (such as mcpidp's check
			// that it still knows the client) is refused at once: no
			// hook, no delay, counted apart.
			s.count("refresh_unknown")
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		}
		s.count("refresh")
		if s.cfg.RefreshHookFunc != nil {
			s.cfg.RefreshHookFunc()
		}
		if s.cfg.RefreshDelay > 0 {
			time.Sleep(s.cfg.RefreshDelay)
		}
		s.mu.Lock()
		down := s.refreshDown
		s.mu.Unlock()
		if down {
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
			return
		}
		s.refreshToken(w, r, c)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// issuedRefreshToken reports whether the server issued the refresh token
// (revoked or used ones included).
func (s *Server) issuedRefreshToken(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.refresh[value]
	return ok
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request, c *Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := r.PostForm.Get("code")
	g, ok := s.codes[code]
	delete(s.codes, code)
	if !ok || g.client != c.ID || g.redirectURI != r.PostForm.Get("redirect_uri") {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown code")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
		return
	}
	if res := r.PostForm.Get("resource"); res != g.resource {
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the authorization request")
		return
	}
	s.issueLocked(w, c.ID, g.scope, g.resource, randomString())
}

func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request, c *Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[r.PostForm.Get("refresh_token")]
	switch {
	case !ok || rt.client != c.ID || rt.revoked:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or revoked refresh token")
		return
	case rt.used:
		// Reuse of a rotated refresh token: someone has a copy. Revoke the
		// whole family (OAuth 2.1 §4.3.1).
		s.revokeFamilyLocked(rt.family)
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected")
		return
	}
	if res := r.PostForm.Get("resource"); res != "" && res != rt.resource {
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the grant")
		return
	}
	if s.cfg.NoRotation {
		s.issueAccessLocked(w, rt, rt.value, false)
		return
	}
	rt.used = true
	s.issueLocked(w, c.ID, rt.scope, rt.resource, rt.family)
}

func (s *Server) issueLocked(w http.ResponseWriter, client, scope, resource, family string) {
	t := &token{family: family, client: client, scope: scope, resource: resource}
	if s.cfg.NoRefreshTokens || s.cfg.AuthorizationCodeOnly {
		s.issueAccessLocked(w, t, "", false)
		return
	}
	rt := *t
	rt.value = randomString()
	s.refresh[rt.value] = &rt
	s.issueAccessLocked(w, t, rt.value, true)
}

func (s *Server) issueAccessLocked(w http.ResponseWriter, from *token, refreshToken string, sendRefresh bool) {
	at := &token{value: randomString(), family: from.family, client: from.client, scope: from.scope, resource: from.resource,
		expires: s.cfg.Now().Add(s.cfg.AccessTokenTTL)}
	s.access[at.value] = at
	resp := map[string]any{"access_token": at.value, "token_type": "Bearer", "expires_in": int(s.cfg.AccessTokenTTL.Seconds())}
	if at.scope != "" {
		resp["scope"] = at.scope
	}
	if sendRefresh {
		resp["refresh_token"] = refreshToken
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) revokeFamilyLocked(family string) {
	for _, t := range s.access {
		if t.family == family {
			t.revoked = true
		}
	}
	for _, t := range s.refresh {
		if t.family == family {
			t.revoked = true
		}
	}
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	s.count("revoke")
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	c, err := s.authenticate(r)
	if err != nil {
		s.authError(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	value := r.PostForm.Get("token")
	if t, ok := s.refresh[value]; ok && t.client == c.ID {
		s.revokeFamilyLocked(t.family)
	}
	if t, ok := s.access[value]; ok && t.client == c.ID {
		t.revoked = true
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) validLocked(value string) (*token, bool) {
	t, ok := s.access[value]
	if !ok || t.revoked || !s.cfg.Now().Before(t.expires) {
		return nil, false
	}
	// Audience: a token asked for another resource is not for us.
	if t.resource != "" && t.resource != s.URL() {
		return nil, false
	}
	return t, true
}

func (s *Server) handleResource(w http.ResponseWriter, r *http.Request) {
	s.count("resource")
	value, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	t, valid := s.validLocked(value)
	s.mu.Unlock()
	if !ok || !valid {
		w.Header().Set("WWW-Authenticate", s.Challenge())
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	granted := strings.Fields(t.scope)
	for _, need := range s.cfg.RequiredScopes {
		if !slices.Contains(granted, need) {
			ch := fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, strings.Join(s.cfg.RequiredScopes, " "))
			if s.cfg.PRM == PRMHeader {
				ch += fmt.Sprintf(`, resource_metadata=%q`, s.RS.URL+"/metadata/from-header")
			}
			w.Header().Set("WWW-Authenticate", ch)
			http.Error(w, "insufficient scope", http.StatusForbidden)
			return
		}
	}
	if s.cfg.Resource != nil {
		s.cfg.Resource.ServeHTTP(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "scope": t.scope})
}
