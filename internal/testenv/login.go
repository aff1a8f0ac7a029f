package testenv

import (
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
)

// StartOAuthExample runs the OAuth-protected example server shipped in @modelcontextprotocol/sdk,
// with its demo authorization server (which approves every request), and returns the MCP URL
// (http://localhost:PORT/mcp) once both accept connections.
func StartOAuthExample(t testing.TB) string {
	t.Helper()
	mcpPort, authPort := FreePort(t), FreePort(t)
	script := filepath.Join(NodeDir(t), "node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js")
	StartProcess(t, Node22(t), []string{script, "--oauth"},
		[]string{"MCP_PORT=" + strconv.Itoa(mcpPort), "MCP_AUTH_PORT=" + strconv.Itoa(authPort)},
		func() bool { return PortReady(mcpPort)() && PortReady(authPort)() })
	return "http://localhost:" + strconv.Itoa(mcpPort) + "/mcp"
}

// maxLoginHops bounds the redirects FollowLogin follows.
const maxLoginHops = 10

// FollowLogin plays the user's browser: it opens the login link and follows every redirect
// (mcpidp → authorization server → mcpidp's callback), and returns the final page's status and
// body.
func FollowLogin(t testing.TB, link string) (status int, body string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := link
	for range maxLoginHops {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("testenv: error opening %s: %v", u, err)
		}
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("testenv: error reading %s: %v", u, err)
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode, string(raw)
		}
		next, err := resp.Location()
		if err != nil {
			t.Fatalf("testenv: redirect from %s without a usable Location: %v", u, err)
		}
		u = next.String()
	}
	t.Fatalf("testenv: more than %d redirects from %s", maxLoginHops, link)
	return 0, ""
}
