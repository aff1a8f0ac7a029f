// Package agentloop owns the step loop shared by tasks and the chat proxy:
// call the model, execute the MCP tool calls it asks for, feed the results
// back, and stop at a final answer, max_steps or a stop_when condition.
//
// Every step is handed to a Recorder before the next one starts. A task's
// recorder commits it to the database, which is what lets a resumed run
// rebuild the conversation from recorded steps and never execute a recorded
// tool call again. A task also marks each tool call as sent before sending
// it (MarkCall), so that a call in flight at a crash is sent again only to
// a tool that is safe to repeat.
package agentloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// Step types.
const (
	StepModel = "model"
	StepTool  = "tool"
)

// Step is one model turn or one tool call. Its JSON is what the task object
// shows in "steps" and what the store keeps.
type Step struct {
	Type string `json:"type"`

	// Model turn.
	Content      string         `json:"content,omitempty"`
	ToolCalls    []llm.ToolCall `json:"tool_calls,omitempty"`
	FinishReason string         `json:"finish_reason,omitempty"`
	Usage        *llm.Usage     `json:"usage,omitempty"`

	// Tool call.
	ToolCallID string          `json:"tool_call_id,omitempty"`
	Function   string          `json:"function,omitempty"`
	ServerURL  string          `json:"server_url,omitempty"`
	Tool       string          `json:"tool,omitempty"`
	Arguments  json.RawMessage `json:"arguments,omitempty"`
	Output     string          `json:"output,omitempty"`
	IsError    bool            `json:"is_error,omitempty"`
	DurationMS int64           `json:"duration_ms,omitempty"`
	// Images, StructuredContent and Resources keep what the tool returned
	// besides text (see ToolResult); Output notes each image and resource.
	Images            []Image           `json:"images,omitempty"`
	StructuredContent json.RawMessage   `json:"structured_content,omitempty"`
	Resources         []json.RawMessage `json:"resources,omitempty"`
	// Interrupted marks a call that was in flight when mcpidp stopped and
	// was not sent again (see MarkCallFunc); its Output says so.
	Interrupted bool `json:"interrupted,omitempty"`
	// Denied marks a call the user refused to approve (never sent); its
	// Output tells the model so.
	Denied bool `json:"denied,omitempty"`
}

// StopCondition ends a run early. Type "tool_called" stops once the named
// tool has run; Name may be the function name the model sees
// ("notion__create_page") or the MCP tool name ("create_page").
type StopCondition struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// Stop reasons reported in Outcome.Reason.
const (
	ReasonFinal           = "final"
	ReasonMaxSteps        = "max_steps"
	ReasonStopWhen        = "stop_when"
	ReasonClientToolCalls = "client_tool_calls"
)

// CompleteFunc calls the model with a whole request body. Tasks use
// llm.Client.Complete; the streaming proxy passes a function that streams.
type CompleteFunc func(ctx context.Context, body []byte) (*llm.Completion, error)

// Tools executes the MCP tools of a run.
type Tools interface {
	// FunctionTools are the OpenAI function tools offered to the model.
	FunctionTools() []json.RawMessage
	// Resolve maps a function name to its server and MCP tool name.
	Resolve(function string) (serverURL, tool string, ok bool)
	// Call runs an MCP tool. An error is a failure to run it at all; a
	// tool that ran and reported an error returns IsError in its result.
	Call(ctx context.Context, function string, arguments json.RawMessage) (*ToolResult, error)
}

// ToolResult is the outcome of one tool call.
type ToolResult struct {
	Text    string
	IsError bool
	// Images are attached to the model conversation after the tool
	// message; the run keeps them within its image limits (see
	// MaxStepImageBytes), dropping the rest with KeepImagesFunc.
	Images []Image
	// StructuredContent is the MCP result's structuredContent.
	StructuredContent json.RawMessage
	// Resources are the MCP result's embedded resources and resource links.
	Resources []json.RawMessage
	// KeepImagesFunc, when set, returns Text noting that only the first n
	// Images were kept. Without it a line saying how many were dropped is
	// added to Text.
	KeepImagesFunc func(n int) string
}

// RecordFunc persists a step before the loop goes on. Returning an error
// stops the run with that error.
type RecordFunc func(ctx context.Context, index int, step Step) error

// MarkCallFunc makes tool calls durable across crashes (tasks; nil in the
// chat proxy). With sent true it is called before the call that will be
// recorded as step index is sent, and commits a "call started" mark; it
// reports whether an earlier run had already marked the same call, which
// means that run stopped while the call was in flight. With sent false it
// removes the mark of a call the server refused without running it (an
// authorization challenge).
type MarkCallFunc func(ctx context.Context, index int, step Step, sent bool) (alreadyMarked bool, err error)

// InterruptedOutput is the output of a tool call that was in flight when
// mcpidp stopped and was not sent again.
const InterruptedOutput = "error: the call may or may not have run: mcpidp stopped while it was in flight, and the tool is not marked read-only or idempotent, so it was not sent again"

// ToolCallLimitOutput is the output of an MCP tool call made after the
// run's MaxToolCalls was reached; the call was not sent.
const ToolCallLimitOutput = "error: the call was not sent: this run has reached its limit of MCP tool calls (max_tool_calls)"

// RepeatChecker is implemented by Tools that know which tools are safe to
// call twice (MCP tools annotated readOnlyHint or idempotentHint).
type RepeatChecker interface {
	SafeToRepeat(function string) bool
}

// ErrorIsFatalFunc tells whether an error from Tools.Call must end the run
// (an authorization challenge) instead of being shown to the model.
type ErrorIsFatalFunc func(err error) bool

// Run is one execution of the loop.
type Run struct {
	// Body is the request body without "messages" and "tools": model and
	// every pass-through field.
	Body json.RawMessage
	// Messages is the conversation the run starts from.
	Messages []json.RawMessage
	// ClientTools are the caller's own function tools (chat proxy). When
	// the model calls one, the run stops and returns the calls.
	ClientTools []json.RawMessage
	// MaxSteps bounds model turns (counting recorded ones).
	MaxSteps int
	StopWhen []StopCondition
	// Steps already recorded by an earlier segment of this run.
	Steps []Step

	// MaxToolCalls, when positive, bounds the MCP tool calls the run sends
	// (counting recorded ones). Once it is reached the model is offered
	// no more MCP tools, and a call it makes anyway is not sent: its step
	// says so (ToolCallLimitOutput).
	MaxToolCalls int

	Complete     CompleteFunc
	Tools        Tools // may be nil when no MCP server is used
	Record       RecordFunc
	ErrorIsFatal ErrorIsFatalFunc
	// MarkCall, when set, marks each tool call before it is sent, so that
	// a call in flight at a crash is sent again only to a tool that is
	// safe to repeat, and is otherwise recorded as interrupted.
	MarkCall MarkCallFunc
	// Now is the clock used for tool durations; default time.Now.
	Now func() time.Time
	// Approvals are the require_approval policies by server URL (as
	// Tools.Resolve names servers); a server without one never asks.
	Approvals map[string]ApprovalPolicy
	// Approve gives the decision on a call a policy holds back. Without
	// it every such call is held back. Calls nobody decided end the run
	// with an *ApprovalRequiredError once the turn's other calls ran.
	Approve ApproveFunc
	// SampleComplete, when set, calls the model for MCP servers' sampling
	// requests (see Sample) instead of Complete: the chat proxy streams
	// Complete's answer to its client, and a sampled answer is the server's.
	SampleComplete CompleteFunc

	images imageBudget // what the run's steps hold so far
	sent   int         // MCP tool calls sent so far, for MaxToolCalls

	// mu guards out, which Sample reads and appends to from the MCP
	// session's goroutines while a tool call is in flight, and sampling,
	// the sampling requests between that check and their step's record.
	mu       sync.Mutex
	out      *Outcome
	sampling int
}

// Outcome is how a run ended.
type Outcome struct {
	Reason  string
	Content string
	Steps   []Step
	Usage   llm.Usage
	// Last is the model's last completion in this segment (nil when the
	// run only finished recorded work).
	Last *llm.Completion
	// ClientToolCalls are the calls to the caller's own tools that ended
	// the run (ReasonClientToolCalls).
	ClientToolCalls []llm.ToolCall
}

// ErrModel wraps failures of the upstream model so callers can tell them
// from tool or storage failures.
var ErrModel = errors.New("model call failed")

// Execute runs the loop until it ends or fails.
func (r *Run) Execute(ctx context.Context) (*Outcome, error) {
	if r.Complete == nil || r.Record == nil {
		return nil, errors.New("agentloop: Complete and Record are required")
	}
	now := r.now()
	maxSteps := r.maxSteps()
	out := &Outcome{Steps: append([]Step(nil), r.Steps...)}
	for _, st := range out.Steps {
		out.Usage.Add(st.Usage)
	}
	r.sent = sentCalls(out.Steps)
	r.mu.Lock()
	r.out = out
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.out = nil
		r.mu.Unlock()
	}()
	record := func(st Step) error { return r.recordStep(ctx, st) }

	for {
		// Finish the tool calls of the last model turn that were not
		// recorded yet (a crash or pause between them), then decide.
		steps := r.steps()
		last, turn := lastModel(steps), lastModelIndex(steps)
		if last != nil {
			done := doneCalls(steps)
			var stop bool
			var held []ApprovalCall
			for _, call := range last.ToolCalls {
				if done[call.ID] {
					if r.stopsOn(call.Function.Name) {
						stop = true
					}
					continue
				}
				if r.isClientTool(call.Function.Name) {
					continue
				}
				ac, st, err := r.holdBack(ctx, turn, ToolCallRef{ID: call.ID, Function: call.Function.Name, Arguments: call.Function.Arguments})
				if err != nil {
					return out, err
				}
				if ac != nil {
					held = append(held, *ac)
					continue
				}
				if st == nil {
					if st, err = r.runTool(ctx, now, callSlot(r.steps()), call); err != nil {
						return out, err
					}
				}
				if err := record(*st); err != nil {
					return out, err
				}
				if r.stopsOn(call.Function.Name) {
					stop = true
				}
			}
			if len(held) > 0 {
				return out, &ApprovalRequiredError{Calls: held}
			}
			if client := r.clientCalls(last); len(client) > 0 {
				out.Reason, out.Content, out.ClientToolCalls = ReasonClientToolCalls, last.Content, client
				return out, nil
			}
			if stop {
				out.Reason, out.Content = ReasonStopWhen, last.Content
				return out, nil
			}
			if len(last.ToolCalls) == 0 {
				out.Reason, out.Content = ReasonFinal, last.Content
				return out, nil
			}
			if countTurns(r.steps()) >= maxSteps {
				out.Reason, out.Content = ReasonMaxSteps, last.Content
				return out, nil
			}
		}

		body, err := r.requestBody(r.steps())
		if err != nil {
			return out, err
		}
		completion, err := r.Complete(ctx, body)
		if err != nil {
			return out, fmt.Errorf("%w: %w", ErrModel, err)
		}
		if len(completion.Choices) == 0 {
			return out, fmt.Errorf("%w: the model returned no choices", ErrModel)
		}
		out.Last = completion
		msg := completion.Choices[0].Message
		st := Step{Type: StepModel, Content: msg.Content, ToolCalls: msg.ToolCalls, FinishReason: completion.Choices[0].FinishReason, Usage: completion.Usage}
		for i := range st.ToolCalls {
			if st.ToolCalls[i].ID == "" {
				st.ToolCalls[i].ID = fmt.Sprintf("call_%d_%d", len(r.steps()), i)
			}
			if st.ToolCalls[i].Type == "" {
				st.ToolCalls[i].Type = "function"
			}
		}
		if err := record(st); err != nil {
			return out, err
		}
	}
}

func (r *Run) now() func() time.Time {
	if r.Now == nil {
		return time.Now
	}
	return r.Now
}

func (r *Run) maxSteps() int {
	if r.MaxSteps <= 0 {
		return 10
	}
	return r.MaxSteps
}

// recordStep records st at the next index and adds its usage, one step at
// a time: a sampling step may arrive while a tool call is in flight.
func (r *Run) recordStep(ctx context.Context, st Step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		return fmt.Errorf("%w: no run is executing", ErrSamplingRefused)
	}
	if err := r.Record(ctx, len(r.out.Steps), st); err != nil {
		return err
	}
	r.out.Steps = append(r.out.Steps, st)
	r.out.Usage.Add(st.Usage)
	return nil
}

// steps returns a copy of the steps recorded so far.
func (r *Run) steps() []Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Step(nil), r.out.Steps...)
}

func (r *Run) runTool(ctx context.Context, now func() time.Time, index int, call llm.ToolCall) (*Step, error) {
	st := &Step{Type: StepTool, ToolCallID: call.ID, Function: call.Function.Name}
	args := json.RawMessage(call.Function.Arguments)
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	if !json.Valid(args) {
		st.Arguments, _ = json.Marshal(call.Function.Arguments)
		st.Output, st.IsError = "error: the tool arguments are not valid JSON", true
		return st, nil
	}
	st.Arguments = args
	if r.Tools == nil {
		st.Output, st.IsError = fmt.Sprintf("error: there is no tool named %q", call.Function.Name), true
		return st, nil
	}
	serverURL, tool, ok := r.Tools.Resolve(call.Function.Name)
	if !ok {
		st.Output, st.IsError = fmt.Sprintf("error: there is no tool named %q", call.Function.Name), true
		return st, nil
	}
	st.ServerURL, st.Tool = serverURL, tool
	if r.toolCallsSpent() {
		st.Output, st.IsError = ToolCallLimitOutput, true
		return st, nil
	}
	if r.MarkCall != nil {
		again, err := r.MarkCall(ctx, index, *st, true)
		if err != nil {
			return nil, err
		}
		if again && !r.safeToRepeat(call.Function.Name) {
			st.Output, st.IsError, st.Interrupted = InterruptedOutput, true, true
			return st, nil
		}
	}
	start := now()
	r.sent++
	res, err := r.Tools.Call(ctx, call.Function.Name, args)
	st.DurationMS = now().Sub(start).Milliseconds()
	if err != nil {
		if r.ErrorIsFatal != nil && r.ErrorIsFatal(err) && ctx.Err() == nil && r.MarkCall != nil {
			// The server refused the call without running it: after the
			// login it is a fresh call, not an interrupted one.
			if _, uerr := r.MarkCall(ctx, index, *st, false); uerr != nil {
				return nil, errors.Join(err, uerr)
			}
		}
		if r.ErrorIsFatal != nil && r.ErrorIsFatal(err) || ctx.Err() != nil {
			return nil, err
		}
		st.Output, st.IsError = "error: "+err.Error(), true
		return st, nil
	}
	r.takeResult(st, res)
	return st, nil
}

// toolCallsSpent reports whether MaxToolCalls MCP calls were sent.
func (r *Run) toolCallsSpent() bool {
	return r.MaxToolCalls > 0 && r.sent >= r.MaxToolCalls
}

// sentCalls counts the MCP tool calls among recorded steps that were sent
// (not those refused for MaxToolCalls or denied by the user).
func sentCalls(steps []Step) int {
	n := 0
	for _, st := range steps {
		if st.Type == StepTool && st.ServerURL != "" && st.Output != ToolCallLimitOutput && !st.Denied {
			n++
		}
	}
	return n
}

func (r *Run) safeToRepeat(function string) bool {
	rc, ok := r.Tools.(RepeatChecker)
	return ok && rc.SafeToRepeat(function)
}

func (r *Run) stopsOn(function string) bool {
	for _, c := range r.StopWhen {
		if c.Type != "tool_called" {
			continue
		}
		if c.Name == function {
			return true
		}
		if r.Tools != nil {
			if _, tool, ok := r.Tools.Resolve(function); ok && tool == c.Name {
				return true
			}
		}
	}
	return false
}

func (r *Run) isClientTool(name string) bool {
	for _, raw := range r.ClientTools {
		var t struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Function.Name == name {
			return true
		}
	}
	return false
}

func (r *Run) clientCalls(st *Step) []llm.ToolCall {
	var out []llm.ToolCall
	for _, c := range st.ToolCalls {
		if r.isClientTool(c.Function.Name) {
			out = append(out, c)
		}
	}
	return out
}

// requestBody is Body plus the conversation so far and the offered tools.
func (r *Run) requestBody(steps []Step) ([]byte, error) {
	msgs := Messages(r.Messages, steps)
	fields := map[string]any{"messages": msgs}
	var tools []json.RawMessage
	if r.Tools != nil && !r.toolCallsSpent() {
		tools = append(tools, r.Tools.FunctionTools()...)
	}
	tools = append(tools, r.ClientTools...)
	if len(tools) > 0 {
		fields["tools"] = tools
	} else {
		fields["tools"] = nil
	}
	body := r.Body
	if len(body) == 0 {
		body = json.RawMessage(`{}`)
	}
	out, err := llm.SetFields(body, fields)
	if err != nil {
		return nil, fmt.Errorf("error building model request: %w", err)
	}
	return out, nil
}

// Messages rebuilds the chat conversation from the initial messages and the
// recorded steps. The viewable images of a model turn's tool calls follow
// its tool messages in one user message (image_url parts with data URLs),
// since Chat Completions takes only text in tool messages.
func Messages(initial []json.RawMessage, steps []Step) []json.RawMessage {
	out := append([]json.RawMessage(nil), initial...)
	var images imageMessage // of the tool messages since the last model turn
	for _, st := range steps {
		var m llm.Message
		switch st.Type {
		case StepModel:
			out = images.flush(out)
			m = llm.Message{Role: "assistant", Content: st.Content, ToolCalls: st.ToolCalls}
		case StepTool:
			m = llm.Message{Role: "tool", ToolCallID: st.ToolCallID, Content: st.Output}
			images.add(st)
		default:
			continue
		}
		raw, _ := json.Marshal(m)
		out = append(out, raw)
	}
	return images.flush(out)
}

// callSlot is the index a tool call about to be sent is marked at
// (MarkCallFunc): the next index, less the sampling steps recorded since the
// last model turn or tool result. Those can only have come while a call was
// in flight, so a resumed run finds that call's mark again.
func callSlot(steps []Step) int {
	n := len(steps)
	for n > 0 && steps[n-1].Type == StepSampling {
		n--
	}
	return n
}

func lastModel(steps []Step) *Step {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Type == StepModel {
			return &steps[i]
		}
	}
	return nil
}

func lastModelIndex(steps []Step) int {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Type == StepModel {
			return i
		}
	}
	return -1
}

func doneCalls(steps []Step) map[string]bool {
	done := map[string]bool{}
	for _, st := range steps {
		if st.Type == StepTool {
			done[st.ToolCallID] = true
		}
	}
	return done
}

// countTurns counts the model calls that max_steps bounds: the run's
// own turns and those MCP servers asked for (sampling).
func countTurns(steps []Step) int {
	n := 0
	for _, st := range steps {
		if st.Type == StepModel || st.Type == StepSampling {
			n++
		}
	}
	return n
}
