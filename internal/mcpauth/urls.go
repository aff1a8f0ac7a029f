package mcpauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CanonicalServerURL returns the canonical URI of an MCP server (MCP
// authorization spec, "Canonical Server URI"; RFC 8707 §2): an absolute
// http(s) URL with lowercase scheme and host, no default port, no
// fragment, no user info, no query, the path kept as given except that a
// path of only "/" is dropped. Tokens are keyed by this form and it is the
// resource indicator sent to authorization servers.
//
// The query is not part of a server's identity: it often carries a key
// (…/mcp?api_key=…) that must go neither to authorization servers nor into
// the token store, and RFC 8707 §2 advises resource indicators without
// one. Two URLs that differ only in their query are one server, with one
// login per user.
func CanonicalServerURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("invalid MCP server URL %q: %w", raw, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("invalid MCP server URL %q: want an absolute http or https URL", raw)
	}
	if u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("invalid MCP server URL %q: no host", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("invalid MCP server URL %q: credentials in the URL are not allowed", raw)
	}
	host, port := u.Hostname(), u.Port()
	host = strings.ToLower(host)
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	u.Host = host
	u.Fragment, u.RawFragment = "", ""
	u.RawQuery, u.ForceQuery = "", false
	if u.Path == "/" {
		u.Path, u.RawPath = "", ""
	}
	return u.String(), nil
}

// origin returns scheme://host of an absolute URL.
func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

// sameOrigin reports whether two absolute URLs have the same scheme and
// host.
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host != "" &&
		strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}

// normalizeIssuer makes issuers comparable: RFC 8414 issuers have no
// trailing slash, but some servers write one.
func normalizeIssuer(s string) string { return strings.TrimSuffix(s, "/") }

// resourceCovers reports whether the protected-resource metadata's
// resource identifier may stand for serverURL: same origin, and its path a
// prefix of the server's path at a segment boundary (the MCP SDKs' rule).
func resourceCovers(resource, serverURL string) bool {
	r, err1 := url.Parse(resource)
	s, err2 := url.Parse(serverURL)
	if err1 != nil || err2 != nil {
		return false
	}
	if !strings.EqualFold(r.Scheme, s.Scheme) || !strings.EqualFold(r.Host, s.Host) {
		return false
	}
	rp, sp := strings.TrimSuffix(r.Path, "/")+"/", strings.TrimSuffix(s.Path, "/")+"/"
	return strings.HasPrefix(sp, rp)
}

// Challenge is a parsed Bearer challenge from a WWW-Authenticate header
// (RFC 6750 §3, RFC 9728 §5.1).
type Challenge struct {
	// ResourceMetadata is the protected-resource metadata URL, if given.
	ResourceMetadata string
	// Scopes are the scopes the server asks for, if given.
	Scopes []string
	// Error is the error code, such as "invalid_token" or
	// "insufficient_scope".
	Error            string
	ErrorDescription string
}

// InsufficientScope reports whether this is a step-up challenge.
func (c Challenge) InsufficientScope() bool { return c.Error == "insufficient_scope" }

// ParseChallenge reads the Bearer challenge in a WWW-Authenticate header
// value (several headers may be joined with ", "). Challenges for other
// schemes are skipped. An empty or unparsable header gives a zero
// Challenge: discovery then falls back to the well-known URLs.
func ParseChallenge(header string) Challenge {
	var c Challenge
	params, ok := bearerParams(header)
	if !ok {
		return c
	}
	c.ResourceMetadata = params["resource_metadata"]
	c.Scopes = strings.Fields(params["scope"])
	c.Error = params["error"]
	c.ErrorDescription = params["error_description"]
	return c
}

// bearerParams returns the auth-params of the first Bearer challenge.
func bearerParams(header string) (map[string]string, bool) {
	p := &challengeParser{s: header}
	var (
		params   map[string]string
		inBearer bool
		found    bool
	)
	for {
		p.skipSpaceAndCommas()
		if p.done() {
			break
		}
		token := p.token()
		if token == "" {
			// Garbage: skip a character and keep going.
			p.i++
			continue
		}
		p.skipSpace()
		if p.peek() == '=' {
			// An auth-param of the current challenge (or token68).
			p.i++
			p.skipSpace()
			var value string
			if p.peek() == '"' {
				value = p.quoted()
			} else {
				value = p.token()
				// token68 may end in '='.
				for p.peek() == '=' {
					p.i++
				}
			}
			if inBearer {
				name := strings.ToLower(token)
				if _, dup := params[name]; !dup {
					params[name] = value
				}
			}
			continue
		}
		// A new challenge: scheme name.
		if found && inBearer {
			break
		}
		inBearer = strings.EqualFold(token, "Bearer")
		if inBearer {
			found = true
			params = map[string]string{}
		}
	}
	return params, found
}

type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) done() bool { return p.i >= len(p.s) }

func (p *challengeParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *challengeParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *challengeParser) skipSpaceAndCommas() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// token reads an RFC 9110 token (plus the token68 characters / + . ~).
func (p *challengeParser) token() string {
	start := p.i
	for !p.done() {
		c := p.s[p.i]
		if c == ' ' || c == '\t' || c == ',' || c == '=' || c == '"' {
			break
		}
		p.i++
	}
	return p.s[start:p.i]
}

func (p *challengeParser) quoted() string {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if !p.done() {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var errNoScheme = errors.New("want an absolute https URL")

// parseEndpoint parses an endpoint URL from metadata: absolute http(s), no
// fragment.
func parseEndpoint(name, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid %s %q: %w", name, raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid %s %q: %w", name, raw, errNoScheme)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("invalid %s %q: fragments are not allowed", name, raw)
	}
	return u, nil
}
