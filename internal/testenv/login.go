package testenv

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
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

// maxLoginHops bounds the redirects a Browser follows.
const maxLoginHops = 10

// FollowLogin plays the user's browser: it opens the login link in a fresh Browser and follows
// every redirect (mcpidp → authorization server → mcpidp's callback), and returns the final
// page's status and body.
func FollowLogin(t testing.TB, link string) (status int, body string) {
	t.Helper()
	return NewBrowser(t).FollowLogin(t, link)
}

// Browser plays one user's browser: it keeps the cookies it is given (mcpidp binds each login
// to the browser that opened the link with one) and follows redirects one by one.
type Browser struct {
	client *http.Client
	// last is the URL of the last page follow opened.
	last *url.URL
}

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("testenv: error making a cookie jar: %v", err)
	}
	return &Browser{client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// FollowLogin opens link and follows every redirect, and returns the final page's status and
// body.
func (b *Browser) FollowLogin(t testing.TB, link string) (status int, body string) {
	t.Helper()
	status, body, _ = b.follow(t, link, "")
	return status, body
}

// Allow plays a user who opens link and, on the consent page the
// authorization server shows, clicks its Allow button: it follows redirects
// to the page, submits the page's form as that button does, and follows
// the redirects from there (back through mcpidp's callback). It returns the
// final page's status and body. A page without a form with an Allow
// button fails the test.
func (b *Browser) Allow(t testing.TB, link string) (status int, body string) {
	t.Helper()
	return b.Click(t, link, "Allow")
}

// Click is Allow with the button labelled label (say "Deny").
func (b *Browser) Click(t testing.TB, link, label string) (status int, body string) {
	t.Helper()
	status, body, _ = b.follow(t, link, "")
	page := b.last
	action, form, ok := buttonForm(body, label)
	if !ok {
		t.Fatalf("testenv: %s led to a page (%d) with no form that has a %s button: %s", link, status, label, body)
	}
	target, err := page.Parse(action)
	if err != nil {
		t.Fatalf("testenv: the consent form's action %q: %v", action, err)
	}
	resp, err := b.client.PostForm(target.String(), form)
	if err != nil {
		t.Fatalf("testenv: error submitting the consent form to %s: %v", target, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("testenv: the consent form at %s answered %d, want a redirect", target, resp.StatusCode)
	}
	next, err := resp.Location()
	if err != nil {
		t.Fatalf("testenv: redirect from %s without a usable Location: %v", target, err)
	}
	status, body, _ = b.follow(t, next.String(), "")
	return status, body
}

// buttonForm finds the first form in page that has a button labelled
// label, and returns its action and the values clicking that button sends:
// the form's inputs, and the button's name and value.
func buttonForm(page, label string) (action string, form url.Values, ok bool) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return "", nil, false
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "form" {
			continue
		}
		form = url.Values{}
		found := false
		for c := range n.Descendants() {
			if c.Type != html.ElementNode {
				continue
			}
			switch {
			case c.Data == "input" && attr(c, "type") != "submit" && attr(c, "name") != "":
				form.Add(attr(c, "name"), attr(c, "value"))
			case c.Data == "button" && !found && strings.EqualFold(strings.TrimSpace(text(c)), label):
				found = true
				if attr(c, "name") != "" {
					form.Add(attr(c, "name"), attr(c, "value"))
				}
			}
		}
		if found {
			return attr(n, "action"), form, true
		}
	}
	return "", nil, false
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			sb.WriteString(c.Data)
		}
	}
	return sb.String()
}

// FollowUntil opens link and follows redirects until one leads to a URL that starts with
// prefix, and returns that URL without opening it: say the callback URL with the
// authorization server's answer, for another browser to open.
func (b *Browser) FollowUntil(t testing.TB, link, prefix string) string {
	t.Helper()
	status, body, stopped := b.follow(t, link, prefix)
	if stopped == "" {
		t.Fatalf("testenv: %s never redirected to %s; the last page said %d %s", link, prefix, status, body)
	}
	return stopped
}

// follow opens link and follows redirects until a page is not a redirect, or until the next URL
// starts with stop (when stop is set), which it returns unopened.
func (b *Browser) follow(t testing.TB, link, stop string) (status int, body, stopped string) {
	t.Helper()
	u := link
	for range maxLoginHops {
		if stop != "" && strings.HasPrefix(u, stop) {
			return 0, "", u
		}
		resp, err := b.client.Get(u)
		if err != nil {
			t.Fatalf("testenv: error opening %s: %v", u, err)
		}
		b.last = resp.Request.URL
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("testenv: error reading %s: %v", u, err)
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode, string(raw), ""
		}
		next, err := resp.Location()
		if err != nil {
			t.Fatalf("testenv: redirect from %s without a usable Location: %v", u, err)
		}
		u = next.String()
	}
	t.Fatalf("testenv: more than %d redirects from %s", maxLoginHops, link)
	return 0, "", ""
}
