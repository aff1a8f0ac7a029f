package chat

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
)

// responder turns the steps of one run into the client's answer. The same
// rendering serves both modes: text goes through emit, which appends to
// the message content (stream: false) or sends a content chunk (stream:
// true), so a streamed answer reads exactly like the non-streamed one.
//
// All its methods run on the loop's goroutine.
type responder struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	req *chatRequest

	id      string
	created int64
	model   string

	content    strings.Builder // stream: false
	committed  bool            // stream: true and the first event was sent
	emitted    bool
	tail       string // the last two bytes emitted
	pendingSep bool   // a new step began: separate its text from what came before
	err        error  // the first failure to write to the client

	// toolCalls are the MCP calls that ran, for "mcp_tool_calls" when
	// mcp_output is "text" (the content then does not show them).
	toolCalls []MCPToolCall
}

// MCPToolCall is one entry of a message's "mcp_tool_calls": an MCP tool
// call that ran during the answer. Answers with mcp_output "text" carry
// them, as their content leaves the calls out; a streamed answer sends
// them all on its last chunk, with the finish reason.
type MCPToolCall struct {
	ServerURL string          `json:"server_url"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Output    string          `json:"output"`
	IsError   bool            `json:"is_error"`
}

func newResponder(w http.ResponseWriter, req *chatRequest) *responder {
	return &responder{w: w, rc: http.NewResponseController(w), req: req, model: req.model}
}

// completeFunc calls the model for one step: streamed, forwarding content
// deltas as they arrive, or in one piece.
func (r *responder) completeFunc(model *llm.Client, opts llm.CallOptions) agentloop.CompleteFunc {
	return func(ctx context.Context, body []byte) (*llm.Completion, error) {
		r.pendingSep = true
		if r.req.stream {
			return model.Stream(ctx, body, opts, r.onChunk)
		}
		c, err := model.Complete(ctx, body, opts)
		if err == nil {
			r.identify(c.ID, c.Model, c.Created)
		}
		return c, err
	}
}

func (r *responder) identify(id, model string, created int64) {
	if r.id != "" {
		return
	}
	r.id, r.created = id, created
	if model != "" {
		r.model = model
	}
	if r.id == "" {
		r.id = "chatcmpl-mcpidp-" + strings.ToLower(rand.Text())
	}
	if r.created == 0 {
		r.created = time.Now().Unix()
	}
}

// onChunk forwards the content of an upstream chunk. A chunk that only
// carries content goes out as the upstream wrote it (fields mcpidp does not
// know, such as reasoning or logprobs, survive), under the id of the whole
// answer. Tool call fragments, finish reasons and usage are the loop's
// business and are left out.
func (r *responder) onChunk(raw []byte, chunk *llm.Chunk) error {
	r.identify(chunk.ID, chunk.Model, chunk.Created)
	var content string
	for _, c := range chunk.Choices {
		if c.Index == 0 {
			content = c.Delta.Content
		}
	}
	plain := len(chunk.Choices) == 1 && chunk.Choices[0].Index == 0 && len(chunk.Choices[0].Delta.ToolCalls) == 0 &&
		chunk.Choices[0].FinishReason == nil && chunk.Usage == nil
	if plain {
		if out, err := llm.SetFields(raw, map[string]any{"id": r.id}); err == nil {
			if content != "" {
				r.separate()
			}
			r.event(out)
			r.track(content)
			return r.err
		}
	}
	r.text(content)
	return r.err
}

// record is the loop's RecordFunc: it renders each step as it ends.
func (r *responder) record(ctx context.Context, _ int, st agentloop.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch st.Type {
	case agentloop.StepModel:
		if !r.req.stream {
			r.text(st.Content)
		}
	case agentloop.StepTool:
		if r.req.textOnly {
			name := st.Tool
			if name == "" {
				name = st.Function // no such tool: the name the model used
			}
			r.toolCalls = append(r.toolCalls, MCPToolCall{ServerURL: st.ServerURL, Name: name, Arguments: st.Arguments, Output: st.Output, IsError: st.IsError})
		} else {
			r.pendingSep = true
			r.separate()
			r.emit(agentloop.ToolMarkdown(st))
		}
	case agentloop.StepSampling:
		if !r.req.textOnly {
			r.pendingSep = true
			r.separate()
			r.emit(agentloop.SamplingMarkdown(st))
		}
	}
	return r.err
}

func (r *responder) text(s string) {
	if s == "" {
		return
	}
	r.separate()
	r.emit(s)
}

// separate puts a blank line between the text of a new step and what was
// emitted before it.
func (r *responder) separate() {
	if !r.pendingSep {
		return
	}
	r.pendingSep = false
	switch {
	case !r.emitted, strings.HasSuffix(r.tail, "\n\n"):
	case strings.HasSuffix(r.tail, "\n"):
		r.emit("\n")
	default:
		r.emit("\n\n")
	}
}

func (r *responder) emit(s string) {
	if s == "" {
		return
	}
	if r.req.stream {
		r.chunk(delta{Content: &s}, nil, nil)
	} else {
		r.content.WriteString(s)
	}
	r.track(s)
}

func (r *responder) track(s string) {
	if s == "" {
		return
	}
	r.emitted = true
	r.tail = lastBytes(r.tail+s, 2)
}

// finish ends a run that completed.
func (r *responder) finish(out *agentloop.Outcome) {
	r.identify("", "", 0)
	reason := "stop"
	var calls []llm.ToolCall
	switch out.Reason {
	case agentloop.ReasonClientToolCalls:
		reason, calls = "tool_calls", out.ClientToolCalls
	case agentloop.ReasonFinal:
		if out.Last != nil && len(out.Last.Choices) > 0 && out.Last.Choices[0].FinishReason != "" {
			reason = out.Last.Choices[0].FinishReason
		}
	}
	usage := out.Usage
	if !r.req.stream {
		r.writeCompletion(message{Role: "assistant", ToolCalls: calls, MCPToolCalls: r.toolCalls}, reason, &usage)
		return
	}
	if len(calls) > 0 {
		d := delta{}
		for i, c := range calls {
			d.ToolCalls = append(d.ToolCalls, toolCallDelta{Index: i, ID: c.ID, Type: "function", Function: c.Function})
		}
		r.chunk(d, nil, nil)
	}
	r.end(reason, &usage)
}

// login answers with a short message that links to each login.
func (r *responder) login(reqs []AuthorizationRequest, failures []string, usage llm.Usage) {
	r.identify("", "", 0)
	var b strings.Builder
	if len(reqs) == 1 {
		b.WriteString("To use these tools, log in first:\n\n")
	} else {
		b.WriteString("To use these tools, log in to each of these servers first:\n\n")
	}
	for _, q := range reqs {
		b.WriteString("- " + agentloop.LoginMarkdown(q.ServerURL, q.AuthorizationURL) + "\n")
	}
	for _, f := range failures {
		b.WriteString("- " + f + "\n")
	}
	b.WriteString("\nThen send your message again.")

	r.pendingSep = true
	r.separate()
	msg := b.String()
	if !r.req.stream {
		r.content.WriteString(msg)
		r.writeCompletion(message{Role: "assistant", MCPAuthorizationRequired: reqs, MCPToolCalls: r.toolCalls}, "stop", &usage)
		return
	}
	r.chunk(delta{Content: &msg, MCPAuthorizationRequired: reqs}, nil, nil)
	r.end("stop", &usage)
}

// approvals ends an answer whose run held back tool calls: the content asks
// for the decisions, and the message (streamed: the last content chunk)
// carries mcp_approval_requests.
func (r *responder) approvals(calls []agentloop.ApprovalCall, usage llm.Usage) {
	r.identify("", "", 0)
	reqs := make([]ApprovalRequest, len(calls))
	for i, c := range calls {
		reqs[i] = ApprovalRequest{ID: c.ID, ServerURL: c.ServerURL, Name: c.Tool, Arguments: c.Arguments}
	}
	r.pendingSep = true
	r.separate()
	msg := approvalMarkdown(reqs)
	if !r.req.stream {
		r.content.WriteString(msg)
		r.writeCompletion(message{Role: "assistant", MCPApprovalRequests: reqs, MCPToolCalls: r.toolCalls}, "stop", &usage)
		return
	}
	r.chunk(delta{Content: &msg, MCPApprovalRequests: reqs}, nil, nil)
	r.end("stop", &usage)
}

// elicit ends the answer with what an MCP server asks the user for; the
// client answers it by sending the request again with
// mcp_elicitation_responses.
func (r *responder) elicit(q ElicitationRequest, usage llm.Usage) {
	r.identify("", "", 0)
	var b strings.Builder
	fmt.Fprintf(&b, "%s asks: %s", agentloop.Host(q.ServerURL), strings.TrimSpace(q.Message))
	if q.Mode == "url" {
		fmt.Fprintf(&b, "\n\nOpen %s, then send your message again.", q.URL)
	} else {
		b.WriteString("\n\nAnswer, then send your message again.")
	}
	r.pendingSep = true
	r.separate()
	msg := b.String()
	reqs := []ElicitationRequest{q}
	if !r.req.stream {
		r.content.WriteString(msg)
		r.writeCompletion(message{Role: "assistant", MCPElicitationRequests: reqs, MCPToolCalls: r.toolCalls}, "stop", &usage)
		return
	}
	r.chunk(delta{Content: &msg, MCPElicitationRequests: reqs}, nil, nil)
	r.end("stop", &usage)
}

// fail answers with an error: with its status while nothing was sent, as
// an error event once a stream has begun.
func (r *responder) fail(err error) {
	if !r.committed {
		writeError(r.w, err)
		return
	}
	_, _, body := errorBody(err)
	r.event(body)
}

func (r *responder) writeCompletion(m message, finishReason string, usage *llm.Usage) {
	if s := r.content.String(); s != "" || len(m.ToolCalls) == 0 {
		m.Content = &s
	}
	body, err := json.Marshal(completion{
		ID: r.id, Object: "chat.completion", Created: r.created, Model: r.model,
		Choices: []choice{{Index: 0, Message: m, FinishReason: finishReason}},
		Usage:   usage,
	})
	if err != nil {
		writeError(r.w, err)
		return
	}
	r.w.Header().Set("Content-Type", "application/json")
	// With its length known and flushed, the answer is complete on the wire now: the caller need
	// not wait for the MCP sessions to close (a DELETE each) once the handler is done with them.
	r.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	r.w.WriteHeader(http.StatusOK)
	if _, err := r.w.Write(body); err != nil {
		return
	}
	_ = r.rc.Flush()
}

// end sends the finish chunk (with the MCP calls of a text-only answer),
// the usage chunk when asked for, and [DONE].
func (r *responder) end(finishReason string, usage *llm.Usage) {
	r.chunk(delta{MCPToolCalls: r.toolCalls}, &finishReason, nil)
	if r.req.includeUsage {
		r.chunk(delta{}, nil, usage)
	}
	r.event([]byte("[DONE]"))
}

// chunk sends one chat.completion.chunk; a usage chunk has no choices.
func (r *responder) chunk(d delta, finishReason *string, usage *llm.Usage) {
	r.identify("", "", 0)
	c := chunkOut{ID: r.id, Object: "chat.completion.chunk", Created: r.created, Model: r.model, Choices: []chunkChoice{}, Usage: usage}
	if usage == nil {
		if !r.committed {
			d.Role = "assistant"
		}
		c.Choices = append(c.Choices, chunkChoice{Index: 0, Delta: d, FinishReason: finishReason})
	}
	raw, err := json.Marshal(c)
	if err != nil {
		r.err = err
		return
	}
	r.event(raw)
}

// event writes one server-sent event, sending the stream's headers first.
func (r *responder) event(data []byte) {
	if r.err != nil {
		return
	}
	if !r.committed {
		h := r.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		r.w.WriteHeader(http.StatusOK)
		r.committed = true
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := r.w.Write(buf); err != nil {
		r.err = err
		return
	}
	if err := r.rc.Flush(); err != nil {
		r.err = err
	}
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

type completion struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []choice   `json:"choices"`
	Usage   *llm.Usage `json:"usage,omitempty"`
}

type choice struct {
	Index        int     `json:"index"`
	Message      message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

type message struct {
	Role                     string                 `json:"role"`
	Content                  *string                `json:"content"`
	ToolCalls                []llm.ToolCall         `json:"tool_calls,omitempty"`
	MCPAuthorizationRequired []AuthorizationRequest `json:"mcp_authorization_required,omitempty"`
	MCPApprovalRequests      []ApprovalRequest      `json:"mcp_approval_requests,omitempty"`
	MCPElicitationRequests   []ElicitationRequest   `json:"mcp_elicitation_requests,omitempty"`
	MCPToolCalls             []MCPToolCall          `json:"mcp_tool_calls,omitempty"`
}

type chunkOut struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *llm.Usage    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role                     string                 `json:"role,omitempty"`
	Content                  *string                `json:"content,omitempty"`
	ToolCalls                []toolCallDelta        `json:"tool_calls,omitempty"`
	MCPAuthorizationRequired []AuthorizationRequest `json:"mcp_authorization_required,omitempty"`
	MCPApprovalRequests      []ApprovalRequest      `json:"mcp_approval_requests,omitempty"`
	MCPElicitationRequests   []ElicitationRequest   `json:"mcp_elicitation_requests,omitempty"`
	MCPToolCalls             []MCPToolCall          `json:"mcp_tool_calls,omitempty"`
}

type toolCallDelta struct {
	Index    int              `json:"index"`
	ID       string           `json:"id"`
	Type     string           `json:"type"`
	Function llm.FunctionCall `json:"function"`
}
