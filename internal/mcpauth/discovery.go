package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxMetadataBytes bounds metadata and registration responses.
const maxMetadataBytes = 1 << 20

// resourceMetadata is RFC 9728 protected-resource metadata (the fields we
// use).
type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// serverMetadata is RFC 8414 / OpenID provider metadata (the fields we use).
type serverMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported"`
}

// discovery is what BeginLogin learned about a server.
type discovery struct {
	// resource is the resource indicator: the protected-resource metadata's
	// resource when it covers the server URL, else the canonical server URL.
	resource string
	// prm is nil when the server publishes no protected-resource metadata
	// (a 2025-03-26 server).
	prm *resourceMetadata
	as  *serverMetadata
}

// errNotFound marks a metadata URL that answered 404 (or another 4xx), so
// discovery moves on to the next candidate.
var errNotFound = errors.New("metadata not found")

// discover finds the authorization server for serverURL (canonical) given
// the challenge of its 401/403.
func (e *Engine) discover(ctx context.Context, serverURL string, ch Challenge) (*discovery, error) {
	su, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("invalid server URL: %w", err)
	}
	d := &discovery{resource: serverURL}

	prm, err := e.fetchResourceMetadata(ctx, su, ch.ResourceMetadata)
	if err != nil {
		return nil, err
	}
	if prm == nil {
		// 2025-03-26: the authorization server lives at the MCP server's
		// origin, with metadata at its root or, failing that, default
		// endpoints.
		as, err := e.fetchServerMetadata(ctx, origin(su), true)
		switch {
		case errors.Is(err, errNotFound):
			as = &serverMetadata{
				Issuer:                        origin(su),
				AuthorizationEndpoint:         origin(su) + "/authorize",
				TokenEndpoint:                 origin(su) + "/token",
				RegistrationEndpoint:          origin(su) + "/register",
				CodeChallengeMethodsSupported: []string{"S256"},
			}
		case err != nil:
			return nil, err
		}
		d.as = as
		return d, e.checkServerMetadata(d.as)
	}
	d.prm = prm
	if prm.Resource != "" {
		if !resourceCovers(prm.Resource, serverURL) {
			return nil, fmt.Errorf("%w: protected resource metadata names resource %q, which does not match MCP server %s", ErrDiscovery, prm.Resource, serverURL)
		}
		d.resource = prm.Resource
	}
	if len(prm.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("%w: protected resource metadata of %s lists no authorization_servers", ErrDiscovery, serverURL)
	}
	// RFC 9728 §7.6 leaves the choice to the client: take the first one
	// that works.
	var errs []error
	for _, issuer := range prm.AuthorizationServers {
		as, err := e.fetchServerMetadata(ctx, issuer, false)
		if err == nil {
			err = e.checkServerMetadata(as)
		}
		if err == nil {
			d.as = as
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// fetchResourceMetadata tries the challenge's resource_metadata URL, then
// the path-based and the root well-known URLs. It returns nil, nil when
// none exists.
func (e *Engine) fetchResourceMetadata(ctx context.Context, su *url.URL, fromChallenge string) (*resourceMetadata, error) {
	var candidates []string
	if fromChallenge != "" {
		if _, err := parseEndpoint("resource_metadata URL", fromChallenge); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
		}
		candidates = append(candidates, fromChallenge)
	}
	if p := strings.TrimSuffix(su.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, origin(su)+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin(su)+"/.well-known/oauth-protected-resource")
	for _, u := range slices.Compact(candidates) {
		var prm resourceMetadata
		err := e.getJSON(ctx, u, &prm)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: protected resource metadata: %w", ErrDiscovery, err)
		}
		return &prm, nil
	}
	return nil, nil
}

// serverMetadataURLs lists where RFC 8414 and OpenID metadata may live for
// an issuer, in the order the MCP spec prescribes.
func serverMetadataURLs(issuer *url.URL) []string {
	o := origin(issuer)
	p := strings.TrimSuffix(issuer.EscapedPath(), "/")
	if p == "" {
		return []string{o + "/.well-known/oauth-authorization-server", o + "/.well-known/openid-configuration"}
	}
	return []string{
		o + "/.well-known/oauth-authorization-server" + p,
		o + "/.well-known/openid-configuration" + p,
		o + p + "/.well-known/openid-configuration",
	}
}

// fetchServerMetadata returns the metadata of issuer, or an error wrapping
// errNotFound when no candidate URL has any.
//
// The metadata must name issuer as its issuer (RFC 8414 §3.3), except for
// a 2025-03-26 server (legacy): there issuer is only the MCP server's
// origin, where that spec says the metadata lives, and the authorization
// server's real issuer may have a path (such as origin/oauth). It must
// still be on that origin, so a server cannot pass itself off as another
// authorization server, whose pre-registered client secret would then be
// sent to its token endpoint.
func (e *Engine) fetchServerMetadata(ctx context.Context, issuer string, legacy bool) (*serverMetadata, error) {
	iu, err := parseEndpoint("authorization server", issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	for _, u := range serverMetadataURLs(iu) {
		var md serverMetadata
		err := e.getJSON(ctx, u, &md)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: authorization server metadata: %w", ErrDiscovery, err)
		}
		if md.Issuer == "" {
			md.Issuer = issuer
		}
		if normalizeIssuer(md.Issuer) != normalizeIssuer(issuer) && (!legacy || !sameOrigin(md.Issuer, issuer)) {
			return nil, fmt.Errorf("%w: metadata at %s names issuer %q, want %q", ErrDiscovery, u, md.Issuer, issuer)
		}
		return &md, nil
	}
	return nil, fmt.Errorf("%w: no authorization server metadata for %s: %w", ErrDiscovery, issuer, errNotFound)
}

// checkServerMetadata refuses an authorization server we cannot use safely.
func (e *Engine) checkServerMetadata(md *serverMetadata) error {
	if !slices.Contains(md.CodeChallengeMethodsSupported, "S256") {
		return fmt.Errorf("%w: authorization server %s does not advertise PKCE S256 (code_challenge_methods_supported)", ErrDiscovery, md.Issuer)
	}
	if _, err := parseEndpoint("authorization_endpoint", md.AuthorizationEndpoint); err != nil {
		return fmt.Errorf("%w: authorization server %s: %w", ErrDiscovery, md.Issuer, err)
	}
	if _, err := parseEndpoint("token_endpoint", md.TokenEndpoint); err != nil {
		return fmt.Errorf("%w: authorization server %s: %w", ErrDiscovery, md.Issuer, err)
	}
	for name, v := range map[string]string{"registration_endpoint": md.RegistrationEndpoint, "revocation_endpoint": md.RevocationEndpoint} {
		if v == "" {
			continue
		}
		if _, err := parseEndpoint(name, v); err != nil {
			return fmt.Errorf("%w: authorization server %s: %w", ErrDiscovery, md.Issuer, err)
		}
	}
	return nil
}

// getJSON fetches a metadata document. 4xx answers are errNotFound (servers
// answer 404, 400 or 405 for paths they do not serve); anything else that
// is not a 200 JSON object is an error.
func (e *Engine) getJSON(ctx context.Context, rawURL string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("error fetching %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return fmt.Errorf("error reading %s: %w", rawURL, err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return fmt.Errorf("%s answered HTTP %d: %w", rawURL, resp.StatusCode, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", rawURL, resp.StatusCode)
	}
	if len(body) > maxMetadataBytes {
		return fmt.Errorf("%s: document larger than %d bytes", rawURL, maxMetadataBytes)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && !strings.Contains(mt, "json") {
		// An HTML page for an unknown path (single-page apps) is as good
		// as a 404.
		return fmt.Errorf("%s answered %s, not JSON: %w", rawURL, mt, errNotFound)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("error decoding %s: %w", rawURL, err)
	}
	return nil
}

// probeChallenge sends an unauthenticated MCP initialize request to the
// server and returns the WWW-Authenticate header of a 401 or 403 answer,
// or "" (for any other answer or failure: discovery then tries the
// well-known URLs).
func (e *Engine) probeChallenge(ctx context.Context, serverURL string) string {
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},` +
		`"clientInfo":{"name":"mcpidp","version":"1.0.0"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, strings.NewReader(body))
	if err != nil {
		return ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := e.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return ""
	}
	return strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
}
