package resultpage

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

const (
	publicURL = "https://mcpidp.example.com"
	token     = "tok_abc"
	// injection is markup that must never reach the page as markup.
	injection = `<script>window.pwned=1</script><img src="x" onerror="window.pwned=2"><a href="javascript:alert(1)">click</a>`
)

// sampleTask is a finished task that called one tool, whose output and
// answer both carry injection.
func sampleTask(status store.TaskStatus) *task.Object {
	created := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	o := &task.Object{
		ID: "task_1", Object: "task", Status: status, User: "alice", Model: "gpt-test",
		CreatedAt: created, UpdatedAt: created,
		ResultURLs: task.ResultURLs{
			Markdown: publicURL + "/r/" + token + ".md",
			JSON:     publicURL + "/r/" + token + ".json",
		},
		AuthorizationRequired: json.RawMessage(`[]`),
		Initial:               []json.RawMessage{json.RawMessage(`{"role":"user","content":"Look up **the weather**"}`)},
		Steps: []agentloop.Step{
			{Type: agentloop.StepModel, Content: "Let me check."},
			{Type: agentloop.StepTool, ServerURL: "https://weather.example.com/mcp", Tool: "forecast",
				Arguments: json.RawMessage(`{"city":"Paris"}`), Output: "Sunny " + injection, DurationMS: 1500,
				Images: []agentloop.Image{
					{MIMEType: "image/png", Size: 10, URL: publicURL + "/r/" + token + "/images/1/0"},
					{MIMEType: "image/svg+xml", Size: 20, URL: publicURL + "/r/" + token + "/images/1/1"},
				}},
		},
	}
	if status == task.StatusCompleted {
		answer := "It is **sunny** in Paris ([source](https://weather.example.com/paris)).\n\n| day | sky |\n| --- | --- |\n| Mon | sun |\n\n" + injection
		o.Steps = append(o.Steps, agentloop.Step{Type: agentloop.StepModel, Content: answer})
		o.Output = &task.Output{Content: answer, StopReason: agentloop.ReasonFinal}
		o.CompletedAt = &created
	}
	return o
}

func render(t *testing.T, o *task.Object, src any) (*Page, string) {
	t.Helper()
	r, err := New(publicURL)
	require.NoError(t, err)
	if src == nil {
		src = o
	}
	p, err := r.render(o, src)
	require.NoError(t, err)
	return p, string(p.Body)
}

var nonceAttr = regexp.MustCompile(`<(script|style) nonce="([^"]+)">`)

func TestRenderCompleted(t *testing.T) {
	t.Parallel()
	p, body := render(t, sampleTask(task.StatusCompleted), nil)
	require.Equal(t, http.StatusOK, p.Status)

	// A finished page has its style, with the nonce the policy allows,
	// and no script at all.
	tags := nonceAttr.FindAllStringSubmatch(body, -1)
	require.Len(t, tags, 1, body)
	require.Equal(t, "style", tags[0][1])
	nonce := tags[0][2]
	require.Len(t, nonce, 24)
	require.Equal(t, "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; "+
		"img-src 'self' https://mcpidp.example.com; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", p.CSP)
	require.NotContains(t, body, "<script")
	require.NotContains(t, body, `onerror="`)
	require.NotContains(t, body, `href="javascript:`)
	require.NotContains(t, body, "window.pwned=1</script>")

	// The answer is rendered markdown, shown once.
	require.Contains(t, body, `<span class="badge tone-ok" data-status="completed" title="status: completed">Completed</span>`)
	require.Contains(t, body, `<p>It is <strong>sunny</strong> in Paris (<a href="https://weather.example.com/paris" rel="nofollow noreferrer noopener" target="_blank">source</a>).</p>`)
	require.Contains(t, body, "<td>sun</td>")
	require.Equal(t, 1, strings.Count(body, "in Paris ("), "the answer's model turn is not repeated")
	require.Contains(t, body, `<img src="x">`, "the sanitizer keeps the image, not its handler")
	require.Contains(t, body, "<p>Look up <strong>the weather</strong></p>")
	require.Contains(t, body, "<p>Let me check.</p>")

	// The tool call is a closed block whose output is text.
	require.Contains(t, body, `<details class="tool" data-key="step-1">`)
	require.Contains(t, body, `<span class="tool-name">forecast</span><span class="small">weather.example.com</span><span class="small">1.5s</span>`)
	require.Contains(t, body, "{\n  &#34;city&#34;: &#34;Paris&#34;\n}")
	require.Contains(t, body, `<pre data-output><code>Sunny &lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=&#34;x&#34; onerror=&#34;window.pwned=2&#34;&gt;`)
	require.Contains(t, body, `<img src="https://mcpidp.example.com/r/tok_abc/images/1/0" alt="Image 1, image/png, 10 bytes" loading="lazy">`)
	require.Contains(t, body, `<a href="https://mcpidp.example.com/r/tok_abc/images/1/1" download>Image 2, image/svg&#43;xml, 20 bytes (download)</a>`)

	// Finished: nothing polls or refreshes.
	require.NotContains(t, body, "http-equiv")
	require.NotContains(t, body, "data-poll")
	require.Contains(t, body, `<a href="tok_abc.md">Markdown</a><a href="tok_abc.json">JSON</a>`)

	_, again := render(t, sampleTask(task.StatusCompleted), nil)
	require.NotEqual(t, nonce, nonceAttr.FindStringSubmatch(again)[2], "a fresh nonce per page")
}

// A task waiting for a login shows a button per login link, refreshes
// itself (by script, or by meta refresh without one) and drops a link
// that is not a web URL.
func TestRenderAwaitingLogin(t *testing.T) {
	t.Parallel()
	o := sampleTask(task.StatusAwaitingAuthorization)
	expires := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	logins, err := json.Marshal([]map[string]any{
		{"server_url": "https://mcp.notion.com/mcp", "authorization_url": publicURL + "/oauth/start/login_1", "expires_at": expires},
		{"server_url": "https://evil.example.com/mcp", "authorization_url": "javascript:alert(1)", "expires_at": expires},
	})
	require.NoError(t, err)
	o.AuthorizationRequired = logins
	p, body := render(t, o, nil)

	require.Contains(t, body, `data-status="awaiting_authorization" title="status: awaiting_authorization">Needs login</span>`)
	require.Contains(t, body, "<h1>Log in to continue</h1>")
	require.Contains(t, body, `<a class="button" data-login href="https://mcpidp.example.com/oauth/start/login_1">Log in to mcp.notion.com</a>`)
	require.Contains(t, body, "The link works until 3 Dec 2026, 09:30 UTC.")
	require.Equal(t, 1, strings.Count(body, "data-login"), "the javascript: link gets no button")
	require.NotContains(t, body, "evil.example.com")

	require.Contains(t, body, `<noscript><meta http-equiv="refresh" content="10"></noscript>`)
	require.Contains(t, body, `<main data-page data-version="awaiting_authorization|2|0|2|0|0" data-poll="tok_abc.json" data-wait="25">`)
	tags := nonceAttr.FindAllStringSubmatch(body, -1)
	require.Len(t, tags, 2, "style and script")
	require.Equal(t, tags[0][2], tags[1][2])
	require.Contains(t, p.CSP, "script-src 'nonce-"+tags[1][2]+"';")
	require.Contains(t, body, "Waiting for you… This page updates by itself.")
}

// withPending is a task object with the lists of tool calls and questions
// waiting for the user, as the task object's JSON carries them.
type withPending struct {
	*task.Object
	PendingApprovals []map[string]any `json:"pending_approvals"`
	PendingInputs    []map[string]any `json:"pending_inputs"`
}

func TestRenderPendingApprovalsAndInputs(t *testing.T) {
	t.Parallel()
	o := sampleTask("awaiting_approval")
	src := withPending{Object: o,
		PendingApprovals: []map[string]any{{
			"id": "appr_1", "server_url": "https://mcp.linear.app/mcp", "name": "delete_issue",
			"arguments": map[string]any{"id": "LIN-42", "note": "<b>bye</b>"}, "approve_url": publicURL + "/approve/appr_1",
			"expires_at": "2026-12-02T10:30:00Z",
		}},
		PendingInputs: []map[string]any{
			{"id": "in_1", "server_url": "https://mcp.github.com/mcp", "mode": "form", "message": "Which repository? <i>x</i>",
				"requested_schema": map[string]any{"type": "object"}, "form_url": publicURL + "/input/in_1", "expires_at": "2026-12-02T10:30:00Z"},
			{"id": "in_2", "server_url": "https://mcp.github.com/mcp", "mode": "url", "message": "Confirm on GitHub",
				"url": "https://github.com/login/device", "expires_at": "2026-12-02T10:30:00Z"},
			{"id": "in_3", "server_url": "https://mcp.github.com/mcp", "mode": "url", "message": "Bad link", "url": "data:text/html,hi"},
		},
	}
	_, body := render(t, o, src)
	require.Contains(t, body, `data-status="awaiting_approval" title="status: awaiting_approval">Needs approval</span>`)
	require.Contains(t, body, `The task wants to call <strong class="tool-name">delete_issue</strong> on <strong>mcp.linear.app</strong>.`)
	require.Contains(t, body, "&#34;note&#34;: &#34;\\u003cb\\u003ebye\\u003c/b\\u003e&#34;", "arguments are escaped text")
	require.Contains(t, body, `<a class="button" data-approve href="https://mcpidp.example.com/approve/appr_1">Review and approve</a>`)
	require.Contains(t, body, "Waits until 2 Dec 2026, 10:30 UTC.")
	require.Contains(t, body, "<p>Which repository? &lt;i&gt;x&lt;/i&gt;</p>")
	require.Contains(t, body, `<a class="button" data-input href="https://mcpidp.example.com/input/in_1">Answer</a>`)
	require.Contains(t, body, `<a class="button" data-input href="https://github.com/login/device">Continue on github.com</a>`)
	require.NotContains(t, body, "Bad link", "a request without a web URL gets no button")
	require.Contains(t, body, `data-version="awaiting_approval|2|0|0|1|3"`, "the page updates when a list changes")

	// Once the task has ended, nothing asks the user to act.
	o.Status = task.StatusCanceled
	_, body = render(t, o, src)
	require.NotContains(t, body, "data-approve")
	require.NotContains(t, body, "data-input")
	require.Contains(t, body, "<h1>The task was canceled</h1>")
}

func TestRenderStatuses(t *testing.T) {
	t.Parallel()
	for status, want := range map[store.TaskStatus]struct {
		label, tone string
		live        bool
	}{
		"queued": {"Queued", "active", true}, "running": {"Running", "active", true},
		"awaiting_authorization": {"Needs login", "waiting", true}, "awaiting_approval": {"Needs approval", "waiting", true},
		"awaiting_input": {"Needs your input", "waiting", true}, "completed": {"Completed", "ok", false},
		"failed": {"Failed", "bad", false}, "canceled": {"Canceled", "off", false},
	} {
		_, body := render(t, sampleTask(status), nil)
		require.Contains(t, body, `<span class="badge tone-`+want.tone+`" data-status="`+string(status)+`" title="status: `+string(status)+`">`+want.label+`</span>`, status)
		require.Contains(t, body, "<title>"+want.label+" · Task result</title>")
		require.Equal(t, want.live, strings.Contains(body, "data-poll="), status)
		require.Equal(t, want.live, strings.Contains(body, "http-equiv=\"refresh\""), status)
	}
}

func TestRenderFailed(t *testing.T) {
	t.Parallel()
	o := sampleTask(task.StatusFailed)
	o.Error = &task.Error{Code: "authorization_timeout", Message: "nobody logged in <in time>"}
	_, body := render(t, o, nil)
	require.Contains(t, body, `<div class="error" data-error><code>authorization_timeout</code><p>nobody logged in &lt;in time&gt;</p></div>`)
	require.NotContains(t, body, "data-answer")
}

func TestRenderNotFound(t *testing.T) {
	t.Parallel()
	r, err := New(publicURL)
	require.NoError(t, err)
	p, err := r.NotFound()
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, p.Status)
	require.Contains(t, string(p.Body), "This result link has expired or does not exist")
	require.Contains(t, string(p.Body), `<main data-page>`, "a live page that swaps this in stops polling")

	rec := httptest.NewRecorder()
	p.Write(rec)
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, p.CSP, rec.Header().Get("Content-Security-Policy"))
	require.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
}

func TestNewRejectsBadPublicURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "mcpidp.example.com", "ftp://x", "http://"} {
		_, err := New(u)
		require.ErrorContains(t, err, "invalid public URL", u)
	}
}

// A model call an MCP server asked for (sampling) shows as a step: which
// server asked, what it sent and what the model answered, as text.
func TestRenderSamplingStep(t *testing.T) {
	t.Parallel()
	o := sampleTask(task.StatusRunning)
	o.Steps = append(o.Steps, agentloop.Step{Type: agentloop.StepSampling, ServerURL: "https://weather.example.com/mcp",
		Arguments: json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"Summarize"}}]}`),
		Content:   "A short <b>summary</b>", DurationMS: 250})
	_, body := render(t, o, nil)
	require.Contains(t, body, `<details class="tool" data-key="step-2">`)
	require.Contains(t, body, `<span class="tool-name">sampling</span><span class="small">weather.example.com</span><span class="small">250ms</span>`)
	require.Contains(t, body, "&#34;Summarize&#34;")
	require.Contains(t, body, `<pre data-output><code>A short &lt;b&gt;summary&lt;/b&gt;`)
}
