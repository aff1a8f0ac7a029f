package responses

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/redact"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Upstream Responses API modes (MCPIDP_UPSTREAM_RESPONSES).
const (
	// UpstreamOff translates every request to Chat Completions.
	UpstreamOff = "off"
	// UpstreamOn sends a request without MCP tools and without background
	// to the upstream's own POST /responses, untouched; requests with MCP
	// tools still run mcpidp's loop over Chat Completions.
	UpstreamOn = "on"
)

// MaxConversationBytes bounds the items a response continues from (its
// previous responses' input and output, and its own input): every stored
// response keeps them.
const MaxConversationBytes = 16 << 20

func itemsSize(items []json.RawMessage) int {
	n := 0
	for _, it := range items {
		n += len(it)
	}
	return n
}

// Config holds an Engine's dependencies.
type Config struct {
	// Model calls the upstream. Required.
	Model *llm.Client
	// Chat forwards pass-through requests and shares the chat engine's
	// error answers. Required.
	Chat *chat.Engine
	// OAuth holds each user's MCP logins and makes login links. Required.
	OAuth *mcpauth.Engine
	// HTTPClient reaches MCP servers: the SSRF guard's client. Required.
	HTTPClient *http.Client
	// Store keeps stored responses. Required.
	Store *store.Store
	// Tasks runs background responses. Required.
	Tasks *task.Service
	// Limits bound one request.
	Limits Limits
	// MCPLimits bound what is kept of MCP servers' answers.
	MCPLimits mcpclient.Limits
	// Upstream is UpstreamOff (default) or UpstreamOn.
	Upstream string
	Logger   *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.Model == nil:
		return errors.New("responses: model client is required")
	case c.Chat == nil:
		return errors.New("responses: chat engine is required")
	case c.OAuth == nil:
		return errors.New("responses: OAuth engine is required")
	case c.HTTPClient == nil:
		return errors.New("responses: HTTP client is required")
	case c.Store == nil:
		return errors.New("responses: store is required")
	case c.Tasks == nil:
		return errors.New("responses: task service is required")
	}
	switch c.Upstream {
	case "":
		c.Upstream = UpstreamOff
	case UpstreamOff, UpstreamOn:
	default:
		return fmt.Errorf("responses: upstream Responses mode must be %q or %q, got %q", UpstreamOff, UpstreamOn, c.Upstream)
	}
	return nil
}

// Engine answers OpenAI Responses API requests with the chat engine's
// parts: the same MCP connections, tool loop and login links, and the task
// service for background responses. It is safe for concurrent use.
type Engine struct {
	cfg Config
}

// New validates cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Limits.ApplyDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = slog.New(redact.NewHandler(cfg.Logger.Handler()))
	return &Engine{cfg: cfg}, nil
}

// Call is one POST /v1/responses.
type Call struct {
	Tenant string
	Body   []byte
	// UpstreamKey, when set, replaces the configured upstream key (and is
	// sealed with a background response's task).
	UpstreamKey string
}

// Serve answers one POST /v1/responses on w: a response object, a stream
// of events, or (background) the queued response. It returns when the
// answer is complete or ctx ends.
func (e *Engine) Serve(ctx context.Context, w http.ResponseWriter, call Call) {
	req, err := ParseRequest(call.Body, e.cfg.Limits)
	if err != nil {
		chat.WriteError(w, err)
		return
	}
	if e.cfg.Upstream == UpstreamOn && len(req.Servers) == 0 && !req.Background {
		e.cfg.Chat.Forward(ctx, w, http.MethodPost, "/responses", bytes.NewReader(call.Body), call.UpstreamKey,
			http.Header{"Content-Type": {"application/json"}})
		return
	}
	conv, prev, err := e.conversation(ctx, call.Tenant, req)
	if err != nil {
		chat.WriteError(w, err)
		return
	}
	if size := itemsSize(conv); size > MaxConversationBytes {
		// Each stored response keeps its whole conversation: bound it.
		chat.WriteError(w, chatreq.Invalid("previous_response_id", fmt.Sprintf(
			"the conversation is %d bytes, more than the %d a response may continue: start a new one", size, MaxConversationBytes)))
		return
	}
	// A run that waited for approvals goes on from its steps, with the
	// messages it began with.
	from := &runState{Conversation: conv}
	if req.Decisions != nil {
		if from, err = resumable(prev, req.Decisions); err != nil {
			chat.WriteError(w, err)
			return
		}
	}
	msgs, err := Messages(req.Instructions, from.Conversation)
	if err != nil {
		chat.WriteError(w, err)
		return
	}
	if len(msgs) > e.cfg.Limits.MaxMessages {
		chat.WriteError(w, chatreq.Invalid("input", fmt.Sprintf("the conversation has %d messages, the limit is %d", len(msgs), e.cfg.Limits.MaxMessages)))
		return
	}
	if len(msgs) == 0 {
		chat.WriteError(w, chatreq.Invalid("input", "input must hold at least one message"))
		return
	}
	if req.Background {
		if req.Decisions != nil {
			chat.WriteError(w, chatreq.Invalid("background", "a background response's approval requests are decided with POST /v1/tasks/{id}/approvals/{approval_id} or their approve_url, and the response goes on in place"))
			return
		}
		if req.Stream {
			chat.WriteError(w, chatreq.Invalid("stream", "background responses are not streamed here: create it, then GET /v1/responses/{id}"))
			return
		}
		o, err := e.submit(ctx, call, req, conv, msgs)
		if err != nil {
			chat.WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, o)
		return
	}
	e.run(ctx, w, call, req, conv, msgs, from, prev)
}

// resumable checks that decisions answer the approval requests prev waits
// on, and returns the run they resume.
func resumable(prev *Object, decisions map[string]agentloop.Verdict) (*runState, error) {
	if prev == nil {
		return nil, chatreq.Invalid("input", "mcp_approval_response items answer a stored response's mcp_approval_request items: send its previous_response_id")
	}
	if prev.run == nil {
		return nil, chatreq.Invalid("previous_response_id", fmt.Sprintf("response %q waits for no approvals", prev.ID))
	}
	for id := range decisions {
		if !slices.Contains(prev.run.Pending, id) {
			return nil, chatreq.Invalid("input", fmt.Sprintf("approval_request_id %q is not one response %q waits for", id, prev.ID))
		}
	}
	return prev.run, nil
}

// conversation is the items a request continues from: those of its
// previous response (its conversation and output), then its own input.
func (e *Engine) conversation(ctx context.Context, tenant string, req *Request) ([]json.RawMessage, *Object, error) {
	if req.PreviousResponseID == "" {
		return req.Input, nil, nil
	}
	notFound := &chatreq.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "previous_response_not_found", Param: "previous_response_id",
		Message: fmt.Sprintf("previous response %q not found", req.PreviousResponseID)}
	o, s, row, err := e.load(ctx, tenant, req.PreviousResponseID)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.UserID != req.User {
		// Another user's conversation is not this user's to continue.
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, err
	}
	if o.Status == StatusQueued || o.Status == StatusInProgress {
		return nil, nil, chatreq.Invalid("previous_response_id", fmt.Sprintf("previous response %q is still %s: continue from it once it has ended", o.ID, o.Status))
	}
	conv := append([]json.RawMessage(nil), s.Conversation...)
	for _, it := range o.Output {
		raw, err := json.Marshal(it)
		if err != nil {
			return nil, nil, err
		}
		conv = append(conv, raw)
	}
	o.run = s.Run
	return append(conv, req.Input...), o, nil
}

// load reads a stored response with what it continues from.
func (e *Engine) load(ctx context.Context, tenant, id string) (*Object, *stored, *store.Response, error) {
	st := e.cfg.Store
	row, err := st.GetResponse(ctx, st.DB(), tenant, id)
	if err != nil {
		return nil, nil, nil, err
	}
	var t *task.Object
	if row.Background {
		if t, err = e.cfg.Tasks.Get(ctx, task.GetParams{Tenant: tenant, ID: id}); err != nil {
			return nil, nil, nil, err
		}
	}
	o, s, err := fromRow(row, t)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("error reading stored response %s: %w", id, err)
	}
	return o, s, row, nil
}

// Get returns the tenant's stored response, or store.ErrNotFound.
func (e *Engine) Get(ctx context.Context, tenant, id string) (*Object, error) {
	o, _, _, err := e.load(ctx, tenant, id)
	return o, err
}

// InputItems is a page of a response's input items
// (GET /v1/responses/{id}/input_items).
type InputItems struct {
	Object  string `json:"object"`
	Data    []any  `json:"data"`
	FirstID string `json:"first_id,omitempty"`
	LastID  string `json:"last_id,omitempty"`
	HasMore bool   `json:"has_more"`
}

// ListInputItems returns the input items the request of a stored response
// sent (not those of the responses it continued), newest first unless
// ascending, up to limit after the item named after. Items without an id
// get one derived from the response id and their position.
func (e *Engine) ListInputItems(ctx context.Context, tenant, id, after string, limit int, ascending bool) (*InputItems, error) {
	st := e.cfg.Store
	row, err := st.GetResponse(ctx, st.DB(), tenant, id)
	if err != nil {
		return nil, err
	}
	var s stored
	if err := json.Unmarshal(row.Request, &s); err != nil {
		return nil, fmt.Errorf("error reading stored response %s: %w", id, err)
	}
	n := min(s.Inputs, len(s.Conversation))
	own := s.Conversation[len(s.Conversation)-n:]
	items := make([]map[string]any, 0, n)
	for i, raw := range own {
		var it map[string]any
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, fmt.Errorf("error reading stored input item: %w", err)
		}
		if _, ok := it["id"]; !ok {
			it["id"] = fmt.Sprintf("in_%s_%d", idsFor(id).suffix, i)
		}
		if _, ok := it["type"]; !ok {
			it["type"] = "message"
		}
		if text, ok := it["content"].(string); ok && it["type"] == "message" {
			// As OpenAI lists them: text content as one part.
			part := "input_text"
			if it["role"] == "assistant" {
				part = "output_text"
			}
			it["content"] = []any{map[string]any{"type": part, "text": text}}
		}
		items = append(items, it)
	}
	if !ascending {
		slices.Reverse(items)
	}
	if after != "" {
		at := slices.IndexFunc(items, func(it map[string]any) bool { return it["id"] == after })
		if at < 0 {
			return nil, chatreq.Invalid("after", fmt.Sprintf("response %q has no input item %q", id, after))
		}
		items = items[at+1:]
	}
	out := &InputItems{Object: "list", Data: []any{}}
	if len(items) > limit {
		items, out.HasMore = items[:limit], true
	}
	for _, it := range items {
		out.Data = append(out.Data, it)
	}
	if len(items) > 0 {
		out.FirstID, out.LastID = items[0]["id"].(string), items[len(items)-1]["id"].(string)
	}
	return out, nil
}

// ErrNotBackground is returned by Cancel for a response that was answered
// in its request.
var ErrNotBackground = errors.New("only background responses can be cancelled")

// Cancel cancels a background response that has not ended. A response
// that ended gives *task.NotCancelableError; one answered in its request
// ErrNotBackground.
func (e *Engine) Cancel(ctx context.Context, tenant, id string) (*Object, error) {
	st := e.cfg.Store
	row, err := st.GetResponse(ctx, st.DB(), tenant, id)
	if err != nil {
		return nil, err
	}
	if !row.Background {
		return nil, ErrNotBackground
	}
	if _, err := e.cfg.Tasks.Cancel(ctx, task.CancelParams{Tenant: tenant, ID: id}); err != nil {
		return nil, err
	}
	return e.Get(ctx, tenant, id)
}

// Delete removes a stored response (and a background response's task,
// which stops at its next step).
func (e *Engine) Delete(ctx context.Context, tenant, id string) error {
	st := e.cfg.Store
	row, err := st.GetResponse(ctx, st.DB(), tenant, id)
	if err != nil {
		return err
	}
	if row.Background {
		if err := e.cfg.Tasks.Delete(ctx, task.DeleteParams{Tenant: tenant, ID: id}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return st.DeleteResponse(ctx, st.DB(), tenant, id)
}

// submit creates a background response: its row and its task (with the
// task's first job) in one transaction.
func (e *Engine) submit(ctx context.Context, call Call, req *Request, conv, msgs []json.RawMessage) (*Object, error) {
	st := e.cfg.Store
	id := store.NewID("resp_", st.Now())
	saved := storedOf(req, conv)
	reqJSON, err := json.Marshal(saved)
	if err != nil {
		return nil, fmt.Errorf("error encoding response request: %w", err)
	}
	treq := task.Request{
		Body: req.Body, Messages: msgs, MaxSteps: req.MaxSteps, ClientTools: req.Functions, MaxToolCalls: req.MaxToolCalls,
		AuthorizationRequestCallback: req.AuthorizationRequestCallback, Webhook: req.Webhook,
	}
	secrets := task.Secrets{UpstreamAuthorization: call.UpstreamKey}
	for _, s := range req.Servers {
		ts := task.Server{URL: s.URL, AllowedTools: s.AllowedTools}
		if p, ok := req.Approvals[s.URL]; ok {
			ts.RequireApproval = &p
		}
		for name := range s.Headers {
			ts.HeaderNames = append(ts.HeaderNames, name)
		}
		treq.Servers = append(treq.Servers, ts)
		if len(s.Headers) > 0 {
			if secrets.Headers == nil {
				secrets.Headers = map[string]map[string]string{}
			}
			secrets.Headers[s.URL] = s.Headers
		}
		if s.ConnectURL != "" {
			if secrets.ConnectURLs == nil {
				secrets.ConnectURLs = map[string]string{}
			}
			secrets.ConnectURLs[s.URL] = s.ConnectURL
		}
	}
	var row *store.Response
	t, _, err := e.cfg.Tasks.Create(ctx, task.CreateParams{
		Tenant: call.Tenant, ID: id, User: req.User, Model: req.Model, Store: true, Metadata: req.Metadata,
		Request: treq, Secrets: secrets,
		CreateTxFunc: func(ctx context.Context, tx *sql.Tx, t *store.Task) error {
			row = &store.Response{ID: id, TenantID: call.Tenant, UserID: req.User, Background: true, Status: StatusQueued,
				Model: req.Model, Request: reqJSON, CreatedAt: t.CreatedAt}
			return st.CreateResponse(ctx, tx, row)
		},
	})
	if err != nil {
		return nil, err
	}
	o, _, err := fromRow(row, t)
	return o, err
}

// run answers a request in the request: the tool loop, shown as a
// response object or a stream of events, and stored unless store is false.
func (e *Engine) run(ctx context.Context, w http.ResponseWriter, call Call, req *Request, conv, msgs []json.RawMessage, from *runState, prev *Object) {
	st := e.cfg.Store
	created := st.Now()
	id := store.NewID("resp_", created)
	saved := storedOf(req, conv)
	r := &runner{e: e, req: req, call: call, saved: saved, b: newBuilder(id, req.Labels, req.Functions),
		obj: newObject(id, created, req.Model, req.User, false, req.Store, saved), from: from, recorded: len(from.Steps)}
	if prev != nil && req.Decisions != nil {
		p := idsFor(prev.ID)
		r.prev = &p
	}
	if req.Stream {
		r.ev = newEvents(w)
	}

	var tools *agentloop.MCPTools
	if len(req.Servers) > 0 {
		connect := agentloop.UserConnect(e.cfg.OAuth, mcpclient.Options{HTTPClient: e.cfg.HTTPClient, Logger: e.cfg.Logger, Limits: e.cfg.MCPLimits}, call.Tenant, req.User)
		var err error
		tools, err = agentloop.ConnectMCP(ctx, connect, req.Servers)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if chs := agentloop.Challenges(err); chs != nil {
				r.start()
				r.login(ctx, chs, nil)
				r.end(ctx, w)
				return
			}
			chat.WriteError(w, chat.MCPError(err))
			return
		}
		defer tools.Close()
	}
	r.start()
	if tools != nil {
		for n, srv := range tools.Servers() {
			it := listToolsItem(r.b.ids.listTools(n), req.Labels[srv.ServerURL], srv.Tools)
			r.lists = append(r.lists, it)
			if r.ev != nil {
				index := r.next()
				open := it
				open.Tools = []ListedTool{}
				r.ev.send("response.output_item.added", map[string]any{"output_index": index, "item": open})
				r.ev.send("response.mcp_list_tools.in_progress", map[string]any{"item_id": it.ID, "output_index": index})
				r.ev.send("response.mcp_list_tools.completed", map[string]any{"item_id": it.ID, "output_index": index})
				r.ev.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
			}
		}
	}

	opts := llm.CallOptions{APIKey: call.UpstreamKey}
	run := &agentloop.Run{
		Body:         req.Body,
		Messages:     msgs,
		ClientTools:  req.Functions,
		MaxSteps:     req.MaxSteps,
		MaxToolCalls: req.MaxToolCalls,
		Steps:        from.Steps,
		Complete:     r.completeFunc(e.cfg.Model, opts),
		Record:       r.record,
		ErrorIsFatal: agentloop.IsChallenge,
		Approvals:    req.Approvals,
		Approve:      r.approve,
	}
	if tools != nil {
		run.Tools = &announcedTools{MCPTools: tools, r: r}
	}
	out, err := run.Execute(ctx)
	if ctx.Err() != nil {
		return // the client went away: nobody to answer
	}
	if out != nil {
		r.steps = out.Steps
		r.usage = out.Usage
		for _, st := range from.Steps {
			if u := st.Usage; u != nil { // counted by the response that ran them
				r.usage.PromptTokens -= u.PromptTokens
				r.usage.CompletionTokens -= u.CompletionTokens
				r.usage.TotalTokens -= u.TotalTokens
			}
		}
	}
	var held *agentloop.ApprovalRequiredError
	switch chs := agentloop.Challenges(err); {
	case errors.As(err, &held):
		r.hold(held)
	case chs != nil:
		r.login(ctx, chs, out)
	case err != nil:
		if r.ev == nil {
			if status, _ := statusOf(err); status >= 500 {
				e.cfg.Logger.ErrorContext(ctx, "responses: response failed", slog.String("error", err.Error()))
			}
			chat.WriteError(w, err)
			return
		}
		r.fail(err)
	default:
		r.finish(out)
	}
	r.end(ctx, w)
}

// statusOf is the HTTP status an error is answered with.
func statusOf(err error) (int, string) {
	var e *chatreq.Error
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	var apiErr *llm.APIError
	if errors.As(err, &apiErr) {
		if apiErr.Code == "" {
			return apiErr.StatusCode, "model_error"
		}
		return apiErr.StatusCode, apiErr.Code
	}
	if errors.Is(err, agentloop.ErrModel) {
		return http.StatusBadGateway, "model_error"
	}
	return http.StatusInternalServerError, "internal_error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		chat.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// With its length known and flushed, the answer is complete on the wire now: the caller need
	// not wait for the run's MCP sessions to close (a DELETE each) once the handler is done.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// runner turns one run into a response: events as it goes when streamed,
// the response object at the end. All its methods, the MCP call
// announcements of announcedTools included, run on the loop's goroutine.
type runner struct {
	e     *Engine
	req   *Request
	call  Call
	saved *stored
	b     *builder
	obj   *Object
	ev    *events // nil unless streamed

	// from is the run this response goes on from (the steps of a response
	// that waited for approvals), or its start; prev names that response's
	// approval requests when this one answers them.
	from *runState
	prev *ids

	lists    []MCPListToolsItem
	steps    []agentloop.Step
	usage    llm.Usage
	recorded int // steps recorded so far
	outputs  int // output items announced so far

	// The message being streamed, if any.
	msg      *MessageItem
	msgIndex int
	msgText  strings.Builder
	// The MCP call announced but not recorded yet.
	callIndex int
	callStep  int
	callItem  *MCPCallItem
	// extra are the items a run's end adds (login links and their message).
	extra []any
}

func (r *runner) next() int {
	n := r.outputs
	r.outputs++
	return n
}

// start announces the response.
func (r *runner) start() {
	if r.ev == nil {
		return
	}
	r.ev.send("response.created", map[string]any{"response": r.obj})
	r.ev.send("response.in_progress", map[string]any{"response": r.obj})
}

func (r *runner) completeFunc(model *llm.Client, opts llm.CallOptions) agentloop.CompleteFunc {
	return func(ctx context.Context, body []byte) (*llm.Completion, error) {
		if r.ev == nil {
			return model.Complete(ctx, body, opts)
		}
		return model.Stream(ctx, body, opts, r.onChunk)
	}
}

// onChunk streams the text of the model's turn as the message item of the
// step it will be recorded as.
func (r *runner) onChunk(_ []byte, chunk *llm.Chunk) error {
	for _, c := range chunk.Choices {
		if c.Index != 0 || c.Delta.Content == "" {
			continue
		}
		if r.msg == nil {
			it := messageItem(r.b.ids.message(r.recorded), "", StatusInProgress)
			it.Content = []OutputText{}
			r.msg, r.msgIndex = &it, r.next()
			r.msgText.Reset()
			r.ev.send("response.output_item.added", map[string]any{"output_index": r.msgIndex, "item": it})
			r.ev.textPart(r.msgIndex, it.ID)
		}
		r.msgText.WriteString(c.Delta.Content)
		r.ev.send("response.output_text.delta", map[string]any{"item_id": r.msg.ID, "output_index": r.msgIndex, "content_index": 0,
			"delta": c.Delta.Content, "logprobs": []any{}})
	}
	return r.ev.err
}

// record is the loop's RecordFunc: it ends the items of each step.
func (r *runner) record(ctx context.Context, index int, st agentloop.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.recorded = index + 1
	if r.ev == nil {
		return nil
	}
	switch st.Type {
	case agentloop.StepModel:
		if r.msg != nil {
			r.ev.endMessage(r.msgIndex, messageItem(r.msg.ID, st.Content, StatusCompleted))
			r.msg = nil
		}
	case agentloop.StepTool:
		label, name := r.b.toolName(&st)
		if r.callItem == nil || r.callStep != index {
			r.announce(index, label, name, st.Arguments)
		}
		it := mcpCallItem(r.callItem.ID, label, name, st.Arguments, &st)
		ev := "response.mcp_call.completed"
		if st.IsError {
			ev = "response.mcp_call.failed"
		}
		r.ev.send(ev, map[string]any{"item_id": it.ID, "output_index": r.callIndex})
		r.ev.send("response.output_item.done", map[string]any{"output_index": r.callIndex, "item": it})
		r.callItem = nil
	}
	return r.ev.err
}

// announce sends the start of the MCP call that will be recorded as step.
func (r *runner) announce(step int, label, name string, arguments json.RawMessage) {
	it := mcpCallItem(r.b.ids.mcpCall(step), label, name, nil, nil)
	r.callItem, r.callStep, r.callIndex = &it, step, r.next()
	r.ev.send("response.output_item.added", map[string]any{"output_index": r.callIndex, "item": it})
	r.ev.send("response.mcp_call_arguments.delta", map[string]any{"item_id": it.ID, "output_index": r.callIndex, "delta": string(arguments)})
	r.ev.send("response.mcp_call_arguments.done", map[string]any{"item_id": it.ID, "output_index": r.callIndex, "arguments": string(arguments)})
	r.ev.send("response.mcp_call.in_progress", map[string]any{"item_id": it.ID, "output_index": r.callIndex})
}

// announcedTools announces each MCP call as it starts, when streamed.
type announcedTools struct {
	*agentloop.MCPTools
	r *runner
}

func (t *announcedTools) Call(ctx context.Context, function string, arguments json.RawMessage) (*agentloop.ToolResult, error) {
	if t.r.ev != nil {
		label, name := "", function
		if serverURL, tool, ok := t.Resolve(function); ok {
			label, name = t.r.req.Labels[serverURL], tool
		}
		t.r.announce(t.r.recorded, label, name, arguments)
	}
	return t.MCPTools.Call(ctx, function, arguments)
}

// finish completes the response with the run's items.
func (r *runner) finish(out *agentloop.Outcome) {
	r.obj.Status = StatusCompleted
	if out.Reason == agentloop.ReasonMaxSteps {
		r.obj.Status, r.obj.IncompleteDetails = StatusIncomplete, &Incomplete{Reason: ReasonMaxSteps}
	}
	if r.ev == nil {
		return
	}
	// The caller's function calls come last, as they end the run.
	last := -1
	for i, st := range out.Steps {
		if st.Type == agentloop.StepModel {
			last = i
		}
	}
	n := 0
	for _, c := range out.ClientToolCalls {
		it := functionCallItem(r.b.ids.function(last, n), c)
		n++
		index := r.next()
		open := it
		open.Status, open.Arguments = StatusInProgress, ""
		r.ev.send("response.output_item.added", map[string]any{"output_index": index, "item": open})
		r.ev.send("response.function_call_arguments.delta", map[string]any{"item_id": it.ID, "output_index": index, "delta": it.Arguments})
		r.ev.send("response.function_call_arguments.done", map[string]any{"item_id": it.ID, "output_index": index, "arguments": it.Arguments})
		r.ev.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
	}
}

// login ends the response as incomplete with a login link per server that
// asked for one: an mcp_authorization_request item each, and a message
// that shows the links, as the chat proxy's answer does.
func (r *runner) login(ctx context.Context, chs []*mcpclient.AuthChallengeError, out *agentloop.Outcome) {
	e := r.e
	links := agentloop.BeginLogins(ctx, e.cfg.OAuth, r.call.Tenant, r.req.User, chs)
	var reqs []task.AuthorizationRequest
	var failures []string
	for _, l := range links {
		if l.Err != nil {
			e.cfg.Logger.WarnContext(ctx, "responses: login cannot be started", slog.String("server_url", l.ServerURL), slog.String("error", l.Err.Error()))
			failures = append(failures, fmt.Sprintf("%s needs a login, but it cannot be started: %v", l.ServerURL, l.Err))
			continue
		}
		reqs = append(reqs, task.AuthorizationRequest{ServerURL: l.ServerURL, AuthorizationURL: l.AuthorizationURL, ExpiresAt: l.ExpiresAt})
	}
	r.obj.Status, r.obj.IncompleteDetails = StatusIncomplete, &Incomplete{Reason: ReasonAuthorization}
	for _, it := range loginItems(r.b, reqs) {
		r.extra = append(r.extra, it)
		if r.ev != nil {
			r.ev.item(r.next(), it)
		}
	}
	var text strings.Builder
	text.WriteString("To use these tools, log in first:\n\n")
	for _, q := range reqs {
		text.WriteString("- " + agentloop.LoginMarkdown(q.ServerURL, q.AuthorizationURL) + "\n")
	}
	for _, f := range failures {
		text.WriteString("- " + f + "\n")
	}
	text.WriteString("\nThen send your message again.")
	msg := messageItem(fmt.Sprintf("msg_%s_login", r.b.ids.suffix), text.String(), StatusCompleted)
	r.extra = append(r.extra, msg)
	if r.ev != nil {
		r.ev.message(r.next(), msg)
	}
	if len(reqs) == 0 {
		r.obj.Status, r.obj.IncompleteDetails = StatusFailed, nil
		r.obj.Error = &ObjectError{Code: "mcp_authorization_error", Message: strings.Join(failures, "; ")}
	}
}

// approve is the run's ApproveFunc: a call held back by the previous
// response is decided by this request's mcp_approval_response items; any
// other call a policy holds back waits, under an approval request of this
// response.
func (r *runner) approve(_ context.Context, call *agentloop.ApprovalCall) (agentloop.Verdict, error) {
	if r.prev != nil {
		id := r.prev.approval(call.Turn, call.ToolCallID)
		if v, ok := r.req.Decisions[id]; ok {
			call.ID = id
			if r.b.approved == nil {
				r.b.approved = map[string]string{}
			}
			r.b.approved[callKey(call.Turn, call.ToolCallID)] = id
			return v, nil
		}
	}
	call.ID = r.b.ids.approval(call.Turn, call.ToolCallID)
	return agentloop.Verdict{}, nil
}

// hold ends the response with an mcp_approval_request item per call held
// back, and keeps the run for the response that answers them.
func (r *runner) hold(held *agentloop.ApprovalRequiredError) {
	r.obj.Status = StatusCompleted
	run := &runState{Conversation: r.from.Conversation, Steps: r.steps}
	for _, c := range held.Calls {
		it := ApprovalRequestItem{ID: c.ID, Type: "mcp_approval_request", ServerLabel: r.req.Labels[c.ServerURL], Name: c.Tool, Arguments: string(c.Arguments)}
		run.Pending = append(run.Pending, c.ID)
		r.extra = append(r.extra, it)
		if r.ev != nil {
			r.ev.item(r.next(), it)
		}
	}
	r.saved.Run = run
}

// fail ends a streamed response that failed after it began.
func (r *runner) fail(err error) {
	_, code := statusOf(err)
	r.obj.Status = StatusFailed
	r.obj.Error = &ObjectError{Code: code, Message: redact.Text(err.Error())}
}

// end fills the response's output and usage, stores it when asked, and
// answers: the last event of a stream, or the object.
func (r *runner) end(ctx context.Context, w http.ResponseWriter) {
	o := r.obj
	o.Output = []any{}
	for _, it := range r.lists {
		o.Output = append(o.Output, it)
	}
	o.Output = append(o.Output, r.b.items(r.steps, len(r.from.Steps))...)
	o.Output = append(o.Output, r.extra...)
	o.Usage = usageOf(r.usage)
	if r.req.Store {
		r.save(ctx)
	}
	if r.ev == nil {
		writeJSON(w, http.StatusOK, o)
		return
	}
	ev := "response.completed"
	switch o.Status {
	case StatusFailed:
		ev = "response.failed"
	case StatusIncomplete:
		ev = "response.incomplete"
	}
	r.ev.send(ev, map[string]any{"response": o})
}

func (r *runner) save(ctx context.Context) {
	o := r.obj
	output, _ := json.Marshal(o.Output)
	usage, _ := json.Marshal(o.Usage)
	reqJSON, _ := json.Marshal(r.saved)
	var errJSON json.RawMessage
	switch {
	case o.Error != nil:
		errJSON, _ = json.Marshal(o.Error)
	case o.IncompleteDetails != nil:
		errJSON, _ = json.Marshal(map[string]string{"incomplete": o.IncompleteDetails.Reason})
	}
	now := r.e.cfg.Store.Now()
	row := &store.Response{ID: o.ID, TenantID: r.call.Tenant, UserID: r.req.User, Status: o.Status, Model: o.Model,
		Request: reqJSON, Output: output, Usage: usage, Error: errJSON, CreatedAt: time.Unix(o.CreatedAt, 0).UTC(), CompletedAt: &now}
	st := r.e.cfg.Store
	if err := st.CreateResponse(context.WithoutCancel(ctx), st.DB(), row); err != nil {
		// The caller has its answer; only a later previous_response_id or
		// GET will miss it.
		r.e.cfg.Logger.ErrorContext(ctx, "responses: response could not be stored", slog.String("response_id", o.ID), slog.String("error", err.Error()))
	}
}
