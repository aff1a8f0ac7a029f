package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// A key in an MCP server URL's query, or user:password@ in it, reaches the
// server but is shown nowhere: not in the task, its public results, its
// webhooks, the stored task, the chat answer, errors or logs.
func TestServerURLSecretsAreNeverShown(t *testing.T) {
	t.Parallel()
	const (
		key      = "secret123"
		password = "pw-hunter2"
	)
	backends(t, func(t *testing.T, databaseURL string) {
		logs := &testenv.SyncBuffer{}
		env := startEnv(t, databaseURL, func(o *envOpts) {
			o.opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		hooks := newHookReceiver(t, "")
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		target, err := url.Parse(mcp.URL)
		require.NoError(t, err)
		target.Path = ""
		// The server wants both the key and the Basic credentials on every
		// request.
		// With breakCalls it drops the connection of every tool call, so
		// that the HTTP client's error (which names the URL dialed) becomes
		// the tool's output.
		var allowed atomic.Int64
		var breakCalls atomic.Bool
		gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pw, ok := r.BasicAuth()
			if r.URL.Query().Get("api_key") != key || !ok || user != "user" || pw != password {
				http.Error(w, "key and credentials required", http.StatusForbidden)
				return
			}
			allowed.Add(1)
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if breakCalls.Load() && bytes.Contains(body, []byte(`"tools/call"`)) {
				conn, _, err := http.NewResponseController(w).Hijack()
				require.NoError(t, err)
				conn.Close()
				return
			}
			httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
		}))
		t.Cleanup(gate.Close)
		host := strings.TrimPrefix(gate.URL, "http://")
		secretURL := "http://user:" + password + "@" + host + "/mcp?api_key=" + key
		shownURL := "http://" + host + "/mcp?…"
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		downURL := "http://user:" + password + "@" + ln.Addr().String() + "/mcp?api_key=" + key
		require.NoError(t, ln.Close())

		var shown []string // everything checked for the secrets at the end
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"hi"}`))
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "echo hi",
			"tools": []map[string]any{{"type": "mcp", "url": secretURL}}, "webhook": map[string]string{"url": hooks.URL}})
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, []string{"hi"}, mcp.Calls("echo"))
		require.Positive(t, allowed.Load(), "the server got its key and credentials")
		require.Equal(t, shownURL, done.Steps[1].ServerURL, "the step names the server by its redacted URL")
		shown = append(shown, string(hooks.wait(t, "task.completed", 0).Body))

		breakCalls.Store(true)
		broken := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "echo hi",
			"tools": []map[string]any{{"type": "mcp", "url": secretURL}}}))
		breakCalls.Store(false)
		require.Equal(t, "completed", broken.Status, "error: %+v", broken.Error)
		require.True(t, broken.Steps[1].IsError)
		require.Contains(t, broken.Steps[1].Output, "/mcp?…", "the tool's error names the server, redacted")

		failed := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "echo hi",
			"tools": []map[string]any{{"type": "mcp", "url": downURL}}, "webhook": map[string]string{"url": hooks.URL}}))
		require.Equal(t, "failed", failed.Status)
		require.Equal(t, "mcp_server_error", failed.Error.Code)
		require.Contains(t, failed.Error.Message, "/mcp?…")
		shown = append(shown, string(hooks.wait(t, "task.failed", 0).Body))

		for _, id := range []string{tk.ID, broken.ID, failed.ID} {
			_, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+id, keyAcme, nil)
			shown = append(shown, string(raw))
		}
		for _, x := range []task{tk, broken, failed} {
			_, raw, _ := call(t, "GET", x.ResultURLs.JSON, "", nil)
			shown = append(shown, string(raw))
			_, raw, _ = call(t, "GET", x.ResultURLs.Markdown, "", nil)
			shown = append(shown, string(raw))
		}
		_, raw, _ := call(t, "GET", env.URL+"/v1/tasks?user=u", keyAcme, nil)
		shown = append(shown, string(raw))
		shown = append(shown, dumpRows(t, env.App.Store().DB(), `SELECT * FROM mcpidp_task WHERE id IN ($1, $2, $3)`, tk.ID, broken.ID, failed.ID)...)
		shown = append(shown, dumpRows(t, env.App.Store().DB(), `SELECT * FROM mcpidp_task_step WHERE task_id IN ($1, $2, $3)`, tk.ID, broken.ID, failed.ID)...)
		shown = append(shown, dumpRows(t, env.App.Store().DB(), `SELECT * FROM mcpidp_webhook_delivery WHERE task_id IN ($1, $2, $3)`, tk.ID, broken.ID, failed.ID)...)

		// The chat path: the call works, the answer names the server
		// redacted; a server that cannot be reached is a 424 that does not
		// repeat the key either.
		chat := func(serverURL string) (int, []byte) {
			status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, map[string]any{
				"model": "m", "user": "u", "mcp_output": "text",
				"messages": []any{map[string]any{"role": "user", "content": "echo hi"}},
				"tools":    []any{map[string]any{"type": "mcp", "url": serverURL}}})
			return status, raw
		}
		status, raw := chat(secretURL)
		require.Equal(t, http.StatusOK, status, string(raw))
		var resp struct {
			Choices []struct {
				Message struct {
					MCPToolCalls []struct {
						ServerURL string `json:"server_url"`
					} `json:"mcp_tool_calls"`
				} `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(raw, &resp))
		require.Equal(t, shownURL, resp.Choices[0].Message.MCPToolCalls[0].ServerURL)
		require.Equal(t, []string{"hi", "hi"}, mcp.Calls("echo"))
		shown = append(shown, string(raw))
		status, raw = chat(downURL)
		require.Equal(t, http.StatusFailedDependency, status, string(raw))
		shown = append(shown, string(raw))

		shown = append(shown, logs.String())
		for i, s := range shown {
			require.NotEmpty(t, s, i)
			require.NotContains(t, s, key, "#%d", i)
			require.NotContains(t, s, password, "#%d", i)
			require.NotContains(t, s, "hunter2", "#%d", i)
		}
	})
}

// dumpRows returns every row of a query, all columns as text.
func dumpRows(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		var b strings.Builder
		for i, v := range vals {
			b.WriteString(cols[i] + "=" + v.String + "\n")
		}
		out = append(out, b.String())
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out, query)
	return out
}
