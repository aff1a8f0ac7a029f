package mcpclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// AuthorizeFunc prepares one outgoing HTTP request to an MCP server, typically by setting its
// Authorization header to "Bearer <access token>". It is called for every request of a session
// (the initialize POST, every later POST, the legacy SSE stream's GET), after the Server's static
// headers are applied, on a clone of the request that it may modify freely. serverURL is the
// Server.URL the session was opened for, which is not always req.URL: the legacy SSE transport
// posts to an endpoint the server names.
//
// The OAuth engine (internal/mcpauth) provides it: it looks up the (tenant, user, server) token,
// refreshes it when it is about to expire, and sets the header. When no usable token exists it can
// return an *AuthChallengeError without sending anything; Connect, Tools and CallTool then return
// that error as is, exactly as if the server had answered 401.
type AuthorizeFunc func(ctx context.Context, serverURL string, req *http.Request) error

// UnauthorizedFunc is told that the MCP server answered 401 to a request of a session (the
// initialize handshake, the legacy SSE stream, tools/list or tools/call). authorization is the
// Authorization header that request carried ("" for none). It reports whether sending the request
// once more can succeed: the token was refreshed, or a login stored one since. A 401 means the
// server refused the request before acting on it, so the retry cannot run a tool twice. When it
// reports false with an error, the credentials could not be renewed (a token refresh failed): the
// error is kept in the challenge's RenewErr.
//
// The OAuth engine (internal/mcpauth) provides it: the token that was refused is marked expired
// and refreshed under the connection's refresh lease.
type UnauthorizedFunc func(ctx context.Context, serverURL, authorization string) (bool, error)

// AuthChallengeError reports that an MCP server wants (more) authorization: it answered 401, or 403
// with a WWW-Authenticate challenge whose error is "insufficient_scope". The OAuth engine reads
// WWWAuthenticate for the resource_metadata URL and the scope to ask for.
type AuthChallengeError struct {
	// ServerURL is the Server.URL of the session.
	ServerURL string
	// StatusCode is 401 or 403.
	StatusCode int
	// WWWAuthenticate is the response's WWW-Authenticate header; several are joined with ", ".
	WWWAuthenticate string
	// RenewErr, for a 401, is why the refused credentials could not be renewed (see
	// UnauthorizedFunc): the user's login may still be good, and a later token refresh can answer
	// the challenge as well as a new login.
	RenewErr error
}

func (e *AuthChallengeError) Error() string {
	if e.WWWAuthenticate == "" {
		return fmt.Sprintf("MCP server %s requires authorization (HTTP %d)", e.ServerURL, e.StatusCode)
	}
	return fmt.Sprintf("MCP server %s requires authorization (HTTP %d, WWW-Authenticate: %s)", e.ServerURL, e.StatusCode, e.WWWAuthenticate)
}

// insufficientScopeRE matches an auth-param error="insufficient_scope" (RFC 6750 §3) in a
// WWW-Authenticate header, quoted or not.
var insufficientScopeRE = regexp.MustCompile(`(?i)(?:^|[\s,])error\s*=\s*"?insufficient_scope"?(?:$|[\s,])`)

// challengeFromResponse returns the challenge a response carries, or nil.
func challengeFromResponse(serverURL string, resp *http.Response) *AuthChallengeError {
	header := strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
	case resp.StatusCode == http.StatusForbidden && insufficientScopeRE.MatchString(header):
	default:
		return nil
	}
	return &AuthChallengeError{ServerURL: serverURL, StatusCode: resp.StatusCode, WWWAuthenticate: header}
}

// challengeRecorder collects the first authorization challenge seen by the HTTP requests of one
// logical operation (Connect, Tools, CallTool). mcp-go flattens a 403 into a generic error (and on
// initialize into "legacy SSE server"), so the status is taken from the wire instead. A recorder
// travels in the request context, which keeps concurrent calls on one session apart.
type challengeRecorder struct {
	mu            sync.Mutex
	challenge     *AuthChallengeError
	authorization string // the Authorization header of the request challenged
	refused       int    // the status of a POST answered 400 or 404
	// accepted is set once a POST was answered 2xx: the server took the request, so a later
	// failure on the way back (a 404 or 401 on the GET that resumes its stream) does not mean
	// it was refused, and sending it again could run a tool twice.
	accepted bool
}

type recorderKey struct{}

func withRecorder(ctx context.Context) (context.Context, *challengeRecorder) {
	rec := &challengeRecorder{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

func (r *challengeRecorder) observe(c *AuthChallengeError, authorization string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.challenge == nil {
		r.challenge, r.authorization = c, authorization
	}
}

func (r *challengeRecorder) accept() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = true
}

// wasAccepted reports whether a POST of the operation was answered 2xx.
func (r *challengeRecorder) wasAccepted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

func (r *challengeRecorder) refuse(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = status
}

// sent returns the Authorization header of the request challenged.
func (r *challengeRecorder) sent() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.authorization
}

// refusedStatus returns the status of a POST answered 400 or 404, or 0.
func (r *challengeRecorder) refusedStatus() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

func (r *challengeRecorder) get() *AuthChallengeError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.challenge
}

// reservedHeaders are set by the MCP transports; a caller-supplied header must not replace them.
var reservedHeaders = map[string]bool{
	"Accept":               true,
	"Cache-Control":        true,
	"Connection":           true,
	"Content-Length":       true,
	"Content-Type":         true,
	"Host":                 true,
	"Last-Event-Id":        true,
	"Mcp-Protocol-Version": true,
	"Mcp-Session-Id":       true,
	"Transfer-Encoding":    true,
}

// validateHeaders checks caller-supplied headers and returns them canonicalized.
func validateHeaders(headers map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(headers))
	for name, value := range headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("invalid header name %q", name)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("invalid value for header %q", name)
		}
		canonical := http.CanonicalHeaderKey(name)
		if reservedHeaders[canonical] {
			return nil, fmt.Errorf("header %q is set by the MCP transport and cannot be overridden", name)
		}
		out[canonical] = value
	}
	return out, nil
}

// authTransport is the http.RoundTripper every request of a session goes through. It wraps the
// caller's (SSRF-guarded) transport, adds the static headers and the AuthorizeFunc's credentials,
// and reports authorization challenges to the recorder in the request context.
type authTransport struct {
	base      http.RoundTripper
	serverURL string
	headers   map[string]string
	authorize AuthorizeFunc
	limits    Limits
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Answered or failed, the standalone GET no longer holds back a call waiting for it.
	defer listenOf(ctx, req).mark()
	// A RoundTripper must not modify the request it was given.
	req = req.Clone(ctx)
	if !sameOrigin(req.URL, t.serverURL) {
		// A redirect (or an SSE endpoint) elsewhere: the user's token and
		// the caller's headers belong to the server alone. Go's client
		// copies custom headers to redirects, so take them off too.
		for name := range t.headers {
			req.Header.Del(name)
		}
		req.Header.Del("Authorization")
		return t.roundTrip(ctx, req)
	}
	for name, value := range t.headers {
		req.Header.Set(name, value)
	}
	if t.authorize != nil {
		if err := t.authorize(ctx, t.serverURL, req); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, fmt.Errorf("error authorizing request to MCP server %s: %w", t.serverURL, err)
		}
	}
	return t.roundTrip(ctx, req)
}

func (t *authTransport) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rec, _ := ctx.Value(recorderKey{}).(*challengeRecorder)
	if rec == nil {
		return resp, nil
	}
	if challenge := challengeFromResponse(t.serverURL, resp); challenge != nil {
		rec.observe(challenge, req.Header.Get("Authorization"))
	}
	if req.Method == http.MethodPost {
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			rec.accept()
		case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound:
			rec.refuse(resp.StatusCode)
		}
	}
	t.boundBody(ctx, resp)
	return resp, nil
}

// sameOrigin reports whether u has the scheme, host and port of serverURL.
func sameOrigin(u *url.URL, serverURL string) bool {
	s, err := url.Parse(serverURL)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, s.Scheme) && strings.EqualFold(u.Hostname(), s.Hostname()) && port(u) == port(s)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}
