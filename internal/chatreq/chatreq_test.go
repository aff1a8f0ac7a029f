package chatreq_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

func defaults() chatreq.Limits {
	var lim chatreq.Limits
	lim.ApplyDefaults()
	return lim
}

// requireError checks that err is a 400 *chatreq.Error with code and param
// whose message contains message.
func requireError(t *testing.T, err error, code, param, message string) {
	t.Helper()
	var e *chatreq.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, http.StatusBadRequest, e.Status)
	require.Equal(t, "invalid_request_error", e.Type)
	require.Equal(t, code, e.Code, e.Message)
	require.Equal(t, param, e.Param, e.Message)
	require.Contains(t, e.Message, message)
}

func TestLimitsApplyDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, chatreq.Limits{
		MaxBodyBytes: 4 << 20, MaxMessages: 1000, MaxServers: 20, MaxAllowedTools: 256, MaxHeaders: 32,
		MaxSteps: 100, MaxStopWhen: 16, MaxUserLength: 256, MaxMetadata: 16 << 10,
	}, defaults())

	lim := chatreq.Limits{MaxBodyBytes: 10, MaxSteps: 3, MaxHeaders: -1}
	lim.ApplyDefaults()
	require.EqualValues(t, 10, lim.MaxBodyBytes, "a set limit stays")
	require.Equal(t, 3, lim.MaxSteps)
	require.Equal(t, 32, lim.MaxHeaders, "a negative limit takes the default")
}

func TestErrorShape(t *testing.T) {
	t.Parallel()
	e := chatreq.Invalid("tools[0].url", "tools[0].url: bad")
	require.Equal(t, "tools[0].url: bad", e.Error())
	raw, err := json.Marshal(map[string]any{"error": e})
	require.NoError(t, err)
	require.JSONEq(t, `{"error":{"type":"invalid_request_error","code":"invalid_value","message":"tools[0].url: bad","param":"tools[0].url"}}`, string(raw))

	raw, err = json.Marshal(chatreq.InvalidJSON("request body must be a JSON object"))
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"invalid_request_error","code":"invalid_json","message":"request body must be a JSON object"}`, string(raw), "no param, no status")
	requireError(t, chatreq.Missing("user"), "missing_required_parameter", "user", "missing required parameter: user")
}

func TestParseObject(t *testing.T) {
	t.Parallel()
	obj, err := chatreq.ParseObject([]byte(`{"a": [1, 2], "b": null}`))
	require.NoError(t, err)
	require.Equal(t, "[1, 2]", string(obj["a"]))
	require.True(t, chatreq.IsNull(obj["b"]))

	for _, body := range []string{`[1]`, `null`, `{"a":`, ``} {
		_, err := chatreq.ParseObject([]byte(body))
		requireError(t, err, "invalid_json", "", "request body must be a JSON object")
	}
}

func TestParseMessages(t *testing.T) {
	t.Parallel()
	lim := defaults()
	parse := func(body string, acceptInput bool) ([]json.RawMessage, error) {
		obj, err := chatreq.ParseObject([]byte(body))
		require.NoError(t, err)
		return chatreq.ParseMessages(obj, lim, acceptInput)
	}

	msgs, err := parse(`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`, false)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.JSONEq(t, `{"role":"user","content":"u"}`, string(msgs[1]))

	msgs, err = parse(`{"input":"hello"}`, true)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.JSONEq(t, `{"role":"user","content":"hello"}`, string(msgs[0]))

	// Without acceptInput, "input" is not mcpidp's: messages are still required, and win.
	_, err = parse(`{"input":"hello"}`, false)
	requireError(t, err, "missing_required_parameter", "messages", "messages")
	msgs, err = parse(`{"input":"hello","messages":[{"role":"user"}]}`, false)
	require.NoError(t, err)
	require.Len(t, msgs, 1)

	many := make([]string, lim.MaxMessages+1)
	for i := range many {
		many[i] = `{"role":"user"}`
	}
	for _, tc := range []struct {
		body                 string
		code, param, message string
	}{
		{`{}`, "missing_required_parameter", "messages", "messages"},
		{`{"messages":null}`, "missing_required_parameter", "messages", "messages"},
		{`{"messages":{}}`, "invalid_value", "messages", "array of message objects"},
		{`{"messages":[]}`, "invalid_value", "messages", "must not be empty"},
		{`{"messages":[` + strings.Join(many, ",") + `]}`, "invalid_value", "messages", "too many messages: 1001, the limit is 1000"},
		{`{"messages":[{"role":"user"},{"content":"x"}]}`, "invalid_value", "messages[1]", "messages[1] must be an object with a role"},
		{`{"messages":[{"role":"user"}],"input":"x"}`, "invalid_value", "input", "not both"},
		{`{"input":"  "}`, "invalid_value", "input", "non-empty string"},
		{`{"input":5}`, "invalid_value", "input", "non-empty string"},
	} {
		_, err := parse(tc.body, true)
		requireError(t, err, tc.code, tc.param, tc.message)
	}
}

// TestCheckMessages checks that the pass-through's one-pass check accepts
// what ParseMessages accepts and refuses what it refuses, with its error.
func TestCheckMessages(t *testing.T) {
	t.Parallel()
	lim := defaults()
	many := make([]string, lim.MaxMessages+1)
	for i := range many {
		many[i] = `{"role":"user"}`
	}
	for _, body := range []string{
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}],"name":"n"}]}`,
		`{}`, `{"messages":null}`, `{"messages":{}}`, `{"messages":"x"}`, `{"messages":[]}`,
		`{"messages":[` + strings.Join(many, ",") + `]}`,
		`{"messages":[` + strings.Join(many[1:], ",") + `]}`,
		`{"messages":[{"role":"user"},{"content":"x"}]}`,
		`{"messages":[{"role":"user"},5]}`, `{"messages":[null]}`, `{"messages":[{"role":5}]}`,
		`{"messages":[{"role":""}]}`, `{"messages":[{"role":"user","role":5}]}`,
		`{"messages":[{"role":"user"}],"input":"x"}`,
	} {
		obj, err := chatreq.ParseObject([]byte(body))
		require.NoError(t, err, body)
		msgs, parseErr := chatreq.ParseMessages(obj, lim, false)
		n, checkErr := chatreq.CheckMessages(obj, lim)
		if parseErr != nil {
			require.Equal(t, parseErr, checkErr, body)
			require.Zero(t, n)
			continue
		}
		require.NoError(t, checkErr, body)
		require.Equal(t, len(msgs), n, body)
	}
}

func TestParseTools(t *testing.T) {
	t.Parallel()
	lim := defaults()

	tools, err := chatreq.ParseTools(json.RawMessage(`[
		{"type":"mcp","url":"https://a.example.com/mcp","allowed_tools":["search"],"headers":{"x-api-key":"k1","authorization":"Bearer s"}},
		{"type":"function","function":{"name":"get_weather"}},
		{"type":"mcp","server_url":"https://b.example.com/mcp","allowed_tools":{"tool_names":["x","y"]}}
	]`), lim, true)
	require.NoError(t, err)
	require.Equal(t, []mcpclient.Server{
		{URL: "https://a.example.com/mcp", AllowedTools: []string{"search"}, Headers: map[string]string{"X-Api-Key": "k1", "Authorization": "Bearer s"}},
		{URL: "https://b.example.com/mcp", AllowedTools: []string{"x", "y"}},
	}, tools.MCP)
	require.Len(t, tools.Functions, 1)
	require.JSONEq(t, `{"type":"function","function":{"name":"get_weather"}}`, string(tools.Functions[0]), "kept as sent")

	// Without MCP tools, the chat proxy keeps any tool for the model.
	tools, err = chatreq.ParseTools(json.RawMessage(`[{"type":"web_search"}]`), lim, true)
	require.NoError(t, err)
	require.Empty(t, tools.MCP)
	require.Len(t, tools.Functions, 1)

	for _, raw := range []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`[]`)} {
		tools, err := chatreq.ParseTools(raw, lim, false)
		require.NoError(t, err, string(raw))
		require.Empty(t, tools.MCP)
		require.Empty(t, tools.Functions)
	}
}

func TestParseToolsErrors(t *testing.T) {
	t.Parallel()
	lim := defaults()
	mcp := func(extra string) string { return `{"type":"mcp","url":"https://a.example.com/mcp"` + extra + `}` }
	servers := make([]string, lim.MaxServers+1)
	for i := range servers {
		servers[i] = fmt.Sprintf(`{"type":"mcp","url":"https://s%d.example.com/mcp"}`, i)
	}
	names := make([]string, lim.MaxAllowedTools+1)
	headers := make([]string, lim.MaxHeaders+1)
	for i := range names {
		names[i] = fmt.Sprintf(`"t%d"`, i)
	}
	for i := range headers {
		headers[i] = fmt.Sprintf(`"X-H%d":"v"`, i)
	}
	for _, tc := range []struct {
		name                 string
		tools                string
		allowFunctions       bool
		code, param, message string
	}{
		{"not an array", `{}`, true, "invalid_value", "tools", "tools must be an array"},
		{"entry not an object", `[1]`, true, "invalid_value", "tools[0]", "tools[0] must be an object"},
		{"task: function", `[{"type":"function"}]`, false, "invalid_value", "tools[0].type", "tasks run MCP tools only"},
		{"task: other type", `[{"type":"web_search"}]`, false, "invalid_value", "tools[0].type", `tools[0].type must be "mcp", got "web_search"`},
		{"chat: other type next to MCP", `[{"type":"function"},{"type":"web_search"},` + mcp(``) + `]`, true, "invalid_value", "tools[1].type", `next to MCP tools, tools must be {"type":"mcp"} or {"type":"function"}`},
		{"no url", `[{"type":"mcp"}]`, true, "missing_required_parameter", "tools[0].url", "tools[0].url"},
		{"url not http", `[{"type":"mcp","url":"file:///etc/passwd"}]`, false, "invalid_value", "tools[0].url", "http or https"},
		{"same server twice", `[` + mcp(``) + `,{"type":"mcp","server_url":"https://a.example.com/mcp","headers":{"Host":"x"}}]`, true, "invalid_value", "tools[1].url", "listed twice"},
		{"allowed_tools not names", `[` + mcp(`,"allowed_tools":"search"`) + `]`, true, "invalid_value", "tools[0].allowed_tools", "array of tool names"},
		{"too many allowed_tools", `[` + mcp(`,"allowed_tools":[`+strings.Join(names, ",")+`]`) + `]`, true, "invalid_value", "tools[0].allowed_tools", "more than 256 names"},
		{"too many headers", `[` + mcp(`,"headers":{`+strings.Join(headers, ",")+`}`) + `]`, true, "invalid_value", "tools[0].headers", "tools[0].headers: at most 32 headers"},
		{"transport header", `[` + mcp(`,"headers":{"mcp-session-id":"x"}`) + `]`, false, "invalid_value", "tools[0].headers", `"mcp-session-id" cannot be set`},
		{"resumption header", `[` + mcp(`,"headers":{"Last-Event-ID":"x"}`) + `]`, true, "invalid_value", "tools[0].headers", `"Last-Event-ID" cannot be set`},
		{"bad header name", `[` + mcp(`,"headers":{"a b":"x"}`) + `]`, true, "invalid_value", "tools[0].headers", `"a b" cannot be set`},
		{"bad header value", `[` + mcp(`,"headers":{"X-A":"a\r\nHost: evil"}`) + `]`, true, "invalid_value", "tools[0].headers", `the value of "X-A" is not a valid header value`},
		{"too many servers", `[` + strings.Join(servers, ",") + `]`, false, "invalid_value", "tools", "too many MCP servers: 21, the limit is 20"},
	} {
		_, err := chatreq.ParseTools(json.RawMessage(tc.tools), lim, tc.allowFunctions)
		require.Error(t, err, tc.name)
		requireError(t, err, tc.code, tc.param, tc.message)
	}
}

func TestParseMaxSteps(t *testing.T) {
	t.Parallel()
	lim := defaults()
	got, err := chatreq.ParseMaxSteps(nil, lim)
	require.NoError(t, err)
	require.Equal(t, chatreq.DefaultMaxSteps, got, "absent")
	for raw, want := range map[string]int{`null`: chatreq.DefaultMaxSteps, `1`: 1, `100`: 100} {
		got, err := chatreq.ParseMaxSteps(json.RawMessage(raw), lim)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	for _, raw := range []string{`0`, `101`, `2.5`, `"3"`} {
		_, err := chatreq.ParseMaxSteps(json.RawMessage(raw), lim)
		requireError(t, err, "invalid_value", "max_steps", "max_steps must be a whole number from 1 to 100")
	}
}

func TestParseStopWhen(t *testing.T) {
	t.Parallel()
	lim := defaults()
	conds, err := chatreq.ParseStopWhen(json.RawMessage(`[{"type":"tool_called","name":"submit"}]`), lim)
	require.NoError(t, err)
	require.Equal(t, []agentloop.StopCondition{{Type: "tool_called", Name: "submit"}}, conds)
	conds, err = chatreq.ParseStopWhen(json.RawMessage(`null`), lim)
	require.NoError(t, err)
	require.Nil(t, conds)

	many := strings.Repeat(`{"type":"tool_called","name":"x"},`, lim.MaxStopWhen+1)
	for _, tc := range []struct {
		raw                  string
		code, param, message string
	}{
		{`{"type":"tool_called"}`, "invalid_value", "stop_when", "stop_when must be an array"},
		{`[` + strings.TrimSuffix(many, ",") + `]`, "invalid_value", "stop_when", "stop_when has more than 16 conditions"},
		{`[{"type":"tool_called","name":"a"},{"type":"never","name":"b"}]`, "invalid_value", "stop_when[1].type", `stop_when[1].type must be "tool_called"`},
		{`[{"type":"tool_called"}]`, "missing_required_parameter", "stop_when[0].name", "stop_when[0].name"},
	} {
		_, err := chatreq.ParseStopWhen(json.RawMessage(tc.raw), lim)
		requireError(t, err, tc.code, tc.param, tc.message)
	}
}

// A server URL's query and userinfo never become part of its name: the
// query goes to ConnectURL only, userinfo to a Basic Authorization header
// (unless headers set one), and URLs that differ only in them are one
// server.
func TestParseToolsKeepsURLSecretsApart(t *testing.T) {
	t.Parallel()
	tools, err := chatreq.ParseTools(json.RawMessage(`[
		{"type":"mcp","url":"https://user:pw@a.example.com/mcp?api_key=secret123"},
		{"type":"mcp","url":"https://user:pw@b.example.com/mcp","headers":{"authorization":"Bearer own"}},
		{"type":"mcp","url":"https://c.example.com/mcp"}]`), defaults(), false)
	require.NoError(t, err)
	require.Equal(t, []mcpclient.Server{
		{URL: "https://a.example.com/mcp?…", ConnectURL: "https://a.example.com/mcp?api_key=secret123",
			Headers: map[string]string{"Authorization": "Basic dXNlcjpwdw=="}},
		{URL: "https://b.example.com/mcp", Headers: map[string]string{"Authorization": "Bearer own"}},
		{URL: "https://c.example.com/mcp"},
	}, tools.MCP)

	_, err = chatreq.ParseTools(json.RawMessage(`[{"type":"mcp","url":"https://a.example.com/mcp?k=1"},{"type":"mcp","url":"https://a.example.com/mcp?k=2"}]`), defaults(), false)
	requireError(t, err, "invalid_value", "tools[1].url", "listed twice")
}
