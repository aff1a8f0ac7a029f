package chat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// Output modes ("mcp_output").
const (
	OutputMarkdown = "markdown"
	OutputText     = "text"
)

// DefaultMaxSteps is the number of model turns a request may take when it
// names none.
const DefaultMaxSteps = chatreq.DefaultMaxSteps

// Limits bound what one chat request may ask for; zero fields take the
// defaults noted on chatreq.Limits. MaxBodyBytes and MaxMetadata are not
// used here: the Engine is handed the body whole, and chat requests
// have no metadata.
type Limits = chatreq.Limits

// consumedFields are the top-level fields mcpidp reads; every other field
// goes to the upstream byte for byte.
var consumedFields = []string{"user", "max_steps", "stop_when", "mcp_output", "mcp_approval_responses", "mcp_elicitation_responses"}

// chatRequest is a parsed, validated chat completion request.
type chatRequest struct {
	user          string
	model         string
	messages      []json.RawMessage // only with MCP servers; see messageCount
	messageCount  int
	servers       []mcpclient.Server
	functionTools []json.RawMessage
	maxSteps      int
	stopWhen      []agentloop.StopCondition
	textOnly      bool
	// approvals are the servers' require_approval policies, responses
	// the client's answers to earlier mcp_approval_requests.
	approvals map[string]agentloop.ApprovalPolicy
	responses []approvalResponse
	stream    bool
	// replay is the tool call the client answered an elicitation of
	// ("mcp_elicitation_responses"), run again before the model is asked.
	replay       *pendingCall
	includeUsage bool
	// body is the request without the consumed fields: what a request
	// without MCP tools sends upstream as it is, and (without "messages"
	// and "tools", which the loop sets) the base of every model call.
	body []byte
}

func parseChat(body []byte, lim Limits, defaultUser string) (*chatRequest, error) {
	obj, err := chatreq.ParseObject(body)
	if err != nil {
		return nil, err
	}
	req := &chatRequest{}
	if raw, ok := obj["model"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &req.model) != nil {
			return nil, chatreq.Invalid("model", "model must be a string")
		}
	}

	tools, err := chatreq.ParseTools(obj["tools"], lim, true)
	if err != nil {
		return nil, err
	}
	req.servers, req.functionTools, req.approvals = tools.MCP, tools.Functions, tools.Approvals
	if len(req.servers) == 0 {
		// Passed through as it came: the messages are checked, not kept.
		if req.messageCount, err = chatreq.CheckMessages(obj, lim); err != nil {
			return nil, err
		}
	} else {
		if req.messages, err = chatreq.ParseMessages(obj, lim, false); err != nil {
			return nil, err
		}
		req.messageCount = len(req.messages)
	}
	if raw, ok := obj["stream"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &req.stream) != nil {
			return nil, chatreq.Invalid("stream", "stream must be true or false")
		}
	}
	if raw, ok := obj["stream_options"]; ok && !chatreq.IsNull(raw) {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &so) != nil {
			return nil, chatreq.Invalid("stream_options", "stream_options must be an object")
		}
		req.includeUsage = so.IncludeUsage
	}
	if req.responses, err = parseApprovalResponses(obj["mcp_approval_responses"]); err != nil {
		return nil, err
	}
	if raw, ok := obj["user"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &req.user) != nil {
			return nil, chatreq.Invalid("user", "user must be a string")
		}
		req.user = strings.TrimSpace(req.user)
		if len(req.user) > lim.MaxUserLength {
			return nil, chatreq.Invalid("user", fmt.Sprintf("user is longer than %d characters", lim.MaxUserLength))
		}
		if err := chatreq.CheckText("user", req.user); err != nil {
			return nil, err
		}
	}
	if req.user == "" {
		req.user = defaultUser
	}
	if req.user == "" && len(req.servers) > 0 {
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_required_parameter", Param: "user",
			Message: "user is required with MCP tools: it names the end user whose logins to MCP servers are used"}
	}
	if req.maxSteps, err = chatreq.ParseMaxSteps(obj["max_steps"], lim); err != nil {
		return nil, err
	}
	if req.stopWhen, err = chatreq.ParseStopWhen(obj["stop_when"], lim); err != nil {
		return nil, err
	}
	if raw, ok := obj["mcp_output"]; ok && !chatreq.IsNull(raw) {
		var mode string
		if json.Unmarshal(raw, &mode) != nil || mode != OutputMarkdown && mode != OutputText {
			return nil, chatreq.Invalid("mcp_output", `mcp_output must be "markdown" or "text"`)
		}
		req.textOnly = mode == OutputText
	}

	if raw, ok := obj["mcp_elicitation_responses"]; ok && !chatreq.IsNull(raw) {
		if req.replay, err = parseElicitationResponses(raw); err != nil {
			return nil, err
		}
	}

	// Most requests carry none of mcpidp's fields: then the body goes on
	// as it came, without being cut apart again.
	req.body = body
	if slices.ContainsFunc(consumedFields, func(f string) bool { _, ok := obj[f]; return ok }) {
		if req.body, err = llm.WithoutFields(body, consumedFields...); err != nil {
			return nil, chatreq.InvalidJSON(err.Error())
		}
	}
	return req, nil
}
