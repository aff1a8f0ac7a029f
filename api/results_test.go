package api_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/api"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
)

// resultsBundle is the API over a fresh database holding a finished task
// whose request, tool output and answer carry markup, and a task waiting
// for a login.
type resultsBundle struct {
	url      string
	done     *store.Task
	awaiting *store.Task
}

const resultsPublicURL = "https://mcpidp.example.com"

func setupResults(t *testing.T, databaseURL string) *resultsBundle {
	t.Helper()
	ctx := context.Background()
	st, _ := storetest.OpenStore(t, databaseURL, nil)
	key := make([]byte, secretbox.KeySize)
	_, _ = rand.Read(key)
	keyring, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	oauth, err := mcpauth.New(mcpauth.Config{Store: st, Keyring: keyring, HTTPClient: http.DefaultClient, PublicURL: resultsPublicURL})
	require.NoError(t, err)
	// Reading results starts no job.
	tasks, err := task.NewService(task.ServiceConfig{Store: st, Keyring: keyring, OAuth: oauth,
		RiverFunc: func() *river.Client[*sql.Tx] { return nil }, PublicURL: resultsPublicURL, Retention: time.Hour})
	require.NoError(t, err)
	a, err := api.New(api.Config{Store: st, OAuth: oauth, Tasks: tasks, PublicURL: resultsPublicURL})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	require.NoError(t, st.UpsertTenant(ctx, st.DB(), "acme", ""))
	done := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Status: store.TaskCompleted,
		Request: json.RawMessage(`{"messages":[{"role":"user","content":"Check <script>window.a=1</script> the *weather*"}]}`),
		Output:  json.RawMessage(`{"content":"It is **sunny**.\n\n<script>window.b=1</script><img src=x onerror=\"window.c=1\">"}`)}
	require.NoError(t, st.CreateTask(ctx, st.DB(), done))
	require.NoError(t, st.AppendStep(ctx, st.DB(), done.ID, 0, "model", json.RawMessage(`{"type":"model","tool_calls":[{"id":"c1","type":"function","function":{"name":"w__forecast","arguments":"{}"}}]}`)))
	require.NoError(t, st.AppendStep(ctx, st.DB(), done.ID, 1, "tool", json.RawMessage(
		`{"type":"tool","server_url":"https://weather.example.com/mcp","tool":"forecast","arguments":{"city":"<Paris>"},"output":"<script>window.d=1</script>sunny"}`)))

	logins, err := json.Marshal([]task.AuthorizationRequest{{ServerURL: "https://mcp.notion.com/mcp",
		AuthorizationURL: resultsPublicURL + "/oauth/start/login_1", ExpiresAt: time.Now().Add(time.Hour)}})
	require.NoError(t, err)
	awaiting := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Status: store.TaskAwaitingAuthorization,
		Request: json.RawMessage(`{"messages":[{"role":"user","content":"Summarize my page"}]}`), AuthorizationRequired: logins}
	require.NoError(t, st.CreateTask(ctx, st.DB(), awaiting))
	return &resultsBundle{url: srv.URL, done: done, awaiting: awaiting}
}

func getResult(t *testing.T, url, accept string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// The bare result URL is the HTML page unless Accept prefers JSON or
// markdown; .json and .md are what they say whatever Accept is.
func TestResultContentNegotiation(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setupResults(t, databaseURL)
		bare := b.url + "/r/" + b.done.ResultToken
		for _, tc := range []struct{ path, accept, contentType string }{
			{"", "", "text/html; charset=utf-8"},
			{"", "*/*", "text/html; charset=utf-8"},
			{"", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", "text/html; charset=utf-8"},
			{"", "text/html", "text/html; charset=utf-8"},
			{"", "application/json", "application/json; charset=utf-8"},
			{"", "application/json, */*;q=0.5", "application/json; charset=utf-8"},
			{"", "text/html;q=0.4, application/json;q=0.8", "application/json; charset=utf-8"},
			{"", "text/markdown", "text/markdown; charset=utf-8"},
			{"", "text/*", "text/html; charset=utf-8"},
			{"", "text/html;q=0, text/*", "text/markdown; charset=utf-8"},
			{"", "image/png", "text/html; charset=utf-8"},
			{"", "application/json;q=bogus, text/markdown;q=0.1", "text/markdown; charset=utf-8"},
			{".json", "text/html", "application/json; charset=utf-8"},
			{".md", "text/html", "text/markdown; charset=utf-8"},
		} {
			status, hdr, body := getResult(t, bare+tc.path, tc.accept)
			require.Equal(t, http.StatusOK, status, "%s %q: %s", tc.path, tc.accept, body)
			require.Equal(t, tc.contentType, hdr.Get("Content-Type"), "%s %q", tc.path, tc.accept)
			require.Equal(t, "no-store", hdr.Get("Cache-Control"))
			require.Equal(t, "noindex", hdr.Get("X-Robots-Tag"))
			if tc.path == "" {
				require.Equal(t, "Accept", hdr.Get("Vary"), "%q", tc.accept)
			}
			switch {
			case strings.HasPrefix(tc.contentType, "application/json"):
				require.Contains(t, body, `"id":"`+b.done.ID+`"`)
			case strings.HasPrefix(tc.contentType, "text/markdown"):
				require.True(t, strings.HasPrefix(body, "# Task "+b.done.ID), body)
			default:
				require.True(t, strings.HasPrefix(body, "<!doctype html>"), body)
			}
		}
	})
}

var styleNonce = regexp.MustCompile(`<style nonce="([A-Za-z0-9_-]{24})">`)

// The page escapes or sanitizes everything that came from outside, and is
// served with a strict policy whose nonce is the page's.
func TestResultPageEscapesAndLocksDown(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setupResults(t, databaseURL)
		status, hdr, body := getResult(t, b.url+"/r/"+b.done.ResultToken, "text/html")
		require.Equal(t, http.StatusOK, status, body)

		m := styleNonce.FindStringSubmatch(body)
		require.NotNil(t, m, body)
		csp := hdr.Get("Content-Security-Policy")
		require.Equal(t, "default-src 'none'; script-src 'nonce-"+m[1]+"'; style-src 'nonce-"+m[1]+"'; "+
			"img-src 'self' https://mcpidp.example.com; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", csp)
		require.NotContains(t, csp, "unsafe")
		require.Equal(t, "no-referrer", hdr.Get("Referrer-Policy"))
		require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
		require.Equal(t, "DENY", hdr.Get("X-Frame-Options"))

		require.NotContains(t, body, "<script", "a finished page runs no script, and none of the task's")
		require.NotContains(t, body, `onerror="`)
		require.Contains(t, body, "<p>It is <strong>sunny</strong>.</p>")
		require.Contains(t, body, `<img src="x">`)
		require.Contains(t, body, "<p>Check  the <em>weather</em></p>", "the request's markdown, its script removed")
		require.Contains(t, body, "<code>&lt;script&gt;window.d=1&lt;/script&gt;sunny</code>", "tool output is text")
		require.Contains(t, body, "&#34;city&#34;: &#34;&lt;Paris&gt;&#34;")
		require.Contains(t, body, `<details class="tool" data-key="step-1">`)

		// Each page gets its own nonce.
		_, hdr2, body2 := getResult(t, b.url+"/r/"+b.done.ResultToken, "")
		require.NotEqual(t, m[1], styleNonce.FindStringSubmatch(body2)[1])
		require.NotEqual(t, csp, hdr2.Get("Content-Security-Policy"))

		// The waiting task's page offers its login link and keeps itself current.
		status, _, body = getResult(t, b.url+"/r/"+b.awaiting.ResultToken, "")
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `<a class="button" data-login href="https://mcpidp.example.com/oauth/start/login_1">Log in to mcp.notion.com</a>`)
		require.Contains(t, body, `data-poll="`+b.awaiting.ResultToken+`.json"`)
		require.Regexp(t, `<script nonce="`+styleNonce.FindStringSubmatch(body)[1]+`">`, body)
	})
}

// Unknown tokens are 404 in every form: a page saying so for a browser,
// the JSON error for the rest.
func TestResultUnknownToken(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		b := setupResults(t, databaseURL)
		status, hdr, body := getResult(t, b.url+"/r/no-such-token", "")
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
		require.Contains(t, body, "This result link has expired or does not exist")
		require.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'none'")

		for _, tc := range []struct{ path, accept string }{
			{"/r/no-such-token", "application/json"},
			{"/r/no-such-token.json", ""},
			{"/r/no-such-token.md", "text/html"},
			{"/r/" + b.done.ResultToken + ".html", ""},
			{"/r/" + b.done.ResultToken + ".txt", "text/html"},
		} {
			status, hdr, body := getResult(t, b.url+tc.path, tc.accept)
			require.Equal(t, http.StatusNotFound, status, tc.path)
			require.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"), tc.path)
			require.Contains(t, body, `"code":"not_found"`, tc.path)
		}

		status, _, body = getResult(t, b.url+"/r/"+b.done.ResultToken+"?wait=soon", "")
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body, `"param":"wait"`)
	})
}
