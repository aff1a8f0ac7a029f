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
			http.Redirect(w, r, auth.URL+"/authorize?redirect_uri="+app.URL+"/oauth/callback", http.StatusFound)
		case "/oauth/callback":
			visit("callback")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("denied, code " + r.URL.Query().Get("code")))
		}
	}))
	t.Cleanup(app.Close)

	status, body := FollowLogin(t, app.URL+"/oauth/start/abc")
	require.Equal(t, http.StatusForbidden, status, "the final page's status, whatever it is")
	require.Equal(t, "denied, code c1", body)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"start", "authorize", "callback"}, visited)
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
