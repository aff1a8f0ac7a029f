package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/mcpidp/mcpidp/internal/taskview"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/netguard"
)

// Limits bound what one request may ask for.
type Limits struct {
	MaxBodyBytes    int64 // default 4 MiB
	MaxMessages     int   // default 1000
	MaxServers      int   // default 20
	MaxAllowedTools int   // per server, default 256
	MaxSteps        int   // default 100
	MaxMetadata     int   // bytes of metadata JSON, default 16 KiB
}

func (l *Limits) applyDefaults() {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 4 << 20
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = 1000
	}
	if l.MaxServers <= 0 {
		l.MaxServers = 20
	}
	if l.MaxAllowedTools <= 0 {
		l.MaxAllowedTools = 256
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = 100
	}
	if l.MaxMetadata <= 0 {
		l.MaxMetadata = 16 << 10
	}
}

// DefaultMaxSteps is used when a request names none.
const DefaultMaxSteps = 10

// mcpTool is one {"type":"mcp"} entry of "tools".
type mcpTool struct {
	URL          string
	AllowedTools []string
	Headers      map[string]string
}

// taskFields are the fields of a task request that mcpidp consumes; every
// other top-level field passes through to the model.
var taskFields = map[string]bool{
	"user": true, "messages": true, "input": true, "tools": true, "store": true,
	"authorizationRequestCallback": true, "authorization_request_callback": true,
	"webhook": true, "max_steps": true, "stop_when": true, "metadata": true, "stream": true,
}

// createTaskRequest is a parsed, validated POST /v1/tasks body.
type createTaskRequest struct {
	User     string
	Model    string
	Store    bool
	Metadata json.RawMessage
	Request  taskview.TaskRequest
	Headers  map[string]map[string]string
}

func parseObject(body []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		msg := "request body must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json", Message: msg}
	}
	return obj, nil
}

func parseCreateTask(body []byte, lim Limits) (*createTaskRequest, error) {
	obj, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	out := &createTaskRequest{}
	if out.User, err = requiredString(obj, "user", 256); err != nil {
		return nil, err
	}
	if out.Model, err = requiredString(obj, "model", 256); err != nil {
		return nil, err
	}
	msgs, err := parseMessages(obj, lim)
	if err != nil {
		return nil, err
	}
	out.Request.Messages = msgs
	if raw, ok := obj["store"]; ok {
		if err := json.Unmarshal(raw, &out.Store); err != nil {
			return nil, invalid("store", "store must be true or false")
		}
	}
	tools, err := parseTools(obj["tools"], lim, false)
	if err != nil {
		return nil, err
	}
	for _, t := range tools.mcp {
		out.Request.Servers = append(out.Request.Servers, taskview.TaskServer{URL: t.URL, AllowedTools: t.AllowedTools, HeaderNames: sortedKeys(t.Headers)})
		if len(t.Headers) > 0 {
			if out.Headers == nil {
				out.Headers = map[string]map[string]string{}
			}
			out.Headers[t.URL] = t.Headers
		}
	}
	out.Request.MaxSteps = DefaultMaxSteps
	if raw, ok := obj["max_steps"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &out.Request.MaxSteps); err != nil || out.Request.MaxSteps < 1 || out.Request.MaxSteps > lim.MaxSteps {
			return nil, invalid("max_steps", fmt.Sprintf("max_steps must be a whole number from 1 to %d", lim.MaxSteps))
		}
	}
	if out.Request.StopWhen, err = parseStopWhen(obj["stop_when"]); err != nil {
		return nil, err
	}
	cb := obj["authorizationRequestCallback"]
	if cb == nil {
		cb = obj["authorization_request_callback"]
	}
	if cb != nil && string(cb) != "null" {
		var u string
		if json.Unmarshal(cb, &u) != nil {
			return nil, invalid("authorizationRequestCallback", "authorizationRequestCallback must be a URL string")
		}
		if _, err := netguard.ValidateURL(u); err != nil {
			return nil, invalid("authorizationRequestCallback", "authorizationRequestCallback: "+err.Error())
		}
		out.Request.AuthorizationRequestCallback = u
	}
	if raw, ok := obj["webhook"]; ok && string(raw) != "null" {
		var wh taskview.Webhook
		if json.Unmarshal(raw, &wh) != nil || wh.URL == "" {
			return nil, invalid("webhook", `webhook must be an object like {"url":"https://…"}`)
		}
		if _, err := netguard.ValidateURL(wh.URL); err != nil {
			return nil, invalid("webhook.url", "webhook.url: "+err.Error())
		}
		out.Request.Webhook = &wh
	}
	if raw, ok := obj["metadata"]; ok && string(raw) != "null" {
		if len(raw) > lim.MaxMetadata {
			return nil, invalid("metadata", fmt.Sprintf("metadata is larger than %d bytes", lim.MaxMetadata))
		}
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			return nil, invalid("metadata", "metadata must be a JSON object")
		}
		out.Metadata = raw
	}
	// Everything else passes through to the model untouched.
	pass := map[string]json.RawMessage{}
	for k, v := range obj {
		if !taskFields[k] {
			pass[k] = v
		}
	}
	out.Request.Body, _ = json.Marshal(pass)
	return out, nil
}

func requiredString(obj map[string]json.RawMessage, name string, maxLen int) (string, error) {
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return "", missing(name)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", invalid(name, name+" must be a string")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid(name, name+" must not be empty")
	}
	if len(s) > maxLen {
		return "", invalid(name, fmt.Sprintf("%s is longer than %d characters", name, maxLen))
	}
	return s, nil
}

func parseMessages(obj map[string]json.RawMessage, lim Limits) ([]json.RawMessage, error) {
	rawMsgs, hasMsgs := obj["messages"]
	rawInput, hasInput := obj["input"]
	switch {
	case hasMsgs && hasInput:
		return nil, invalid("input", "send either messages or input, not both")
	case hasInput:
		var s string
		if json.Unmarshal(rawInput, &s) != nil || strings.TrimSpace(s) == "" {
			return nil, invalid("input", "input must be a non-empty string")
		}
		m, _ := json.Marshal(map[string]string{"role": "user", "content": s})
		return []json.RawMessage{m}, nil
	case !hasMsgs:
		return nil, missing("messages")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(rawMsgs, &msgs) != nil {
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

// parsedTools splits "tools" into MCP servers and the caller's own function
// tools (kept raw).
type parsedTools struct {
	mcp      []mcpTool
	function []json.RawMessage
}

var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true, "Connection": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Accept": true,
}

func parseTools(raw json.RawMessage, lim Limits, allowFunctions bool) (*parsedTools, error) {
	out := &parsedTools{}
	if raw == nil || string(raw) == "null" {
		return out, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, invalid("tools", "tools must be an array")
	}
	seen := map[string]bool{}
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
			return nil, invalid(param, param+" must be an object: "+err.Error())
		}
		switch t.Type {
		case "mcp":
		case "function":
			if !allowFunctions {
				return nil, invalid(param+".type", param+`.type: tasks run MCP tools only; use {"type":"mcp","url":…}`)
			}
			out.function = append(out.function, item)
			continue
		default:
			return nil, invalid(param+".type", fmt.Sprintf(`%s.type must be "mcp"%s, got %q`, param, map[bool]string{true: ` or "function"`}[allowFunctions], t.Type))
		}
		u := t.URL
		if u == "" {
			u = t.ServerURL
		}
		if u == "" {
			return nil, missing(param + ".url")
		}
		if _, err := netguard.ValidateURL(u); err != nil {
			return nil, invalid(param+".url", param+".url: "+err.Error())
		}
		if seen[u] {
			return nil, invalid(param+".url", param+".url: the same MCP server is listed twice")
		}
		seen[u] = true
		tool := mcpTool{URL: u}
		if t.AllowedTools != nil && string(t.AllowedTools) != "null" {
			if err := json.Unmarshal(t.AllowedTools, &tool.AllowedTools); err != nil {
				// OpenAI's Responses API also allows {"tool_names":[…]}.
				var obj struct {
					ToolNames []string `json:"tool_names"`
				}
				if json.Unmarshal(t.AllowedTools, &obj) != nil {
					return nil, invalid(param+".allowed_tools", param+".allowed_tools must be an array of tool names")
				}
				tool.AllowedTools = obj.ToolNames
			}
			if len(tool.AllowedTools) > lim.MaxAllowedTools {
				return nil, invalid(param+".allowed_tools", fmt.Sprintf("%s.allowed_tools has more than %d names", param, lim.MaxAllowedTools))
			}
		}
		if len(t.Headers) > 32 {
			return nil, invalid(param+".headers", param+".headers: at most 32 headers")
		}
		for k, v := range t.Headers {
			canon := textproto.CanonicalMIMEHeaderKey(k)
			if !validHeaderName(k) || forbiddenHeaders[canon] {
				return nil, invalid(param+".headers", fmt.Sprintf("%s.headers: %q cannot be set", param, k))
			}
			if strings.ContainsAny(v, "\r\n\x00") || len(v) > 8192 {
				return nil, invalid(param+".headers", fmt.Sprintf("%s.headers: the value of %q is not a valid header value", param, k))
			}
			if tool.Headers == nil {
				tool.Headers = map[string]string{}
			}
			tool.Headers[canon] = v
		}
		out.mcp = append(out.mcp, tool)
	}
	if len(out.mcp) > lim.MaxServers {
		return nil, invalid("tools", fmt.Sprintf("too many MCP servers: %d, the limit is %d", len(out.mcp), lim.MaxServers))
	}
	return out, nil
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

func parseStopWhen(raw json.RawMessage) ([]agentloop.StopCondition, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var conds []agentloop.StopCondition
	if json.Unmarshal(raw, &conds) != nil {
		return nil, invalid("stop_when", `stop_when must be an array like [{"type":"tool_called","name":"…"}]`)
	}
	if len(conds) > 16 {
		return nil, invalid("stop_when", "stop_when has more than 16 conditions")
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

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
