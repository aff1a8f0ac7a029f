// Package resultpage renders a task's public result page for people: the
// HTML a result link shows in a browser, on a phone as well as a desktop.
// It shows the status, what the user must do (log in, approve a tool call,
// answer a question), the answer, and the conversation with each tool call
// folded in a <details> block.
//
// Markdown from the model and the request is rendered by goldmark and then
// sanitized by bluemonday; everything else goes through html/template's
// escaping. The page loads nothing from elsewhere: its style and its one
// script are inline and allowed by a per-response nonce in a strict
// Content-Security-Policy. While the task is not finished the script
// long-polls the JSON result URL and re-renders the page in place when the
// task changes; without JavaScript a meta refresh reloads it.
package resultpage

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	gmhtml "github.com/yuin/goldmark/renderer/html"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

//go:embed page.html
var files embed.FS

// Renderer renders result pages. It is safe for concurrent use.
type Renderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
	tmpl   *template.Template
	// imgOrigin is the origin of the deployment's public URL, which image
	// URLs are built from; the page may load images from it besides its own.
	imgOrigin string
}

// New returns a Renderer for a deployment whose external base URL is
// publicURL (the one task.Build builds image URLs from).
func New(publicURL string) (*Renderer, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("resultpage: invalid public URL %q: want an absolute http(s) URL", publicURL)
	}
	tmpl, err := template.New("page.html").Funcs(template.FuncMap{
		"when": func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
	}).ParseFS(files, "page.html")
	if err != nil {
		return nil, fmt.Errorf("resultpage: error parsing template: %w", err)
	}
	// Raw HTML in markdown is kept by goldmark and then cleaned by the
	// sanitizer, so that harmless markup a model writes (<details>, <br>)
	// still shows while scripts, handlers and javascript: URLs do not.
	md := goldmark.New(
		goldmark.WithExtensions(extension.GFM),
		goldmark.WithRendererOptions(gmhtml.WithUnsafe()),
	)
	policy := bluemonday.UGCPolicy()
	policy.AddTargetBlankToFullyQualifiedLinks(true)
	policy.RequireNoReferrerOnFullyQualifiedLinks(true)
	return &Renderer{md: md, policy: policy, tmpl: tmpl, imgOrigin: u.Scheme + "://" + u.Host}, nil
}

// Page is a rendered page and the Content-Security-Policy it must be
// served with (its nonce is the page's own).
type Page struct {
	Status int
	Body   []byte
	CSP    string
}

// Write sends p with the headers a result page needs: no caching, no
// referrer (the URL is a secret), no indexing, no sniffing, no framing.
func (p *Page) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.CSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Vary", "Accept")
	w.WriteHeader(p.Status)
	_, _ = w.Write(p.Body)
}

// Render renders the page of o, with a fresh nonce.
func (r *Renderer) Render(o *task.Object) (*Page, error) {
	return r.render(o, o)
}

// render renders the page of o, reading what asks the user to act from
// the JSON form of src (o itself, or in tests o with lists it lacks).
func (r *Renderer) render(o *task.Object, src any) (*Page, error) {
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	d, err := r.view(o, src)
	if err != nil {
		return nil, err
	}
	d.Nonce = nonce
	return r.execute(http.StatusOK, d)
}

// NotFound renders the page for a result link that does not (or no
// longer) lead to a task.
func (r *Renderer) NotFound() (*Page, error) {
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	return r.execute(http.StatusNotFound, &data{Nonce: nonce, Missing: true,
		Status: statusView{Value: "not_found", Label: "Not found", Headline: "This result link has expired or does not exist"}})
}

func (r *Renderer) execute(status int, d *data) (*Page, error) {
	var buf bytes.Buffer
	if err := r.tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("resultpage: error rendering page: %w", err)
	}
	return &Page{Status: status, Body: buf.Bytes(), CSP: r.csp(d.Nonce)}, nil
}

// csp allows the page's own inline style and script (by nonce), images
// from this origin and the public URL's, and fetches to this origin (the
// JSON result URL); nothing else, not even a <base> or a form.
func (r *Renderer) csp(nonce string) string {
	return "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce + "'; " +
		"img-src 'self' " + r.imgOrigin + "; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func newNonce() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("resultpage: error making a nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// data is what the template shows.
type data struct {
	Nonce   string
	Missing bool // the not-found page
	Task    *task.Object
	Status  statusView
	// Live is set while the task can still change: the page polls and
	// refreshes itself.
	Live bool
	// RefreshSeconds is the meta refresh of a live page without script.
	RefreshSeconds int
	// WaitSeconds is the long-poll the script asks the JSON URL for.
	WaitSeconds int
	// Version changes whenever the page would show something new; the
	// script computes the same from the JSON result (see page.html).
	Version string
	// JSONHref and MarkdownHref are the other forms, relative to the page.
	JSONHref, MarkdownHref string

	Logins     []login
	Approvals  []approval
	Inputs     []input
	RetryingAt *time.Time
	Answer     template.HTML
	StopNote   string
	Error      *task.Error
	Messages   []message
	Steps      []step
}

type statusView struct {
	Value    string
	Label    string
	Headline string
	// Tone picks the badge's colour: active, waiting, ok, bad, off.
	Tone string
}

type login struct {
	ServerURL        string     `json:"server_url"`
	AuthorizationURL string     `json:"authorization_url"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

func (l login) Host() string { return agentloop.Host(l.ServerURL) }

// approval is one tool call waiting for the user's approval; ApproveURL
// is mcpidp's confirm page.
type approval struct {
	ID         string          `json:"id"`
	ServerURL  string          `json:"server_url"`
	Name       string          `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	ApproveURL string          `json:"approve_url"`
	ExpiresAt  *time.Time      `json:"expires_at"`
}

func (a approval) Host() string          { return agentloop.Host(a.ServerURL) }
func (a approval) ArgumentsText() string { return prettyJSON(a.Arguments) }

// input is an MCP elicitation waiting for the user: a form (answered on
// FormURL) or a URL to visit.
type input struct {
	ID              string          `json:"id"`
	ServerURL       string          `json:"server_url"`
	Mode            string          `json:"mode"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema"`
	URL             string          `json:"url"`
	FormURL         string          `json:"form_url"`
	ExpiresAt       *time.Time      `json:"expires_at"`
}

func (in input) Host() string { return agentloop.Host(in.ServerURL) }

// Href is where the user answers: mcpidp's form, or the server's URL.
func (in input) Href() string {
	if in.FormURL != "" {
		return in.FormURL
	}
	return in.URL
}

// Destination names the site a URL-mode request leads to, so the user
// sees where the button goes before pressing it.
func (in input) Destination() string {
	if in.FormURL != "" {
		return ""
	}
	return agentloop.Host(in.URL)
}

// pending is the part of the task object that asks the user to act. It is
// read from the object's JSON form, so that a list the object gains
// (pending_approvals, pending_inputs) shows without changing this package.
type pending struct {
	AuthorizationRequired []login    `json:"authorization_required"`
	PendingApprovals      []approval `json:"pending_approvals"`
	PendingInputs         []input    `json:"pending_inputs"`
}

type message struct {
	Role string
	HTML template.HTML
}

type step struct {
	Key  string
	HTML template.HTML // a model turn's text
	Tool *tool
}

type tool struct {
	Name, Host           string
	IsError, Interrupted bool
	Duration             string
	Arguments, Output    string
	Images               []image
	StructuredContent    string
	ResourceCount        int
}

type image struct {
	URL, Label string
	Inline     bool
}

func (r *Renderer) view(o *task.Object, src any) (*data, error) {
	d := &data{Task: o, Status: describeStatus(o.Status), RetryingAt: o.RetryingAt, Error: o.Error,
		JSONHref: path.Base(o.ResultURLs.JSON), MarkdownHref: path.Base(o.ResultURLs.Markdown)}
	d.Live = !o.Status.Terminal()
	d.RefreshSeconds, d.WaitSeconds = 3, 5
	if strings.HasPrefix(string(o.Status), "awaiting_") {
		// Waiting for a person: the long-poll answers at once when the
		// status changes, so it can be long.
		d.RefreshSeconds, d.WaitSeconds = 10, 25
	}

	raw, err := json.Marshal(src)
	if err != nil {
		return nil, fmt.Errorf("resultpage: error encoding task: %w", err)
	}
	var p pending
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("resultpage: error reading the task's pending actions: %w", err)
	}
	d.Version = version(o, &p)
	if d.Live {
		d.Logins = keep(p.AuthorizationRequired, func(l login) bool { return webURL(l.AuthorizationURL) })
		d.Approvals = keep(p.PendingApprovals, func(a approval) bool { return webURL(a.ApproveURL) })
		d.Inputs = keep(p.PendingInputs, func(in input) bool { return webURL(in.Href()) })
	}

	if o.Output != nil && o.Status == task.StatusCompleted && strings.TrimSpace(o.Output.Content) != "" {
		d.Answer = r.markdown(o.Output.Content)
		switch o.Output.StopReason {
		case agentloop.ReasonMaxSteps:
			d.StopNote = "The task stopped at its step limit (max_steps)."
		case agentloop.ReasonStopWhen:
			d.StopNote = "The task stopped when a stop_when condition was met."
		}
	}
	for _, m := range o.Initial {
		if msg, ok := r.message(m); ok {
			d.Messages = append(d.Messages, msg)
		}
	}
	// The answer is shown on its own above; its model turn is not repeated.
	last := -1
	if d.Answer != "" {
		for i := len(o.Steps) - 1; i >= 0; i-- {
			if o.Steps[i].Type == agentloop.StepModel {
				if strings.TrimSpace(o.Steps[i].Content) == strings.TrimSpace(o.Output.Content) {
					last = i
				}
				break
			}
		}
	}
	for i, st := range o.Steps {
		key := fmt.Sprintf("step-%d", i)
		switch {
		case st.Type == agentloop.StepModel && i != last && strings.TrimSpace(st.Content) != "":
			d.Steps = append(d.Steps, step{Key: key, HTML: r.markdown(st.Content)})
		case st.Type == agentloop.StepTool:
			d.Steps = append(d.Steps, step{Key: key, Tool: toolView(st)})
		case st.Type == agentloop.StepSampling:
			// A model call a server asked for: its request, and the
			// model's answer as text (it went to the server, not the user).
			tv := toolView(agentloop.Step{ServerURL: st.ServerURL, Arguments: st.Arguments, Output: st.Content, DurationMS: st.DurationMS})
			tv.Name = "sampling"
			d.Steps = append(d.Steps, step{Key: key, Tool: tv})
		}
	}
	return d, nil
}

// version is what a live page compares with the JSON result to know it
// is out of date: the status, the number of steps, whether a model retry
// waits, and how many logins, approvals and questions wait for the user.
// The page's script computes the same from the task object (page.html).
func version(o *task.Object, p *pending) string {
	retrying := 0
	if o.RetryingAt != nil {
		retrying = 1
	}
	return fmt.Sprintf("%s|%d|%d|%d|%d|%d", o.Status, len(o.Steps), retrying,
		len(p.AuthorizationRequired), len(p.PendingApprovals), len(p.PendingInputs))
}

func describeStatus(s store.TaskStatus) statusView {
	v := statusView{Value: string(s)}
	switch s {
	case task.StatusQueued:
		v.Label, v.Headline, v.Tone = "Queued", "Waiting to start", "active"
	case task.StatusRunning:
		v.Label, v.Headline, v.Tone = "Running", "Working on it", "active"
	case task.StatusAwaitingAuthorization:
		v.Label, v.Headline, v.Tone = "Needs login", "Log in to continue", "waiting"
	case "awaiting_approval":
		v.Label, v.Headline, v.Tone = "Needs approval", "Your approval is needed", "waiting"
	case "awaiting_input":
		v.Label, v.Headline, v.Tone = "Needs your input", "Your answer is needed", "waiting"
	case task.StatusCompleted:
		v.Label, v.Headline, v.Tone = "Completed", "Done", "ok"
	case task.StatusFailed:
		v.Label, v.Headline, v.Tone = "Failed", "The task failed", "bad"
	case task.StatusCanceled:
		v.Label, v.Headline, v.Tone = "Canceled", "The task was canceled", "off"
	default:
		v.Label, v.Headline, v.Tone = string(s), "Status: "+string(s), "active"
	}
	return v
}

// markdown renders untrusted markdown to safe HTML.
func (r *Renderer) markdown(s string) template.HTML {
	var buf bytes.Buffer
	if err := r.md.Convert([]byte(s), &buf); err != nil {
		return template.HTML("<pre>" + template.HTMLEscapeString(s) + "</pre>") //nolint:gosec // escaped
	}
	return template.HTML(r.policy.SanitizeBytes(buf.Bytes())) //nolint:gosec // sanitized
}

// message renders one message of the request the task started from. Text
// parts are markdown; other parts (images) are named, not shown.
func (r *Renderer) message(raw json.RawMessage) (message, bool) {
	var m struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return message{}, false
	}
	var text string
	if json.Unmarshal(m.Content, &text) != nil {
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(m.Content, &parts) != nil {
			return message{}, false
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text + "\n\n")
			} else {
				b.WriteString("_[" + p.Type + " attached]_\n\n")
			}
		}
		text = b.String()
	}
	if strings.TrimSpace(text) == "" {
		return message{}, false
	}
	return message{Role: m.Role, HTML: r.markdown(text)}, true
}

func toolView(st agentloop.Step) *tool {
	tv := &tool{Name: st.Tool, Host: agentloop.Host(st.ServerURL), IsError: st.IsError, Interrupted: st.Interrupted,
		Arguments: prettyJSON(st.Arguments), Output: st.Output, ResourceCount: len(st.Resources)}
	if tv.Name == "" {
		tv.Name = st.Function
	}
	if st.DurationMS > 0 {
		tv.Duration = (time.Duration(st.DurationMS) * time.Millisecond).String()
	}
	if len(st.StructuredContent) > 0 && string(st.StructuredContent) != "null" {
		tv.StructuredContent = prettyJSON(st.StructuredContent)
	}
	for i, img := range st.Images {
		iv := image{URL: img.URL, Label: fmt.Sprintf("Image %d, %s, %d bytes", i+1, img.MIMEType, img.Size)}
		iv.Inline = img.URL != "" && img.Viewable()
		tv.Images = append(tv.Images, iv)
	}
	return tv
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// webURL reports whether s is an absolute http(s) URL: the only kind of
// link a button is made for.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func keep[T any](in []T, ok func(T) bool) []T {
	var out []T
	for _, v := range in {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}
