package agentloop

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Approval modes of an MCP server's require_approval.
const (
	ApprovalNever  = "never"
	ApprovalAlways = "always"
	// ApprovalAuto asks for every tool that does not declare readOnlyHint.
	ApprovalAuto = "auto"
)

// ApprovalPolicy is one MCP server's require_approval: a Mode, or lists of
// tool names (OpenAI's {"always":{"tool_names":[…]},"never":{…}} shape).
type ApprovalPolicy struct {
	Mode   string   `json:"mode,omitempty"`
	Always []string `json:"always,omitempty"`
	Never  []string `json:"never,omitempty"`
}

// Requires reports whether a call to the MCP tool must wait for a person.
// A tool named in Never never waits and one named in Always always does.
// With lists, a tool named in neither waits unless only an Always list was
// given (the caller named the tools to hold back; everything else runs).
func (p ApprovalPolicy) Requires(tool string, readOnly bool) bool {
	switch {
	case slices.Contains(p.Never, tool):
		return false
	case slices.Contains(p.Always, tool):
		return true
	}
	switch p.Mode {
	case ApprovalAlways:
		return true
	case ApprovalAuto:
		return !readOnly
	case ApprovalNever:
		return false
	}
	if p.Always == nil && p.Never == nil {
		return false
	}
	return p.Always == nil || p.Never != nil
}

// ApprovalCall is a tool call held back until a person decides.
type ApprovalCall struct {
	// ID names the request for approval; the ApproveFunc sets it.
	ID         string          `json:"id"`
	ToolCallID string          `json:"tool_call_id"`
	Function   string          `json:"function"`
	ServerURL  string          `json:"server_url"`
	Tool       string          `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	// Turn is the step index of the model turn that asked for the call:
	// with ToolCallID it names the call within a run (models may reuse
	// call ids across turns).
	Turn int `json:"-"`
}

// Verdict is a person's decision on an ApprovalCall.
type Verdict struct {
	// Decided is false while nobody has answered.
	Decided  bool
	Approved bool
	Reason   string
}

// ApproveFunc looks up the decision on a call that its server's policy
// holds back, setting call.ID to the name the request goes by.
type ApproveFunc func(ctx context.Context, call *ApprovalCall) (Verdict, error)

// ApprovalRequiredError ends a run that holds back tool calls nobody has
// decided on; every other call of the model turn has run and been recorded.
type ApprovalRequiredError struct {
	Calls []ApprovalCall
}

func (e *ApprovalRequiredError) Error() string {
	names := make([]string, len(e.Calls))
	for i, c := range e.Calls {
		names[i] = c.Function
	}
	return "approval required for " + strings.Join(names, ", ")
}

// DeniedOutput is what the model is told of a call the user denied.
func DeniedOutput(reason string) string {
	if reason = strings.TrimSpace(reason); reason != "" {
		return "error: the user denied this call: " + reason
	}
	return "error: the user denied this call"
}

// ReadOnlyChecker is implemented by Tools that know which tools declare
// readOnlyHint (for require_approval "auto").
type ReadOnlyChecker interface {
	ReadOnly(function string) bool
}

// holdBack applies the call's server policy: it returns the approval call
// when the call waits for a person, or the step to record when the person
// denied it. Both nil: run the call.
func (r *Run) holdBack(ctx context.Context, turn int, call ToolCallRef) (*ApprovalCall, *Step, error) {
	if len(r.Approvals) == 0 || r.Tools == nil || r.toolCallsSpent() {
		// Past MaxToolCalls the call is not sent whatever a person says:
		// runTool records it as refused without asking anyone.
		return nil, nil, nil
	}
	serverURL, tool, ok := r.Tools.Resolve(call.Function)
	if !ok {
		return nil, nil, nil
	}
	policy, ok := r.Approvals[serverURL]
	if !ok {
		return nil, nil, nil
	}
	ro, _ := r.Tools.(ReadOnlyChecker)
	if !policy.Requires(tool, ro != nil && ro.ReadOnly(call.Function)) {
		return nil, nil, nil
	}
	args := json.RawMessage(call.Arguments)
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	if !json.Valid(args) {
		return nil, nil, nil // runTool records the error; nothing to approve
	}
	ac := &ApprovalCall{ToolCallID: call.ID, Function: call.Function, ServerURL: serverURL, Tool: tool, Arguments: args, Turn: turn}
	if r.Approve == nil {
		return ac, nil, nil
	}
	v, err := r.Approve(ctx, ac)
	if err != nil {
		return nil, nil, fmt.Errorf("error looking up approval: %w", err)
	}
	switch {
	case !v.Decided:
		return ac, nil, nil
	case v.Approved:
		return nil, nil, nil
	}
	return nil, &Step{Type: StepTool, ToolCallID: call.ID, Function: call.Function, ServerURL: serverURL, Tool: tool,
		Arguments: args, Output: DeniedOutput(v.Reason), IsError: true, Denied: true}, nil
}

// ToolCallRef is the part of a model's tool call holdBack reads.
type ToolCallRef struct {
	ID        string
	Function  string
	Arguments string
}
