package chat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// A chat request holds no state between requests, so an MCP server asking
// for input (elicitation) during a tool call is handled in two requests:
//
//  1. The server is answered "cancel" at once (or it refused the call with
//     -32042, URL elicitation required), the call's result is dropped, and
//     the answer ends with a message that carries
//     "mcp_elicitation_requests": [{id, server_url, message,
//     requested_schema, mode, url}].
//  2. The client sends the same request again with
//     "mcp_elicitation_responses": [{elicitation_request_id, action,
//     content}]. The request id carries the tool call itself (function and
//     arguments), the schema, and the answers to the call's earlier
//     elicitations, so mcpidp replays that call first, without asking the
//     model again, and answers the server's elicitations from those
//     answers, then goes on with the model. A call that asks again (a
//     second form) ends the answer with a new request whose id carries
//     every answer so far.
//
// The id is not secret and not signed: it holds only what the client sent
// (its conversation's tool call) and its own answers, and a replayed call
// must still be one of the request's MCP tools. A call that ran on an
// approval (mcp_approval_responses) carries that approval's sealed id, so
// that its replay runs on the same approval instead of asking again; the
// replay opens it as a resend's approval response is opened.

// ElicitationRequest is one entry of a message's "mcp_elicitation_requests".
type ElicitationRequest struct {
	ID              string          `json:"id"`
	ServerURL       string          `json:"server_url"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema,omitempty"`
	Mode            string          `json:"mode"`
	URL             string          `json:"url,omitempty"`
}

// elicitPrefix starts every elicitation request id.
const elicitPrefix = "elicit_"

// maxElicitIDBytes bounds an elicitation request id a client sends back.
const maxElicitIDBytes = 256 << 10

// pendingCall is what an elicitation request id carries.
type pendingCall struct {
	Function  string                   `json:"f"`
	Arguments json.RawMessage          `json:"a"`
	Mode      string                   `json:"m"`
	Schema    json.RawMessage          `json:"s,omitempty"`
	Answers   []mcpclient.ElicitResult `json:"p,omitempty"`
	// Approval is the approval request id the call was approved with.
	Approval string `json:"ap,omitempty"`
}

func (p *pendingCall) id() string {
	raw, _ := json.Marshal(p)
	return elicitPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// callID is the tool call id a replayed call is recorded with.
func (p *pendingCall) callID() string {
	sum := sha256.Sum256(append([]byte(p.Function+"\x00"), p.Arguments...))
	return "call_mcpidp_" + hex.EncodeToString(sum[:8])
}

func (p *pendingCall) sameCall(function string, args json.RawMessage) bool {
	return p.Function == function && bytes.Equal(bytes.TrimSpace(p.Arguments), bytes.TrimSpace(args))
}

// parseElicitationResponses reads "mcp_elicitation_responses": at most one
// answer (a run stops at the first call that asks), checked against the
// schema its id carries, with the schema's defaults applied.
func parseElicitationResponses(raw json.RawMessage) (*pendingCall, error) {
	const param = "mcp_elicitation_responses"
	var rs []struct {
		ID      string          `json:"elicitation_request_id"`
		Action  string          `json:"action"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, chatreq.Invalid(param, "mcp_elicitation_responses must be an array of {elicitation_request_id, action, content}")
	}
	switch {
	case len(rs) == 0:
		return nil, nil
	case len(rs) > 1:
		return nil, chatreq.Invalid(param, "answer one elicitation request per message: the answer asks for one at a time")
	}
	r := rs[0]
	p, err := decodeElicitID(r.ID)
	if err != nil {
		return nil, chatreq.Invalid(param+"[0].elicitation_request_id", err.Error())
	}
	answer := mcpclient.ElicitResult{Action: r.Action}
	switch r.Action {
	case mcpclient.ElicitAccept:
		if p.Mode == mcpclient.ElicitModeForm {
			schema, err := elicitform.Parse(p.Schema)
			if err != nil {
				return nil, chatreq.Invalid(param+"[0].elicitation_request_id", err.Error())
			}
			content, err := schema.Apply(r.Content)
			var ce *elicitform.ContentError
			if errors.As(err, &ce) {
				field := param + "[0].content"
				if ce.Field != "" {
					field += "." + ce.Field
				}
				return nil, chatreq.Invalid(field, ce.Error())
			}
			if err != nil {
				return nil, err
			}
			answer.Content = content
		}
	case mcpclient.ElicitDecline, mcpclient.ElicitCancel:
	default:
		return nil, chatreq.Invalid(param+"[0].action", fmt.Sprintf("action must be accept, decline or cancel, not %q", r.Action))
	}
	p.Answers = append(p.Answers, answer)
	return p, nil
}

func decodeElicitID(id string) (*pendingCall, error) {
	if len(id) > maxElicitIDBytes || len(id) <= len(elicitPrefix) || id[:len(elicitPrefix)] != elicitPrefix {
		return nil, errors.New("not an elicitation request id of this service")
	}
	raw, err := base64.RawURLEncoding.DecodeString(id[len(elicitPrefix):])
	if err != nil {
		return nil, errors.New("not an elicitation request id of this service")
	}
	var p pendingCall
	if err := json.Unmarshal(raw, &p); err != nil || p.Function == "" || !json.Valid(p.Arguments) {
		return nil, errors.New("not an elicitation request id of this service")
	}
	return &p, nil
}

// elicitations answers the elicitations of one chat request's tool calls:
// from the answers of a replayed call, else by ending the answer with an
// elicitation request.
type elicitations struct {
	replay *pendingCall // the call the client answered for, nil when none
	// approved are the request's approvals that let a held-back call run.
	approved []answered

	mu      sync.Mutex
	current *pendingCall // the call in flight, with the answers it may use
	seen    int          // elicitations of the current call so far
	asked   *ElicitationRequest
}

// errElicitation ends a run whose tool call asked for input nobody gave.
type errElicitation struct{ req ElicitationRequest }

func (e *errElicitation) Error() string {
	return "MCP server " + e.req.ServerURL + " asks the user for input"
}

func (e *elicitations) elicit(_ context.Context, ask mcpclient.ElicitRequest) (*mcpclient.ElicitResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.current == nil {
		return &mcpclient.ElicitResult{Action: mcpclient.ElicitCancel}, nil
	}
	i := e.seen
	e.seen++
	if i < len(e.current.Answers) {
		a := e.current.Answers[i]
		return &a, nil
	}
	if e.asked == nil {
		p := &pendingCall{Function: e.current.Function, Arguments: e.current.Arguments, Mode: ask.Mode, Schema: ask.RequestedSchema,
			Answers: append([]mcpclient.ElicitResult(nil), e.current.Answers...), Approval: e.current.Approval}
		e.asked = &ElicitationRequest{ID: p.id(), ServerURL: ask.ServerURL, Message: ask.Message, RequestedSchema: ask.RequestedSchema, Mode: ask.Mode, URL: ask.URL}
	}
	// Nobody can answer within this request: the call's result is dropped.
	return &mcpclient.ElicitResult{Action: mcpclient.ElicitCancel}, nil
}

// tools wraps a run's MCP tools so that a call during which a server asked
// for input ends the run with *errElicitation.
func (e *elicitations) tools(inner agentloop.Tools) agentloop.Tools {
	return &elicitingTools{Tools: inner, e: e}
}

type elicitingTools struct {
	agentloop.Tools
	e *elicitations
}

func (t *elicitingTools) Call(ctx context.Context, function string, arguments json.RawMessage) (*agentloop.ToolResult, error) {
	e := t.e
	e.mu.Lock()
	e.current, e.seen, e.asked = &pendingCall{Function: function, Arguments: arguments, Approval: e.approvalOf(function, arguments)}, 0, nil
	if e.replay != nil && e.replay.sameCall(function, arguments) {
		e.current.Answers = e.replay.Answers
		e.replay = nil // answered once
	}
	e.mu.Unlock()
	res, err := t.Tools.Call(ctx, function, arguments)
	e.mu.Lock()
	asked := e.asked
	var answers []mcpclient.ElicitResult
	if e.current != nil {
		answers = e.current.Answers
	}
	e.current = nil
	e.mu.Unlock()
	if asked != nil {
		return nil, &errElicitation{req: *asked}
	}
	var refused *mcpclient.URLElicitationRequiredError
	if errors.As(err, &refused) && len(refused.Elicitations) > 0 && len(answers) == 0 {
		// The server refused the call until the user has been to a URL
		// (-32042): ask for it the same way; the resend replays the call.
		ask := refused.Elicitations[0]
		p := &pendingCall{Function: function, Arguments: arguments, Mode: mcpclient.ElicitModeURL, Approval: e.approvalOf(function, arguments)}
		return nil, &errElicitation{req: ElicitationRequest{ID: p.id(), ServerURL: ask.ServerURL, Message: ask.Message, Mode: ask.Mode, URL: ask.URL}}
	}
	return res, err
}

// approvalOf is the id of the approval a call runs on, "" when none.
func (e *elicitations) approvalOf(function string, arguments json.RawMessage) string {
	for _, a := range e.approved {
		if a.approve && a.call.Function == function && bytes.Equal(bytes.TrimSpace(a.call.Arguments), bytes.TrimSpace(arguments)) {
			return a.id
		}
	}
	return ""
}

// SafeToRepeat passes the inner tools' hints on.
func (t *elicitingTools) SafeToRepeat(function string) bool {
	rc, ok := t.Tools.(agentloop.RepeatChecker)
	return ok && rc.SafeToRepeat(function)
}

// ReadOnly passes the inner tools' readOnlyHint on, which require_approval
// "auto" reads: without it every tool would look like a writer.
func (t *elicitingTools) ReadOnly(function string) bool {
	ro, ok := t.Tools.(agentloop.ReadOnlyChecker)
	return ok && ro.ReadOnly(function)
}

// replayStep is the model turn a replayed call continues: the call the
// client answered for.
func (p *pendingCall) replayStep() agentloop.Step {
	return agentloop.Step{Type: agentloop.StepModel, ToolCalls: []llm.ToolCall{{ID: p.callID(), Type: "function",
		Function: llm.FunctionCall{Name: p.Function, Arguments: string(p.Arguments)}}}}
}

// replayApproval opens the approval a replayed call carries: one this
// deployment issued to this user for that very call.
func replayApproval(ap *approvals, p *pendingCall, tools agentloop.Tools, policies map[string]agentloop.ApprovalPolicy) ([]answered, error) {
	const param = "mcp_elicitation_responses[0].elicitation_request_id"
	yes := true
	ans, err := ap.open([]approvalResponse{{ID: p.Approval, Approve: &yes}}, tools, policies)
	var ce *Error
	if errors.As(err, &ce) {
		return nil, chatreq.Invalid(param, "the approval of the call it answers was not issued to this user for this request's tools, or has expired; send the request without it to be asked again")
	}
	if err != nil {
		return nil, err
	}
	if !p.sameCall(ans[0].call.Function, ans[0].call.Arguments) {
		return nil, chatreq.Invalid(param, "the approval it carries is for another call")
	}
	return ans, nil
}
