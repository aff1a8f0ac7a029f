package responses

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Limits bound one request; see chatreq.Limits.
type Limits = chatreq.Limits

// consumedFields are the Responses fields mcpidp reads or translates; every
// other top-level field goes to the upstream's chat completion as it came.
var consumedFields = []string{
	"input", "instructions", "tools", "user", "max_tool_calls", "store", "background", "stream",
	"previous_response_id", "metadata", "include", "truncation", "text", "reasoning",
	"max_output_tokens", "tool_choice", "max_steps", "stream_options",
	"webhook", "authorization_request_callback", "authorizationRequestCallback",
}

// Request is a parsed, validated POST /v1/responses.
type Request struct {
	Model        string
	User         string
	Instructions *string
	// Input is this request's input as items (a string input is one user
	// message item).
	Input []json.RawMessage
	// Servers are the MCP tools' servers, in order; Labels names each by
	// URL with its server_label, and Approvals holds the require_approval
	// of those that ask for any.
	Servers   []mcpclient.Server
	Labels    map[string]string
	Approvals map[string]agentloop.ApprovalPolicy
	// Decisions are the input's mcp_approval_response items by
	// approval_request_id.
	Decisions map[string]agentloop.Verdict
	// Functions are the caller's function tools in Chat Completions shape;
	// their calls are returned as function_call items, not run.
	Functions []json.RawMessage
	// Tools are the tools as the response object shows them: headers and
	// URL secrets left out.
	Tools              []json.RawMessage
	MaxToolCalls       int
	MaxSteps           int
	Store              bool
	Background         bool
	Stream             bool
	PreviousResponseID string
	Metadata           json.RawMessage
	// Echo holds the sampling fields the response object repeats
	// (temperature, top_p, max_output_tokens, tool_choice,
	// parallel_tool_calls, text, reasoning, truncation), as sent.
	Echo map[string]json.RawMessage
	// Body is the chat completion request without messages and tools: the
	// model, every pass-through field, and the translated ones.
	Body []byte
	// Webhook and AuthorizationRequestCallback are a background
	// response's task hooks (mcpidp extensions).
	Webhook                      *task.Webhook
	AuthorizationRequestCallback string
}

// echoFields are repeated in the response object as the caller sent them.
var echoFields = []string{"temperature", "top_p", "max_output_tokens", "tool_choice", "parallel_tool_calls", "text", "reasoning", "truncation"}

// ParseRequest reads and validates a POST /v1/responses body; errors are
// *chatreq.Error 400s naming the parameter to fix.
func ParseRequest(body []byte, lim Limits) (*Request, error) {
	lim.ApplyDefaults()
	obj, err := chatreq.ParseObject(body)
	if err != nil {
		return nil, err
	}
	req := &Request{Store: true, Labels: map[string]string{}, Echo: map[string]json.RawMessage{}}
	if err := optional(obj, "model", &req.Model, "model must be a string"); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Model) == "" {
		return nil, chatreq.Missing("model")
	}
	if err := chatreq.CheckText("model", req.Model); err != nil {
		return nil, err
	}
	if err := optional(obj, "user", &req.User, "user must be a string"); err != nil {
		return nil, err
	}
	req.User = strings.TrimSpace(req.User)
	if len(req.User) > lim.MaxUserLength {
		return nil, chatreq.Invalid("user", fmt.Sprintf("user is longer than %d characters", lim.MaxUserLength))
	}
	if err := chatreq.CheckText("user", req.User); err != nil {
		return nil, err
	}
	if raw, ok := obj["instructions"]; ok && !chatreq.IsNull(raw) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, chatreq.Invalid("instructions", "instructions must be a string")
		}
		req.Instructions = &s
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"store", &req.Store}, {"background", &req.Background}, {"stream", &req.Stream}} {
		if err := optional(obj, f.name, f.dst, f.name+" must be true or false"); err != nil {
			return nil, err
		}
	}
	if err := optional(obj, "previous_response_id", &req.PreviousResponseID, "previous_response_id must be a string"); err != nil {
		return nil, err
	}
	if err := chatreq.CheckText("previous_response_id", req.PreviousResponseID); err != nil {
		return nil, err
	}
	if req.Background && !req.Store {
		return nil, chatreq.Invalid("store", "background responses are always stored: send store true or leave it out")
	}
	if req.Input, err = parseInput(obj["input"], lim, req.PreviousResponseID != ""); err != nil {
		return nil, err
	}
	if req.Decisions, err = decisions(req.Input); err != nil {
		return nil, err
	}
	if err := req.parseTools(obj["tools"], lim); err != nil {
		return nil, err
	}
	if req.User == "" && len(req.Servers) > 0 {
		return nil, &chatreq.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_required_parameter", Param: "user",
			Message: "user is required with MCP tools: it names the end user whose logins to MCP servers are used"}
	}
	if raw, ok := obj["max_tool_calls"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &req.MaxToolCalls) != nil || req.MaxToolCalls < 1 {
			return nil, chatreq.Invalid("max_tool_calls", "max_tool_calls must be a whole number of at least 1")
		}
	}
	if req.MaxSteps, err = chatreq.ParseMaxSteps(obj["max_steps"], lim); err != nil {
		return nil, err
	}
	if req.Metadata, err = parseMetadata(obj["metadata"], lim); err != nil {
		return nil, err
	}
	if err := req.parseHooks(obj); err != nil {
		return nil, err
	}
	for _, name := range echoFields {
		if raw, ok := obj[name]; ok {
			req.Echo[name] = raw
		}
	}
	if req.Body, err = chatBody(body, obj); err != nil {
		return nil, err
	}
	return req, nil
}

func optional(obj map[string]json.RawMessage, name string, dst any, msg string) error {
	raw, ok := obj[name]
	if !ok || chatreq.IsNull(raw) {
		return nil
	}
	if json.Unmarshal(raw, dst) != nil {
		return chatreq.Invalid(name, msg)
	}
	return nil
}

// parseInput returns the input as items: a string is one user message.
// Without a previous response, input is required.
func parseInput(raw json.RawMessage, lim Limits, continues bool) ([]json.RawMessage, error) {
	if raw == nil || chatreq.IsNull(raw) {
		if continues {
			return nil, nil
		}
		return nil, chatreq.Missing("input")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		m, _ := json.Marshal(map[string]any{"type": "message", "role": "user", "content": s})
		return []json.RawMessage{m}, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, chatreq.Invalid("input", "input must be a string or an array of input items")
	}
	if len(items) > lim.MaxMessages {
		return nil, chatreq.Invalid("input", fmt.Sprintf("too many input items: %d, the limit is %d", len(items), lim.MaxMessages))
	}
	for i, it := range items {
		var head map[string]json.RawMessage
		if json.Unmarshal(it, &head) != nil || head == nil {
			return nil, chatreq.Invalid(fmt.Sprintf("input[%d]", i), fmt.Sprintf("input[%d] must be an object", i))
		}
	}
	// Each item is checked as it is translated (Messages), with its index.
	if _, err := Messages(nil, items); err != nil {
		return nil, err
	}
	return items, nil
}

// responsesTool is one entry of "tools" in the Responses shape.
type responsesTool struct {
	Type            string          `json:"type"`
	ServerLabel     string          `json:"server_label"`
	ServerURL       string          `json:"server_url"`
	URL             string          `json:"url"`
	RequireApproval json.RawMessage `json:"require_approval"`
	Name            string          `json:"name"`
	Description     *string         `json:"description"`
	Parameters      json.RawMessage `json:"parameters"`
	Strict          *bool           `json:"strict"`
	ConnectorID     string          `json:"connector_id"`
	Authorization   *string         `json:"authorization"`
}

func (req *Request) parseTools(raw json.RawMessage, lim Limits) error {
	if raw == nil || chatreq.IsNull(raw) {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return chatreq.Invalid("tools", "tools must be an array")
	}
	var mcpItems []json.RawMessage
	var mcpIndex []int
	labels := map[string]bool{}
	for i, item := range items {
		param := fmt.Sprintf("tools[%d]", i)
		var t responsesTool
		if err := json.Unmarshal(item, &t); err != nil {
			return chatreq.Invalid(param, param+" must be an object: "+err.Error())
		}
		switch t.Type {
		case "mcp":
			if t.ConnectorID != "" {
				return chatreq.Invalid(param+".connector_id", param+".connector_id: OpenAI's connectors are not available here; give the server's server_url")
			}
			if t.ServerLabel == "" {
				return chatreq.Missing(param + ".server_label")
			}
			if labels[t.ServerLabel] {
				return chatreq.Invalid(param+".server_label", param+".server_label: two MCP tools have the label "+t.ServerLabel)
			}
			labels[t.ServerLabel] = true
			if t.Authorization != nil {
				// OpenAI's way to bring a token: sent as a Bearer
				// Authorization header, sealed like the other headers.
				var err error
				if item, err = withBearer(item, *t.Authorization, param); err != nil {
					return err
				}
			}
			mcpItems = append(mcpItems, item)
			mcpIndex = append(mcpIndex, i)
		case "function":
			if t.Name == "" {
				return chatreq.Missing(param + ".name")
			}
			fn := map[string]any{"name": t.Name}
			if t.Description != nil {
				fn["description"] = *t.Description
			}
			if len(t.Parameters) > 0 && !chatreq.IsNull(t.Parameters) {
				fn["parameters"] = t.Parameters
			}
			if t.Strict != nil {
				fn["strict"] = *t.Strict
			}
			chatTool, _ := json.Marshal(map[string]any{"type": "function", "function": fn})
			req.Functions = append(req.Functions, chatTool)
			req.Tools = append(req.Tools, item)
		default:
			return chatreq.Invalid(param+".type", fmt.Sprintf(`%s.type: mcpidp runs "mcp" and "function" tools, not %q`, param, t.Type))
		}
	}
	if len(mcpItems) == 0 {
		return nil
	}
	all, _ := json.Marshal(mcpItems)
	parsed, err := chatreq.ParseTools(all, lim, false)
	if err != nil {
		return renumber(err, mcpIndex)
	}
	req.Servers, req.Approvals = parsed.MCP, parsed.Approvals
	for n, item := range mcpItems {
		var t responsesTool
		_ = json.Unmarshal(item, &t)
		srv := req.Servers[n]
		req.Labels[srv.URL] = t.ServerLabel
		shown := map[string]any{"type": "mcp", "server_label": t.ServerLabel, "server_url": srv.URL}
		if len(srv.AllowedTools) > 0 {
			shown["allowed_tools"] = srv.AllowedTools
		}
		if len(srv.Headers) > 0 {
			// Values are secrets: only the names are shown.
			names := map[string]string{}
			for k := range srv.Headers {
				names[k] = "<redacted>"
			}
			shown["headers"] = names
		}
		if t.RequireApproval != nil && !chatreq.IsNull(t.RequireApproval) {
			shown["require_approval"] = t.RequireApproval
		} else {
			shown["require_approval"] = agentloop.ApprovalNever
		}
		raw, _ := json.Marshal(shown)
		req.Tools = append(req.Tools, raw)
	}
	return nil
}

// withBearer returns an mcp tool with its "authorization" token moved into
// its headers as "Authorization: Bearer <token>".
func withBearer(item json.RawMessage, token, param string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(item, &obj); err != nil {
		return nil, chatreq.Invalid(param, param+" must be an object")
	}
	headers := map[string]string{}
	if raw, ok := obj["headers"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &headers) != nil {
			return nil, chatreq.Invalid(param+".headers", param+".headers must be an object of strings")
		}
	}
	for name := range headers {
		if http.CanonicalHeaderKey(name) == "Authorization" {
			return nil, chatreq.Invalid(param+".authorization", param+": send authorization or an Authorization header, not both")
		}
	}
	if strings.TrimSpace(token) == "" {
		return nil, chatreq.Invalid(param+".authorization", param+".authorization must not be empty")
	}
	headers["Authorization"] = "Bearer " + strings.TrimPrefix(token, "Bearer ")
	obj["headers"], _ = json.Marshal(headers)
	delete(obj, "authorization")
	return json.Marshal(obj)
}

// renumber rewrites a chatreq error about the n-th MCP tool ("tools[n]…")
// to name its index in the caller's tools.
func renumber(err error, index []int) error {
	e, ok := err.(*chatreq.Error)
	if !ok {
		return err
	}
	for n := len(index) - 1; n >= 0; n-- {
		from, to := fmt.Sprintf("tools[%d]", n), fmt.Sprintf("tools[%d]", index[n])
		if strings.HasPrefix(e.Param, from+".") || e.Param == from {
			c := *e
			c.Param = to + strings.TrimPrefix(e.Param, from)
			c.Message = strings.Replace(e.Message, from, to, 1)
			c.Message = strings.ReplaceAll(c.Message, ".url", ".server_url")
			c.Param = strings.ReplaceAll(c.Param, ".url", ".server_url")
			return &c
		}
	}
	return err
}

func parseMetadata(raw json.RawMessage, lim Limits) (json.RawMessage, error) {
	if raw == nil || chatreq.IsNull(raw) {
		return nil, nil
	}
	if len(raw) > lim.MaxMetadata {
		return nil, chatreq.Invalid("metadata", fmt.Sprintf("metadata is larger than %d bytes", lim.MaxMetadata))
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, chatreq.Invalid("metadata", "metadata must be a JSON object")
	}
	if err := chatreq.CheckJSONText("metadata", m); err != nil {
		return nil, err
	}
	return raw, nil
}

func (req *Request) parseHooks(obj map[string]json.RawMessage) error {
	cb := obj["authorization_request_callback"]
	if cb == nil {
		cb = obj["authorizationRequestCallback"]
	}
	if cb != nil && !chatreq.IsNull(cb) {
		var u string
		if json.Unmarshal(cb, &u) != nil {
			return chatreq.Invalid("authorization_request_callback", "authorization_request_callback must be a URL string")
		}
		if _, err := netguard.ValidateURL(u); err != nil {
			return chatreq.Invalid("authorization_request_callback", "authorization_request_callback: "+err.Error())
		}
		req.AuthorizationRequestCallback = u
	}
	if raw, ok := obj["webhook"]; ok && !chatreq.IsNull(raw) {
		var wh task.Webhook
		if json.Unmarshal(raw, &wh) != nil || wh.URL == "" {
			return chatreq.Invalid("webhook", `webhook must be an object like {"url":"https://…"}`)
		}
		if _, err := netguard.ValidateURL(wh.URL); err != nil {
			return chatreq.Invalid("webhook.url", "webhook.url: "+err.Error())
		}
		req.Webhook = &wh
	}
	if (req.Webhook != nil || req.AuthorizationRequestCallback != "") && !req.Background {
		return chatreq.Invalid("webhook", "webhook and authorization_request_callback are for background responses")
	}
	return nil
}

// chatBody translates the Responses fields that Chat Completions names
// otherwise and drops the ones it has no use for; every other field passes
// through.
func chatBody(body []byte, obj map[string]json.RawMessage) ([]byte, error) {
	set := map[string]any{}
	if raw, ok := obj["max_output_tokens"]; ok && !chatreq.IsNull(raw) {
		set["max_completion_tokens"] = raw
	}
	if raw, ok := obj["reasoning"]; ok && !chatreq.IsNull(raw) {
		var r struct {
			Effort string `json:"effort"`
		}
		if json.Unmarshal(raw, &r) != nil {
			return nil, chatreq.Invalid("reasoning", "reasoning must be an object")
		}
		if r.Effort != "" {
			set["reasoning_effort"] = r.Effort
		}
	}
	if raw, ok := obj["text"]; ok && !chatreq.IsNull(raw) {
		var t struct {
			Format *struct {
				Type        string          `json:"type"`
				Name        string          `json:"name"`
				Schema      json.RawMessage `json:"schema"`
				Strict      *bool           `json:"strict"`
				Description string          `json:"description"`
			} `json:"format"`
			Verbosity string `json:"verbosity"`
		}
		if json.Unmarshal(raw, &t) != nil {
			return nil, chatreq.Invalid("text", "text must be an object")
		}
		if f := t.Format; f != nil {
			switch f.Type {
			case "text", "":
			case "json_object":
				set["response_format"] = map[string]any{"type": "json_object"}
			case "json_schema":
				js := map[string]any{"name": f.Name, "schema": f.Schema}
				if f.Strict != nil {
					js["strict"] = *f.Strict
				}
				if f.Description != "" {
					js["description"] = f.Description
				}
				set["response_format"] = map[string]any{"type": "json_schema", "json_schema": js}
			default:
				return nil, chatreq.Invalid("text.format.type", `text.format.type must be "text", "json_object" or "json_schema"`)
			}
		}
		if t.Verbosity != "" {
			set["verbosity"] = t.Verbosity
		}
	}
	if raw, ok := obj["tool_choice"]; ok && !chatreq.IsNull(raw) {
		var s string
		var named struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		switch {
		case json.Unmarshal(raw, &s) == nil:
			set["tool_choice"] = s
		case json.Unmarshal(raw, &named) == nil && named.Type == "function" && named.Name != "":
			set["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": named.Name}}
		default:
			return nil, chatreq.Invalid("tool_choice", `tool_choice must be "auto", "none", "required" or {"type":"function","name":"…"}`)
		}
	}
	out, err := llm.WithoutFields(body, consumedFields...)
	if err != nil {
		return nil, chatreq.InvalidJSON(err.Error())
	}
	if len(set) > 0 {
		if out, err = llm.SetFields(out, set); err != nil {
			return nil, chatreq.InvalidJSON(err.Error())
		}
	}
	return out, nil
}

// decisions reads the input's mcp_approval_response items. They answer the
// mcp_approval_request items of the previous response and must come alone:
// the run they resume goes on from where it stopped, before any new input.
func decisions(input []json.RawMessage) (map[string]agentloop.Verdict, error) {
	var out map[string]agentloop.Verdict
	others := 0
	for i, raw := range input {
		var it struct {
			Type              string  `json:"type"`
			ApprovalRequestID string  `json:"approval_request_id"`
			Approve           *bool   `json:"approve"`
			Reason            *string `json:"reason"`
		}
		_ = json.Unmarshal(raw, &it)
		if it.Type != "mcp_approval_response" {
			others++
			continue
		}
		param := fmt.Sprintf("input[%d]", i)
		if it.ApprovalRequestID == "" {
			return nil, chatreq.Missing(param + ".approval_request_id")
		}
		if it.Approve == nil {
			return nil, chatreq.Missing(param + ".approve")
		}
		if out == nil {
			out = map[string]agentloop.Verdict{}
		}
		v := agentloop.Verdict{Decided: true, Approved: *it.Approve}
		if it.Reason != nil {
			v.Reason = *it.Reason
		}
		out[it.ApprovalRequestID] = v
	}
	if out != nil && others > 0 {
		return nil, chatreq.Invalid("input", "send mcp_approval_response items alone: the run goes on from the approved calls, and new input belongs in the next request")
	}
	return out, nil
}
