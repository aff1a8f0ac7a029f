package responses

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// TypeAuthorizationRequest is the type of the output item mcpidp adds when
// the user must log in to an MCP server first (OpenAI has none: its MCP
// tools take the caller's token).
const TypeAuthorizationRequest = "mcp_authorization_request"

// TypeInputRequest is the item of a background response waiting for its
// user's input (elicitation); mcpidp's own, like TypeAuthorizationRequest.
const TypeInputRequest = "mcp_input_request"

// MessageItem is an assistant "message" output item.
type MessageItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Role    string       `json:"role"`
	Content []OutputText `json:"content"`
}

// OutputText is a message's "output_text" part.
type OutputText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

// MCPCallItem is an "mcp_call" output item: one MCP tool call and its
// output, or its error.
type MCPCallItem struct {
	ID                string        `json:"id"`
	Type              string        `json:"type"`
	Status            string        `json:"status"`
	ServerLabel       string        `json:"server_label"`
	Name              string        `json:"name"`
	Arguments         string        `json:"arguments"`
	Output            *string       `json:"output"`
	Error             *MCPCallError `json:"error"`
	ApprovalRequestID *string       `json:"approval_request_id"`
}

// MCPCallError is an mcp_call's "error", in OpenAI's shapes: a tool that
// ran and reported an error is an "mcp_tool_execution_error" with the
// tool's content; a call that could not be made (the server failed, the
// call was refused or not sent) is an "mcp_protocol_error" with a message.
type MCPCallError struct {
	Type    string       `json:"type"`
	Code    *int         `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	Content []OutputPart `json:"content,omitempty"`
}

// OutputPart is a text part of a tool's error content.
type OutputPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// MCPListToolsItem is an "mcp_list_tools" output item.
type MCPListToolsItem struct {
	ID          string       `json:"id"`
	Type        string       `json:"type"`
	ServerLabel string       `json:"server_label"`
	Tools       []ListedTool `json:"tools"`
	Error       *string      `json:"error"`
}

// ListedTool is one tool of an mcp_list_tools item.
type ListedTool struct {
	Name        string                    `json:"name"`
	Description string                    `json:"description,omitempty"`
	InputSchema json.RawMessage           `json:"input_schema"`
	Annotations mcpclient.ToolAnnotations `json:"annotations"`
}

// FunctionCallItem is a "function_call" output item: a call to one of the
// caller's function tools, which the caller runs and answers with a
// function_call_output item in its next request.
type FunctionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ApprovalRequestItem is an "mcp_approval_request" output item: a call
// its server's require_approval holds back until the caller answers with an
// mcp_approval_response input item (with previous_response_id).
type ApprovalRequestItem struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	ServerLabel string `json:"server_label"`
	Name        string `json:"name"`
	Arguments   string `json:"arguments"`
	// ApproveURL is a background response's confirm page for a person
	// (the task's approve_url); answered in the request, it is empty.
	ApproveURL string `json:"approve_url,omitempty"`
}

// InputRequestItem is an "mcp_input_request" output item (mcpidp's own): a
// background response's MCP server asks its user for input (elicitation),
// answered at FormURL by a person, or through the task's inputs API.
type InputRequestItem struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	ServerLabel     string          `json:"server_label"`
	ServerURL       string          `json:"server_url"`
	Mode            string          `json:"mode"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema,omitempty"`
	URL             string          `json:"url,omitempty"`
	FormURL         string          `json:"form_url"`
	ExpiresAt       int64           `json:"expires_at,omitempty"`
}

// AuthorizationRequestItem is an "mcp_authorization_request" output item:
// the user must log in to an MCP server at AuthorizationURL.
type AuthorizationRequestItem struct {
	ID               string `json:"id"`
	Type             string `json:"type"`
	ServerLabel      string `json:"server_label"`
	ServerURL        string `json:"server_url"`
	AuthorizationURL string `json:"authorization_url"`
	ExpiresAt        int64  `json:"expires_at,omitempty"`
}

// Usage is a response's token usage.
type Usage struct {
	InputTokens         int            `json:"input_tokens"`
	InputTokensDetails  map[string]int `json:"input_tokens_details"`
	OutputTokens        int            `json:"output_tokens"`
	OutputTokensDetails map[string]int `json:"output_tokens_details"`
	TotalTokens         int            `json:"total_tokens"`
}

func usageOf(u llm.Usage) *Usage {
	return &Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens,
		InputTokensDetails: map[string]int{"cached_tokens": 0}, OutputTokensDetails: map[string]int{"reasoning_tokens": 0}}
}

// ids names a response's output items. Names depend only on the response
// id and the step an item comes from, so the items a stream announces, the
// ones the final response holds and the ones rebuilt from a background
// task's steps are the same.
type ids struct{ suffix string }

func idsFor(responseID string) ids { return ids{suffix: strings.TrimPrefix(responseID, "resp_")} }

func (i ids) listTools(n int) string      { return fmt.Sprintf("mcpl_%s_%d", i.suffix, n) }
func (i ids) message(step int) string     { return fmt.Sprintf("msg_%s_%d", i.suffix, step) }
func (i ids) mcpCall(step int) string     { return fmt.Sprintf("mcp_%s_%d", i.suffix, step) }
func (i ids) login(n int) string          { return fmt.Sprintf("mcpauth_%s_%d", i.suffix, n) }
func (i ids) function(step, n int) string { return fmt.Sprintf("fc_%s_%d_%d", i.suffix, step, n) }

// approval names the approval request of a tool call this response held
// back, by the model turn that made it (models may reuse call ids across
// turns) and its call id.
func (i ids) approval(turn int, toolCallID string) string {
	return fmt.Sprintf("mcpr_%s_%d_%s", i.suffix, turn, toolCallID)
}

// callKey names a tool call within a run.
func callKey(turn int, toolCallID string) string { return fmt.Sprintf("%d/%s", turn, toolCallID) }

func messageItem(id, text, status string) MessageItem {
	return MessageItem{ID: id, Type: "message", Status: status, Role: "assistant",
		Content: []OutputText{{Type: "output_text", Text: text, Annotations: []any{}}}}
}

func listToolsItem(id, label string, tools []mcpclient.Tool) MCPListToolsItem {
	it := MCPListToolsItem{ID: id, Type: "mcp_list_tools", ServerLabel: label, Tools: []ListedTool{}}
	for _, t := range tools {
		schema := t.InputSchema
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		it.Tools = append(it.Tools, ListedTool{Name: t.Name, Description: t.Description, InputSchema: schema, Annotations: t.Annotations})
	}
	return it
}

// mcpCallItem is the item of an MCP call: in progress while st is nil.
func mcpCallItem(id, label, name string, arguments json.RawMessage, st *agentloop.Step) MCPCallItem {
	it := MCPCallItem{ID: id, Type: "mcp_call", Status: "in_progress", ServerLabel: label, Name: name, Arguments: string(arguments)}
	if st == nil {
		return it
	}
	out := st.Output
	switch {
	case st.Denied:
		it.Status, it.Error = "failed", &MCPCallError{Type: "mcp_protocol_error", Message: strings.TrimPrefix(out, "error: ")}
	case st.IsError && strings.HasPrefix(out, "error: "):
		// mcpidp's own words: the call did not run, or its answer was lost.
		code := -32603 // JSON-RPC internal error
		it.Status, it.Error = "failed", &MCPCallError{Type: "mcp_protocol_error", Code: &code, Message: strings.TrimPrefix(out, "error: ")}
	case st.IsError:
		it.Status, it.Error = "failed", &MCPCallError{Type: "mcp_tool_execution_error", Content: []OutputPart{{Type: "text", Text: out}}}
	default:
		it.Status, it.Output = "completed", &out
	}
	return it
}

func functionCallItem(id string, c llm.ToolCall) FunctionCallItem {
	return FunctionCallItem{ID: id, Type: "function_call", Status: "completed", CallID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments}
}

// builder turns a run's recorded steps into output items.
type builder struct {
	ids    ids
	labels map[string]string // server URL → server_label
	client map[string]bool   // the caller's function names
	// approved names, by callKey, the approval request a call was decided
	// on (shown as the mcp_call's approval_request_id).
	approved map[string]string
}

func newBuilder(responseID string, labels map[string]string, functions []json.RawMessage) *builder {
	b := &builder{ids: idsFor(responseID), labels: labels, client: map[string]bool{}}
	for _, name := range functionNames(functions) {
		b.client[name] = true
	}
	return b
}

// functionNames returns the names of chat function tools.
func functionNames(functions []json.RawMessage) []string {
	var out []string
	for _, raw := range functions {
		var t struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Function.Name != "" {
			out = append(out, t.Function.Name)
		}
	}
	return out
}

// toolName is an MCP call's tool name and server label; a call to a
// function no server has keeps the model's name and an empty label.
func (b *builder) toolName(st *agentloop.Step) (label, name string) {
	if st.Tool == "" {
		return "", st.Function
	}
	return b.labels[st.ServerURL], st.Tool
}

// items returns the output items of steps from step from on: a message
// per model turn with text, an mcp_call per MCP tool call, and a
// function_call per call to one of the caller's tools (after the MCP calls
// of the same turn, which ran first). Steps before from belong to an
// earlier response of the same run (one that asked for approvals).
func (b *builder) items(steps []agentloop.Step, from int) []any {
	var out []any
	var pending []any
	turn := -1
	for i := range steps {
		if steps[i].Type == agentloop.StepModel {
			turn = i
		}
		if i < from {
			continue
		}
		st := &steps[i]
		switch st.Type {
		case agentloop.StepModel:
			out, pending = append(out, pending...), nil
			if st.Content != "" {
				out = append(out, messageItem(b.ids.message(i), st.Content, "completed"))
			}
			n := 0
			for _, c := range st.ToolCalls {
				if b.client[c.Function.Name] {
					pending = append(pending, functionCallItem(b.ids.function(i, n), c))
					n++
				}
			}
		case agentloop.StepTool:
			label, name := b.toolName(st)
			it := mcpCallItem(b.ids.mcpCall(i), label, name, st.Arguments, st)
			if id, ok := b.approved[callKey(turn, st.ToolCallID)]; ok {
				it.ApprovalRequestID = &id
			}
			out = append(out, it)
		}
	}
	return append(out, pending...)
}
