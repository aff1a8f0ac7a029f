package mcpproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/netguard"
)

// Output modes ("mcp_output").
const (
	OutputMarkdown = "markdown"
	OutputText     = "text"
)

// DefaultMaxSteps is the number of model turns a request may take when it
// names none.
const DefaultMaxSteps = 10

// Limits bound what one chat request may ask for. Zero fields take the
// defaults noted.
type Limits struct {
	MaxMessages     int // default 1000
	MaxServers      int // default 20
	MaxAllowedTools int // per server, default 256
	MaxHeaders      int // per server, default 32
	MaxSteps        int // default 100
	MaxStopWhen     int // default 16
	MaxUserLength   int // default 256
}

func (l *Limits) applyDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxMessages, 1000)
	def(&l.MaxServers, 20)
	def(&l.MaxAllowedTools, 256)
	def(&l.MaxHeaders, 32)
	def(&l.MaxSteps, 100)
	def(&l.MaxStopWhen, 16)
	def(&l.MaxUserLength, 256)
}

// consumedFields are the top-level fields mcpidp reads; every other field
// goes to the upstream byte for byte.
var consumedFields = []string{"user", "max_steps", "stop_when", "mcp_output"}

// chatRequest is a parsed, validated chat completion request.
type chatRequest struct {
	user          string
	model         string
	messages      []json.RawMessage
	servers       []mcpclient.Server
	functionTools []json.RawMessage
	maxSteps      int
	stopWhen      []agentloop.StopCondition
	textOnly      bool
	stream        bool
	includeUsage  bool
	// body is the request without the consumed fields: what a request
	// without MCP tools sends upstream as it is, and (without "messages"
	// and "tools", which the loop sets) the base of every model call.
	body []byte
}

func parseChat(body []byte, lim Limits, defaultUser string) (*chatRequest, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		msg := "request body must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json", Message: msg}
	}
	req := &chatRequest{maxSteps: DefaultMaxSteps}
	_ = json.Unmarshal(obj["model"], &req.model)

	msgs, err := parseMessages(obj["messages"], lim)
	if err != nil {
		return nil, err
	}
	req.messages = msgs
	if raw, ok := obj["stream"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &req.stream) != nil {
			return nil, invalid("stream", "stream must be true or false")
		}
	}
	if raw, ok := obj["stream_options"]; ok && !isNull(raw) {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &so) != nil {
			return nil, invalid("stream_options", "stream_options must be an object")
		}
		req.includeUsage = so.IncludeUsage
	}
	if err := req.parseTools(obj["tools"], lim); err != nil {
		return nil, err
	}
	if raw, ok := obj["user"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &req.user) != nil {
			return nil, invalid("user", "user must be a string")
		}
		req.user = strings.TrimSpace(req.user)
		if len(req.user) > lim.MaxUserLength {
			return nil, invalid("user", fmt.Sprintf("user is longer than %d characters", lim.MaxUserLength))
		}
	}
	if req.user == "" {
		req.user = defaultUser
	}
	if req.user == "" && len(req.servers) > 0 {
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_required_parameter", Param: "user",
			Message: "user is required with MCP tools: it names the end user whose logins to MCP servers are used"}
	}
	if raw, ok := obj["max_steps"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.maxSteps); err != nil || req.maxSteps < 1 || req.maxSteps > lim.MaxSteps {
			return nil, invalid("max_steps", fmt.Sprintf("max_steps must be a whole number from 1 to %d", lim.MaxSteps))
		}
	}
	if req.stopWhen, err = parseStopWhen(obj["stop_when"], lim); err != nil {
		return nil, err
	}
	if raw, ok := obj["mcp_output"]; ok && !isNull(raw) {
		var mode string
		if json.Unmarshal(raw, &mode) != nil || mode != OutputMarkdown && mode != OutputText {
			return nil, invalid("mcp_output", `mcp_output must be "markdown" or "text"`)
		}
		req.textOnly = mode == OutputText
	}

	drop := make(map[string]any, len(consumedFields))
	for _, f := range consumedFields {
		drop[f] = nil
	}
	if req.body, err = llm.SetFields(body, drop); err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json", Message: err.Error()}
	}
	return req, nil
}

func parseMessages(raw json.RawMessage, lim Limits) ([]json.RawMessage, error) {
	if raw == nil || isNull(raw) {
		return nil, missing("messages")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return nil, invalid("messages", "messages must be an array of message objects")
	}
	if len(msgs) == 0 {
		return nil, invalid("messages", "messages must not be empty")
	}
	if len(msgs) > lim.MaxMessages {
		return nil, invalid("messages", fmt.Sprintf("too many messages: %d, the limit is %d", len(msgs), lim.MaxMessages))
	}
	for i, m := range msgs {
		var head struct {
			Role string `json:"role"`
		}
		if json.Unmarshal(m, &head) != nil || head.Role == "" {
			return nil, invalid(fmt.Sprintf("messages[%d]", i), fmt.Sprintf("messages[%d] must be an object with a role", i))
		}
	}
	return msgs, nil
}

// forbiddenHeaders cannot be set on an MCP server request by the caller.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true, "Connection": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Accept": true, "Cache-Control": true, "Last-Event-Id": true,
}

// parseTools splits "tools" into MCP servers and the caller's own function
// tools, kept raw. Other tool types are refused only when MCP tools are
// present; without them the request passes through untouched.
func (req *chatRequest) parseTools(raw json.RawMessage, lim Limits) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return invalid("tools", "tools must be an array")
	}
	seen := map[string]bool{}
	var others []string
	for i, item := range items {
		param := fmt.Sprintf("tools[%d]", i)
		var t struct {
			Type         string            `json:"type"`
			URL          string            `json:"url"`
			ServerURL    string            `json:"server_url"`
			AllowedTools json.RawMessage   `json:"allowed_tools"`
			Headers      map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(item, &t); err != nil {
			return invalid(param, param+" must be an object: "+err.Error())
		}
		if t.Type != "mcp" {
			if t.Type != "function" {
				others = append(others, param)
			}
			req.functionTools = append(req.functionTools, item)
			continue
		}
		u := t.URL
		if u == "" {
			u = t.ServerURL
		}
		if u == "" {
			return missing(param + ".url")
		}
		if _, err := netguard.ValidateURL(u); err != nil {
			return invalid(param+".url", param+".url: "+err.Error())
		}
		if seen[u] {
			return invalid(param+".url", param+".url: the same MCP server is listed twice")
		}
		seen[u] = true
		srv := mcpclient.Server{URL: u}
		if t.AllowedTools != nil && !isNull(t.AllowedTools) {
			if err := json.Unmarshal(t.AllowedTools, &srv.AllowedTools); err != nil {
				// OpenAI's Responses API also allows {"tool_names":[…]}.
				var obj struct {
					ToolNames []string `json:"tool_names"`
				}
				if json.Unmarshal(t.AllowedTools, &obj) != nil {
					return invalid(param+".allowed_tools", param+".allowed_tools must be an array of tool names")
				}
				srv.AllowedTools = obj.ToolNames
			}
			if len(srv.AllowedTools) > lim.MaxAllowedTools {
				return invalid(param+".allowed_tools", fmt.Sprintf("%s.allowed_tools has more than %d names", param, lim.MaxAllowedTools))
			}
		}
		if len(t.Headers) > lim.MaxHeaders {
			return invalid(param+".headers", fmt.Sprintf("%s.headers: at most %d headers", param, lim.MaxHeaders))
		}
		for k, v := range t.Headers {
			canon := http.CanonicalHeaderKey(k)
			if !validHeaderName(k) || forbiddenHeaders[canon] {
				return invalid(param+".headers", fmt.Sprintf("%s.headers: %q cannot be set", param, k))
			}
			if strings.ContainsAny(v, "\r\n\x00") || len(v) > 8192 {
				return invalid(param+".headers", fmt.Sprintf("%s.headers: the value of %q is not a valid header value", param, k))
			}
			if srv.Headers == nil {
				srv.Headers = map[string]string{}
			}
			srv.Headers[canon] = v
		}
		req.servers = append(req.servers, srv)
	}
	if len(req.servers) > lim.MaxServers {
		return invalid("tools", fmt.Sprintf("too many MCP servers: %d, the limit is %d", len(req.servers), lim.MaxServers))
	}
	if len(req.servers) > 0 && len(others) > 0 {
		return invalid(others[0]+".type", others[0]+`.type: next to MCP tools, tools must be {"type":"mcp"} or {"type":"function"}`)
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

func parseStopWhen(raw json.RawMessage, lim Limits) ([]agentloop.StopCondition, error) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	var conds []agentloop.StopCondition
	if json.Unmarshal(raw, &conds) != nil {
		return nil, invalid("stop_when", `stop_when must be an array like [{"type":"tool_called","name":"…"}]`)
	}
	if len(conds) > lim.MaxStopWhen {
		return nil, invalid("stop_when", fmt.Sprintf("stop_when has more than %d conditions", lim.MaxStopWhen))
	}
	for i, c := range conds {
		if c.Type != "tool_called" {
			return nil, invalid(fmt.Sprintf("stop_when[%d].type", i), fmt.Sprintf(`stop_when[%d].type must be "tool_called"`, i))
		}
		if c.Name == "" {
			return nil, missing(fmt.Sprintf("stop_when[%d].name", i))
		}
	}
	return conds, nil
}

func isNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }
