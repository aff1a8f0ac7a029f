package resultpage

import (
	"encoding/json"
	"net/http"
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
		answer := "It is **sunny** in Paris.\n\n| day | sky |\n| --- | --- |\n| Mon | sun |\n\n" + injection
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
	require.Contains(t, body, "<p>It is <strong>sunny</strong> in Paris.</p>")
	require.Contains(t, body, "<td>sun</td>")
	require.Equal(t, 1, strings.Count(body, "in Paris."), "the answer's model turn is not repeated")
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
