// Package chatreq is the request vocabulary shared by the task API and the
// chat proxy: the OpenAI-shaped Error they answer with, the Limits that
// bound one request, and the parsers of the fields both accept (messages,
// tools with their MCP servers, max_steps, stop_when).
//
// Both callers read a request as a map of raw fields (ParseObject), take
// the fields they consume and pass every other one to the model untouched
// (llm.WithoutFields); the parsers here therefore take raw JSON values and
// answer an *Error naming the offending parameter.
package chatreq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/redact"
)

// DefaultMaxSteps is the number of model turns a request may take when it
// names none.
const DefaultMaxSteps = 10

// Limits bound what one request may ask for. Zero fields take the defaults
// noted. MaxBodyBytes bounds a body where a server reads it (mcpidp's /v1
// routes, chat completions included; the in-process proxy is handed the
// body whole) and MaxMetadata a task's metadata; the others bound task and
// chat requests alike.
type Limits struct {
	MaxBodyBytes    int64 // default 4 MiB
	MaxMessages     int   // default 1000
	MaxServers      int   // MCP servers, default 20
	MaxAllowedTools int   // per server, default 256
	MaxHeaders      int   // per server, default 32
	MaxSteps        int   // default 100
	MaxStopWhen     int   // stop_when conditions, default 16
	MaxUserLength   int   // characters of "user", default 256
	MaxMetadata     int   // bytes of metadata JSON, default 16 KiB
}

// ApplyDefaults sets every zero or negative field to its default.
func (l *Limits) ApplyDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 4 << 20
	}
	def(&l.MaxMessages, 1000)
	def(&l.MaxServers, 20)
	def(&l.MaxAllowedTools, 256)
	def(&l.MaxHeaders, 32)
	def(&l.MaxSteps, 100)
	def(&l.MaxStopWhen, 16)
	def(&l.MaxUserLength, 256)
	def(&l.MaxMetadata, 16<<10)
}

// ParseObject reads a request body, which must be a JSON object in UTF-8
// (RFC 8259 §8.1), into its raw top-level fields. Fields are kept raw and
// may be stored as they came, so invalid UTF-8 anywhere is refused here
// rather than by the database.
func ParseObject(body []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, InvalidJSON("request body must be a JSON object in UTF-8: it holds bytes that are not valid UTF-8")
	}
	if obj, ok := llm.Members(body); ok {
		return obj, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		msg := "request body must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, InvalidJSON(msg)
	}
	return obj, nil
}

// CheckText refuses a value that mcpidp stores or looks up when it holds a
// NUL character or is not valid UTF-8: PostgreSQL rejects both in text
// where SQLite would keep them, so both backends answer the same 400.
func CheckText(param, s string) error {
	switch {
	case !utf8.ValidString(s):
		return Invalid(param, param+" is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return Invalid(param, param+" must not contain NUL characters")
	}
	return nil
}

// CheckJSONText is CheckText for every string (object keys included) of a
// decoded JSON value.
func CheckJSONText(param string, v any) error {
	switch v := v.(type) {
	case string:
		return CheckText(param, v)
	case []any:
		for _, e := range v {
			if err := CheckJSONText(param, e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range v {
			if err := CheckText(param, k); err != nil {
				return err
			}
			if err := CheckJSONText(param, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsNull reports whether a raw field is JSON null, which the parsers take
// for an absent field.
func IsNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }

// ParseMessages returns the request's "messages": a non-empty array of at
// most lim.MaxMessages objects, each with a role. With acceptInput, a
// string "input" may stand instead, as one user message (OpenAI's
// Responses API shape); without it "input" is not read.
func ParseMessages(obj map[string]json.RawMessage, lim Limits, acceptInput bool) ([]json.RawMessage, error) {
	raw, hasMsgs := obj["messages"]
	if rawInput, hasInput := obj["input"]; acceptInput && hasInput {
		if hasMsgs {
			return nil, Invalid("input", "send either messages or input, not both")
		}
		var s string
		if json.Unmarshal(rawInput, &s) != nil || strings.TrimSpace(s) == "" {
			return nil, Invalid("input", "input must be a non-empty string")
		}
		m, _ := json.Marshal(map[string]string{"role": "user", "content": s})
		return []json.RawMessage{m}, nil
	}
	if !hasMsgs || IsNull(raw) {
		return nil, Missing("messages")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return nil, Invalid("messages", "messages must be an array of message objects")
	}
	if len(msgs) == 0 {
		return nil, Invalid("messages", "messages must not be empty")
	}
	if len(msgs) > lim.MaxMessages {
		return nil, Invalid("messages", fmt.Sprintf("too many messages: %d, the limit is %d", len(msgs), lim.MaxMessages))
	}
	for i, m := range msgs {
		var head messageHead
		if json.Unmarshal(m, &head) != nil || head.Role == "" {
			return nil, Invalid(fmt.Sprintf("messages[%d]", i), fmt.Sprintf("messages[%d] must be an object with a role", i))
		}
	}
	return msgs, nil
}

// messageHead is the part of a message that is checked: it has a role.
type messageHead struct {
	Role string `json:"role"`
}

// CheckMessages validates "messages" as ParseMessages(obj, lim, false) does,
// with the same errors, but keeps nothing: a request that goes to the model
// as it came needs its messages checked, not cut apart, so they are read in
// one pass instead of once as a list and again one by one. It returns how
// many there are.
func CheckMessages(obj map[string]json.RawMessage, lim Limits) (int, error) {
	raw, ok := obj["messages"]
	if !ok || IsNull(raw) {
		return 0, Missing("messages")
	}
	var heads []messageHead
	err := json.Unmarshal(raw, &heads)
	if err == nil && len(heads) > 0 && len(heads) <= lim.MaxMessages &&
		!slices.ContainsFunc(heads, func(h messageHead) bool { return h.Role == "" }) {
		return len(heads), nil
	}
	// Something is wrong: ParseMessages says what, in its words.
	if _, perr := ParseMessages(obj, lim, false); perr != nil {
		return 0, perr
	}
	return 0, Invalid("messages", "messages must be an array of message objects")
}

// Tools is a request's "tools", split by kind.
type Tools struct {
	// MCP are the {"type":"mcp"} entries in order, their header names
	// canonicalized.
	MCP []mcpclient.Server
	// Functions are the caller's own tools, as sent (with allowFunctions
	// only).
	Functions []json.RawMessage
	// Approvals are the MCP servers' require_approval policies by server
	// URL (as in MCP); a server that asks for none ("never") is absent.
	Approvals map[string]agentloop.ApprovalPolicy
}

// ParseTools splits "tools" into MCP servers and the caller's own tools.
// An MCP entry names its server by "url" (or "server_url"), may limit it
// to "allowed_tools" (an array of names, or {"tool_names":[…]} as in
// OpenAI's Responses API) and may add "headers" to its requests.
//
// allowFunctions is the chat proxy's rule: every other entry is kept raw
// for the model, and only when MCP servers are present must those be
// {"type":"function"}. Without it (the task API's rule) every entry must
// be an MCP server.
func ParseTools(raw json.RawMessage, lim Limits, allowFunctions bool) (*Tools, error) {
	out := &Tools{}
	if raw == nil || IsNull(raw) {
		return out, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, Invalid("tools", "tools must be an array")
	}
	seen := map[string]bool{}
	other := "" // the first entry that is neither "mcp" nor "function"
	for i, item := range items {
		param := fmt.Sprintf("tools[%d]", i)
		var t mcpTool
		if err := json.Unmarshal(item, &t); err != nil {
			return nil, Invalid(param, param+" must be an object: "+err.Error())
		}
		switch {
		case t.Type == "mcp":
		case !allowFunctions && t.Type == "function":
			return nil, Invalid(param+".type", param+`.type: tasks run MCP tools only; use {"type":"mcp","url":…}`)
		case !allowFunctions:
			return nil, Invalid(param+".type", fmt.Sprintf(`%s.type must be "mcp", got %q`, param, t.Type))
		default:
			if t.Type != "function" && other == "" {
				other = param
			}
			out.Functions = append(out.Functions, item)
			continue
		}
		server, err := t.server(param, lim, seen)
		if err != nil {
			return nil, err
		}
		policy, err := ParseRequireApproval(param+".require_approval", t.RequireApproval, lim)
		if err != nil {
			return nil, err
		}
		if policy != nil {
			if out.Approvals == nil {
				out.Approvals = map[string]agentloop.ApprovalPolicy{}
			}
			out.Approvals[server.URL] = *policy
		}
		out.MCP = append(out.MCP, server)
	}
	if len(out.MCP) > lim.MaxServers {
		return nil, Invalid("tools", fmt.Sprintf("too many MCP servers: %d, the limit is %d", len(out.MCP), lim.MaxServers))
	}
	if len(out.MCP) > 0 && other != "" {
		return nil, Invalid(other+".type", other+`.type: next to MCP tools, tools must be {"type":"mcp"} or {"type":"function"}`)
	}
	return out, nil
}

// mcpTool is one entry of "tools" as read for its MCP fields.
type mcpTool struct {
	Type         string            `json:"type"`
	URL          string            `json:"url"`
	ServerURL    string            `json:"server_url"`
	AllowedTools json.RawMessage   `json:"allowed_tools"`
	Headers      map[string]string `json:"headers"`
	// RequireApproval is OpenAI's require_approval (ParseRequireApproval).
	RequireApproval json.RawMessage `json:"require_approval"`
}

// server validates an MCP entry; seen holds the URLs of the entries before
// it, and gets this one's.
func (t *mcpTool) server(param string, lim Limits, seen map[string]bool) (mcpclient.Server, error) {
	u := t.URL
	if u == "" {
		u = t.ServerURL
	}
	if u == "" {
		return mcpclient.Server{}, Missing(param + ".url")
	}
	// What the URL carries besides the server's address is a secret: the
	// server is named by its redacted URL everywhere, the full one only
	// dials it, and userinfo becomes a Basic Authorization header.
	dial := u
	var userinfo *url.Userinfo
	if p, err := url.Parse(u); err == nil && p.User != nil {
		userinfo, p.User = p.User, nil
		dial = p.String()
	}
	parsed, err := netguard.ValidateURL(dial)
	if err != nil {
		return mcpclient.Server{}, Invalid(param+".url", param+".url: "+redact.Text(err.Error()))
	}
	srv := mcpclient.Server{URL: redact.URL(dial)}
	if parsed.RawQuery != "" {
		srv.ConnectURL = dial
	}
	// The same server may be spelled two ways (case, default port): compare
	// the canonical form that logins and tokens are keyed by.
	canon, err := mcpauth.CanonicalServerURL(srv.URL)
	if err != nil {
		return mcpclient.Server{}, Invalid(param+".url", param+".url: "+err.Error())
	}
	if seen[canon] {
		return mcpclient.Server{}, Invalid(param+".url", param+".url: the same MCP server is listed twice")
	}
	seen[canon] = true
	if t.AllowedTools != nil && !IsNull(t.AllowedTools) {
		if err := json.Unmarshal(t.AllowedTools, &srv.AllowedTools); err != nil {
			var obj struct {
				ToolNames []string `json:"tool_names"`
			}
			if json.Unmarshal(t.AllowedTools, &obj) != nil {
				return mcpclient.Server{}, Invalid(param+".allowed_tools", param+".allowed_tools must be an array of tool names")
			}
			srv.AllowedTools = obj.ToolNames
		}
		if len(srv.AllowedTools) > lim.MaxAllowedTools {
			return mcpclient.Server{}, Invalid(param+".allowed_tools", fmt.Sprintf("%s.allowed_tools has more than %d names", param, lim.MaxAllowedTools))
		}
	}
	if srv.Headers, err = validateHeaders(param+".headers", t.Headers, lim); err != nil {
		return mcpclient.Server{}, err
	}
	if userinfo != nil && srv.Headers["Authorization"] == "" {
		// user:password@ means HTTP Basic credentials, as for curl; sent
		// as a header they are sealed and shown as the header's name only.
		password, _ := userinfo.Password()
		if srv.Headers == nil {
			srv.Headers = map[string]string{}
		}
		srv.Headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(userinfo.Username()+":"+password))
	}
	return srv, nil
}

// forbiddenHeaders cannot be set by the caller on an MCP server's
// requests: they belong to HTTP, to the MCP transports, or to mcpidp.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true, "Connection": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Accept": true, "Cache-Control": true, "Last-Event-Id": true,
}

// validateHeaders checks an MCP server's "headers" and returns them with
// canonical names (nil for none).
func validateHeaders(param string, headers map[string]string, lim Limits) (map[string]string, error) {
	if len(headers) > lim.MaxHeaders {
		return nil, Invalid(param, fmt.Sprintf("%s: at most %d headers", param, lim.MaxHeaders))
	}
	var out map[string]string
	for k, v := range headers {
		canon := http.CanonicalHeaderKey(k)
		if !validHeaderName(k) || forbiddenHeaders[canon] {
			return nil, Invalid(param, fmt.Sprintf("%s: %q cannot be set", param, k))
		}
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > 8192 {
			return nil, Invalid(param, fmt.Sprintf("%s: the value of %q is not a valid header value", param, k))
		}
		if out == nil {
			out = map[string]string{}
		}
		out[canon] = v
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

// ParseRequireApproval reads an MCP server's "require_approval": "never"
// (the default, also for null or absent), "always", "auto" (ask for every
// tool that does not declare readOnlyHint), or OpenAI's
// {"always":{"tool_names":[…]},"never":{"tool_names":[…]}}. It returns nil
// when no call of the server ever waits.
func ParseRequireApproval(param string, raw json.RawMessage, lim Limits) (*agentloop.ApprovalPolicy, error) {
	if raw == nil || IsNull(raw) {
		return nil, nil
	}
	const shape = `must be "never", "always", "auto" or {"always":{"tool_names":[…]},"never":{"tool_names":[…]}}`
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case agentloop.ApprovalNever:
			return nil, nil
		case agentloop.ApprovalAlways, agentloop.ApprovalAuto:
			return &agentloop.ApprovalPolicy{Mode: mode}, nil
		}
		return nil, Invalid(param, fmt.Sprintf("%s %s, got %q", param, shape, mode))
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil, Invalid(param, param+" "+shape)
	}
	p := &agentloop.ApprovalPolicy{}
	for key, v := range obj {
		var list *[]string
		switch key {
		case "always":
			list = &p.Always
		case "never":
			list = &p.Never
		default:
			return nil, Invalid(param+"."+key, fmt.Sprintf("%s: unknown key %q; %s", param, key, shape))
		}
		var names struct {
			ToolNames []string `json:"tool_names"`
		}
		dec := json.NewDecoder(strings.NewReader(string(v)))
		dec.DisallowUnknownFields()
		if dec.Decode(&names) != nil {
			return nil, Invalid(param+"."+key, fmt.Sprintf(`%s.%s must be {"tool_names":["…"]}`, param, key))
		}
		if len(names.ToolNames) > lim.MaxAllowedTools {
			return nil, Invalid(param+"."+key, fmt.Sprintf("%s.%s has more than %d names", param, key, lim.MaxAllowedTools))
		}
		for _, n := range names.ToolNames {
			if n == "" {
				return nil, Invalid(param+"."+key, param+"."+key+".tool_names must not hold empty names")
			}
			if err := CheckText(param+"."+key, n); err != nil {
				return nil, err
			}
		}
		*list = append([]string{}, names.ToolNames...)
	}
	if p.Always == nil && p.Never == nil {
		return nil, Invalid(param, param+" "+shape)
	}
	return p, nil
}

// ParseMaxSteps returns "max_steps", a whole number from 1 to
// lim.MaxSteps, or DefaultMaxSteps when it is absent.
func ParseMaxSteps(raw json.RawMessage, lim Limits) (int, error) {
	steps := DefaultMaxSteps
	if raw == nil || IsNull(raw) {
		return steps, nil
	}
	if err := json.Unmarshal(raw, &steps); err != nil || steps < 1 || steps > lim.MaxSteps {
		return 0, Invalid("max_steps", fmt.Sprintf("max_steps must be a whole number from 1 to %d", lim.MaxSteps))
	}
	return steps, nil
}

// ParseStopWhen returns "stop_when": at most lim.MaxStopWhen conditions
// like {"type":"tool_called","name":"…"}.
func ParseStopWhen(raw json.RawMessage, lim Limits) ([]agentloop.StopCondition, error) {
	if raw == nil || IsNull(raw) {
		return nil, nil
	}
	var conds []agentloop.StopCondition
	if json.Unmarshal(raw, &conds) != nil {
		return nil, Invalid("stop_when", `stop_when must be an array like [{"type":"tool_called","name":"…"}]`)
	}
	if len(conds) > lim.MaxStopWhen {
		return nil, Invalid("stop_when", fmt.Sprintf("stop_when has more than %d conditions", lim.MaxStopWhen))
	}
	for i, c := range conds {
		if c.Type != "tool_called" {
			return nil, Invalid(fmt.Sprintf("stop_when[%d].type", i), fmt.Sprintf(`stop_when[%d].type must be "tool_called"`, i))
		}
		if c.Name == "" {
			return nil, Missing(fmt.Sprintf("stop_when[%d].name", i))
		}
	}
	return conds, nil
}
