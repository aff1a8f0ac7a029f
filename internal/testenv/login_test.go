package testenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFollowLogin(t *testing.T) {
	t.Parallel()

	// Two servers stand in for mcpidp and the authorization server: start → authorize → callback.
	var mu sync.Mutex
	var visited []string
	visit := func(step string) {
		mu.Lock()
		defer mu.Unlock()
		visited = append(visited, step)
	}
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		visit("authorize")
		http.Redirect(w, r, r.URL.Query().Get("redirect_uri")+"?code=c1", http.StatusSeeOther)
	}))
	t.Cleanup(auth.Close)
	var app *httptest.Server
	app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth/start/abc":
			visit("start")
			http.SetCookie(w, &http.Cookie{Name: "browser", Value: "b1", Path: "/oauth/callback", HttpOnly: true})
			http.Redirect(w, r, auth.URL+"/authorize?redirect_uri="+app.URL+"/oauth/callback", http.StatusFound)
		case "/oauth/callback":
			visit("callback")
			cookie := "none"
			if c, err := r.Cookie("browser"); err == nil {
				cookie = c.Value
			}
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("denied, code " + r.URL.Query().Get("code") + ", cookie " + cookie))
		}
	}))
	t.Cleanup(app.Close)

	status, body := FollowLogin(t, app.URL+"/oauth/start/abc")
	require.Equal(t, http.StatusForbidden, status, "the final page's status, whatever it is")
	require.Equal(t, "denied, code c1, cookie b1", body, "the cookie set at the start comes back")
	mu.Lock()
	require.Equal(t, []string{"start", "authorize", "callback"}, visited)
	mu.Unlock()

	// One browser stops before the callback; the answer opened in another
	// browser comes without the first one's cookie, and in the first with it.
	a := NewBrowser(t)
	callback := a.FollowUntil(t, app.URL+"/oauth/start/abc", app.URL+"/oauth/callback")
	require.Equal(t, app.URL+"/oauth/callback?code=c1", callback)
	_, body = NewBrowser(t).FollowLogin(t, callback)
	require.Equal(t, "denied, code c1, cookie none", body)
	_, body = a.FollowLogin(t, callback)
	require.Equal(t, "denied, code c1, cookie b1", body)
}

func TestStartOAuthExample(t *testing.T) {
	t.Parallel()

	url := StartOAuthExample(t)
	require.True(t, strings.HasPrefix(url, "http://localhost:"), url)
	require.True(t, strings.HasSuffix(url, "/mcp"), url)
	// The server is protected: a request without a token gets the OAuth challenge.
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
}
