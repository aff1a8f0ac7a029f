package mcpauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseChallenge reads arbitrary WWW-Authenticate values without panicking, and gives back the
// parameters of a Bearer challenge built from any values, after any other challenge.
func FuzzParseChallenge(f *testing.F) {
	for _, seed := range [][4]string{
		{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="a b"`, "https://mcp.example.com/prm", "read write", "insufficient_scope"},
		{`Basic realm="x", Bearer error="invalid_token", error_description="the token \"expired\""`, "", "", "invalid_token"},
		{`Bearer`, `a\"b`, "  ", ""}, {`DPoP algs="ES256", Bearer scope=mcp:read`, "", "x", "y"},
		{`Bearer realm=, ,, =, "`, "\t", "é", "\\"}, {`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`, "", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, header, resourceMetadata, scope, errorCode string) {
		c := ParseChallenge(header)
		if c.ResourceMetadata != "" && !strings.Contains(header, "=") {
			t.Fatalf("a header without parameters gave %+v", c)
		}

		for _, s := range []string{resourceMetadata, scope, errorCode} {
			if !quotable(s) {
				return
			}
		}
		built := `Basic realm="other", Bearer resource_metadata=` + quote(resourceMetadata) + `, scope=` + quote(scope) +
			`, error=` + quote(errorCode) + `, Bearer scope="not this one"`
		got := ParseChallenge(built)
		if got.ResourceMetadata != resourceMetadata || got.Error != errorCode || !slices.Equal(got.Scopes, strings.Fields(scope)) {
			t.Fatalf("%s\nparsed as %+v", built, got)
		}
	})
}

// quotable reports whether s can be an RFC 9110 quoted-string: tabs, spaces, visible ASCII and
// UTF-8 (obs-text).
func quotable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && (c < 0x20 || c == 0x7f) {
			return false
		}
	}
	return true
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// FuzzDiscovery runs discovery against a server whose protected-resource metadata and
// authorization-server metadata are arbitrary documents. It must fail with an ErrDiscovery error
// (a clear login error), or find an authorization server mcpidp can use safely: PKCE S256, http(s)
// endpoints without fragments, a resource that covers the MCP server, an issuer that is the one
// the metadata named.
func FuzzDiscovery(f *testing.F) {
	const prm = `{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"],"scopes_supported":["read"]}`
	const as = `{"issuer":"https://auth.example.com","authorization_endpoint":"https://auth.example.com/authorize",` +
		`"token_endpoint":"https://auth.example.com/token","registration_endpoint":"https://auth.example.com/register",` +
		`"code_challenge_methods_supported":["S256"]}`
	for _, seed := range [][3]string{
		{prm, as, ""},
		{"", `{"issuer":"https://mcp.example.com","authorization_endpoint":"https://mcp.example.com/oauth/authorize","token_endpoint":"https://mcp.example.com/oauth/token","code_challenge_methods_supported":["S256"]}`, ""},
		{`{"resource":"https://mcp.example.com/","authorization_servers":["https://auth.example.com/tenant/1","https://auth.example.com"]}`, as, `Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`},
		{`{"resource":"https://evil.example.com/mcp","authorization_servers":["https://auth.example.com"]}`, as, ""},
		{prm, `{"issuer":"https://auth.example.com","authorization_endpoint":"javascript:alert(1)","token_endpoint":"https://auth.example.com/token#x","code_challenge_methods_supported":["plain"]}`, ""},
		{`{"authorization_servers":[]}`, `[]`, `Bearer resource_metadata="http://[::1"`}, {`null`, `{"issuer":1}`, ""},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]), seed[2])
	}
	const serverURL = "https://mcp.example.com/mcp"
	f.Fuzz(func(t *testing.T, prmDoc, asDoc []byte, challenge string) {
		e := &Engine{client: &http.Client{Transport: documents{prm: prmDoc, as: asDoc}}}
		d, err := e.discover(context.Background(), serverURL, ParseChallenge(challenge))
		if err != nil {
			if !errors.Is(err, ErrDiscovery) {
				t.Fatalf("discovery failed with %v, not an ErrDiscovery", err)
			}
			return
		}
		if !resourceCovers(d.resource, serverURL) {
			t.Fatalf("resource %q does not cover %s", d.resource, serverURL)
		}
		if err := e.checkServerMetadata(d.as); err != nil {
			t.Fatalf("unusable authorization server accepted: %v", err)
		}
		if d.prm != nil && !slices.ContainsFunc(d.prm.AuthorizationServers, func(s string) bool { return normalizeIssuer(s) == normalizeIssuer(d.as.Issuer) }) {
			t.Fatalf("issuer %q is none of %q", d.as.Issuer, d.prm.AuthorizationServers)
		}
		if d.prm == nil && !sameOrigin(d.as.Issuer, serverURL) {
			t.Fatalf("a server without resource metadata got the authorization server %q of another origin", d.as.Issuer)
		}
	})
}

// documents answers every protected-resource metadata URL with prm and every authorization-server
// metadata URL with as (an empty document is a 404), without a network.
type documents struct{ prm, as []byte }

func (d documents) RoundTrip(req *http.Request) (*http.Response, error) {
	var doc []byte
	switch path := req.URL.Path; {
	case strings.Contains(path, "oauth-protected-resource"):
		doc = d.prm
	case strings.Contains(path, "oauth-authorization-server"), strings.Contains(path, "openid-configuration"):
		doc = d.as
	}
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(string(doc))), Request: req}
	if len(doc) == 0 {
		resp.StatusCode = http.StatusNotFound
	}
	return resp, nil
}
