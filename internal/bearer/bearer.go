// Package bearer reads bearer credentials from HTTP headers, in one way for
// every header mcpidp accepts them in: Authorization (API keys, the admin
// key, the MCP session's own token) and X-Upstream-Authorization (the
// caller's model key). The scheme is case-insensitive (RFC 7235 section
// 2.1) and separated from the token by one or more spaces (RFC 6750 section
// 2.1); whitespace around the header is ignored.
package bearer

import "strings"

// Token returns the token of a "Bearer <token>" header value. ok is false
// when the value uses another scheme or carries no token.
func Token(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(rest)
	return token, token != ""
}

// Key returns the key of a header that may hold "Bearer <key>" or the bare
// key (X-Upstream-Authorization, CallOptions.APIKey): the token when the
// value has the Bearer scheme, else the whole value, trimmed.
func Key(header string) string {
	if token, ok := Token(header); ok {
		return token
	}
	return strings.TrimSpace(header)
}
