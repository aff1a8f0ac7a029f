package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

var loginLinkRe = regexp.MustCompile(`http://\S+/oauth/start/\S+`)

// `mcpidp demo` as a newcomer runs it: no keys, no network. It prints a
// login link; a browser that opens it and clicks Allow on the demo
// authorization server's consent page lets the task resume, and the demo
// shows its steps and the answer, then ends.
func TestDemo(t *testing.T) {
	t.Parallel()
	out := runDemo(t, map[string]string{})
	require.Contains(t, out, "awaiting_authorization")
	require.Contains(t, out, "the built-in scripted model")
	require.Regexp(t, `(?s)logged in: the task resumes.*model calls \S+__get_forecast\(\{"city":"Paris"\}\).*`+
		`tool get_forecast returned in \d+ ms: Paris: sunny, 21 °C.*completed\n\nAnswer:\n`+
		`Here is the forecast the demo MCP server gave me: Paris: sunny, 21 °C, light wind from the west \(demo data\)\.\n`, out)
}

// With OPENAI_API_KEY set, the demo asks the real upstream at
// OPENAI_BASE_URL (here a scripted stand-in) instead of its own model.
func TestDemoUsesTheUpstreamWithAKey(t *testing.T) {
	t.Parallel()
	model := llmtest.NewServer(t)
	model.Handle(func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "Upstream says: " + last.Content}
		}
		args, _ := json.Marshal(map[string]string{"city": "Oslo"})
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "get_forecast"), Arguments: string(args)}}}
	})
	out := runDemo(t, map[string]string{"OPENAI_API_KEY": "sk-upstream", "OPENAI_BASE_URL": model.URL()}, "--model", "gpt-test")
	require.Contains(t, out, "Answer:\nUpstream says: Oslo: sunny, 21 °C")
	reqs := model.Requests()
	require.NotEmpty(t, reqs)
	require.Equal(t, "gpt-test", reqs[0].Model)
	require.Equal(t, "Bearer sk-upstream", reqs[0].Header.Get("Authorization"))
}

// runDemo runs `mcpidp demo` through app.Run, allows access at the login
// link it prints, and returns its output once it ended.
func runDemo(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, append([]string{"demo"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	link := waitForOutput(t, &stdout, loginLinkRe, done)
	status, page := testenv.NewBrowser(t).Allow(t, link)
	require.Equal(t, http.StatusOK, status, page)
	require.Contains(t, page, "authorized")
	select {
	case err := <-done:
		require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	case <-ctx.Done():
		t.Fatalf("the demo did not end; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	out := stdout.String()
	require.Less(t, strings.Index(out, link), strings.Index(out, "Answer:"), out)
	return out
}

// waitForOutput waits until out holds a match of re and returns it; it
// fails when the command ended (done) or 60 s passed first.
func waitForOutput(t *testing.T, out interface{ String() string }, re *regexp.Regexp, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindString(out.String()); m != "" {
			return m
		}
		select {
		case err := <-done:
			t.Fatalf("the command ended (%v) before printing %s:\n%s", err, re, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no %s in the output after 60s:\n%s", re, out.String())
	return ""
}

// The consent page the demo's authorization server shows: Deny leaves the
// user disconnected (mcpidp's "Access was denied" page) and the task
// waiting; the same link, with Allow, lets it finish.
func TestConsentPageDenyThenAllow(t *testing.T) {
	t.Parallel()
	e := startEnv(t, storetest.DatabaseURL(t, storetest.SQLite))
	mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Consent: true})
	e.Model.Handle(echoOnce(t))
	waiting := waitStatus(t, e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "consent",
		"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}), "awaiting_authorization")
	link := waiting.AuthorizationRequired[0].AuthorizationURL

	browser := testenv.NewBrowser(t)
	status, page := browser.Click(t, link, "Deny")
	require.Equal(t, http.StatusForbidden, status, page)
	require.Contains(t, page, "Access was denied")
	require.Zero(t, as.Count("token"), "no code was issued")
	require.Equal(t, "awaiting_authorization", waitStatus(t, waiting, "awaiting_authorization").Status)

	status, page = browser.Allow(t, link)
	require.Equal(t, http.StatusOK, status, page)
	done := waitDone(t, waiting)
	require.Equal(t, "completed", done.Status)
	require.Equal(t, []string{"consent"}, mcp.Calls("echo"))
	require.Equal(t, 2, as.Count("consent"))
}
