package app_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// connectLink asks the Connections API for the user's login link.
func connectLink(t *testing.T, env *testEnv, user, serverURL string) string {
	t.Helper()
	status, raw, _ := call(t, "POST", env.URL+"/v1/connections", keyAcme, map[string]any{"user": user, "server_url": serverURL})
	require.Equal(t, http.StatusOK, status, string(raw))
	var connect struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	require.NoError(t, json.Unmarshal(raw, &connect))
	return connect.AuthorizationURL
}

// connectionStatuses lists the user's connections' statuses.
func connectionStatuses(t *testing.T, env *testEnv, user string) []string {
	t.Helper()
	status, raw, _ := call(t, "GET", env.URL+"/v1/connections?user="+user, keyAcme, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	var conns struct {
		Data []struct{ Status string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &conns))
	out := []string{}
	for _, c := range conns.Data {
		out = append(out, c.Status)
	}
	return out
}

// Login CSRF through the real /oauth/start and /oauth/callback: browser A
// opens alice's login link and approves; the answer, opened in browser B,
// connects nothing and says why; A then finishes the login with it.
func TestLoginAnswerOpenedInAnotherBrowser(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		link := connectLink(t, env, "alice", mcp.URL)

		a := testenv.NewBrowser(t)
		callback := a.FollowUntil(t, link, env.URL+"/oauth/callback")
		status, page := testenv.NewBrowser(t).FollowLogin(t, callback)
		require.Equal(t, http.StatusBadRequest, status, page)
		require.Contains(t, page, "This login was started in another browser")
		require.Contains(t, page, "Open the login link again in this browser")
		require.Equal(t, 0, as.Count("token"), "the code was not exchanged")
		require.Empty(t, connectionStatuses(t, env, "alice"))

		status, page = a.FollowLogin(t, callback)
		require.Equal(t, http.StatusOK, status, page)
		require.Contains(t, page, "You&#39;ve authorized")
		require.Equal(t, []string{"active"}, connectionStatuses(t, env, "alice"))
	})
}

// A code the authorization server refuses: the page says what it answered,
// and the log has it at warn, with nothing secret.
func TestFailedCodeExchangeIsShownAndLogged(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		var logs testenv.SyncBuffer
		env := startEnv(t, databaseURL, func(eo *envOpts) {
			eo.opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		link := connectLink(t, env, "alice", mcp.URL)

		a := testenv.NewBrowser(t)
		callback, err := url.Parse(a.FollowUntil(t, link, env.URL+"/oauth/callback"))
		require.NoError(t, err)
		q := callback.Query()
		state := q.Get("state")
		q.Set("code", "not-a-code")
		callback.RawQuery = q.Encode()
		status, page := a.FollowLogin(t, callback.String())
		require.Equal(t, http.StatusBadGateway, status, page)
		require.Contains(t, page, "did not accept the login code: invalid_grant (unknown code)")
		require.Equal(t, 1, as.Count("token"))
		require.Empty(t, connectionStatuses(t, env, "alice"))

		var line string
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "authorization code exchange failed") {
				line = l
			}
		}
		require.NotEmpty(t, line, logs.String())
		require.Contains(t, line, "level=WARN")
		require.Contains(t, line, "error=invalid_grant")
		require.Contains(t, line, `error_description="unknown code"`)
		require.Contains(t, line, "status=400")
		require.NotContains(t, logs.String(), state)
	})
}
