package responses_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/responses"
)

func TestParseRequestTranslatesToChat(t *testing.T) {
	t.Parallel()
	req, err := responses.ParseRequest([]byte(`{
		"model": "gpt-test", "user": " alice ", "input": "hi", "instructions": "be brief",
		"temperature": 0.2, "max_output_tokens": 100, "reasoning": {"effort": "low"}, "seed": 7,
		"text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
		"tool_choice": {"type": "function", "name": "get_weather"},
		"tools": [
			{"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
			{"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/mcp?key=secret",
			 "headers": {"x-api-key": "k"}, "allowed_tools": ["search"], "require_approval": "never"}
		],
		"max_tool_calls": 3, "metadata": {"a": "b"}, "store": false, "include": ["reasoning.encrypted_content"], "truncation": "auto"
	}`), chatreq.Limits{})
	require.NoError(t, err)
	require.Equal(t, "alice", req.User)
	require.False(t, req.Store)
	require.Equal(t, 3, req.MaxToolCalls)
	require.Len(t, req.Servers, 1)
	require.Equal(t, "https://mcp.example.com/mcp?…", req.Servers[0].URL, "the query is a secret")
	require.Equal(t, "https://mcp.example.com/mcp?key=secret", req.Servers[0].ConnectURL)
	require.Equal(t, map[string]string{"X-Api-Key": "k"}, req.Servers[0].Headers)
	require.Equal(t, []string{"search"}, req.Servers[0].AllowedTools)
	require.Equal(t, "docs", req.Labels[req.Servers[0].URL])
	require.Empty(t, req.Approvals, `"never" holds nothing back`)
	require.JSONEq(t, `[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}}]`,
		string(mustJSON(t, req.Functions)))
	shown := string(mustJSON(t, req.Tools))
	require.NotContains(t, shown, "secret")
	require.NotContains(t, shown, `"k"`)

	var body map[string]any
	require.NoError(t, json.Unmarshal(req.Body, &body))
	require.Equal(t, map[string]any{
		"model": "gpt-test", "temperature": 0.2, "seed": float64(7), "max_completion_tokens": float64(100), "reasoning_effort": "low",
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "out", "schema": map[string]any{"type": "object"}, "strict": true}},
		"verbosity":       "low",
		"tool_choice":     map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}},
	}, body, "Responses fields are translated, unknown ones pass through, and mcpidp's own are gone")
}

func TestParseRequestTakesOpenAIsAuthorization(t *testing.T) {
	t.Parallel()
	req, err := responses.ParseRequest([]byte(`{"model":"m","input":"hi","user":"u",
		"tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp","authorization":"tok"}]}`), chatreq.Limits{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"Authorization": "Bearer tok"}, req.Servers[0].Headers)
	require.NotContains(t, string(mustJSON(t, req.Tools)), "tok")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

func TestParseRequestRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, param string
	}{
		{"not an object", `[1]`, ""},
		{"no model", `{"input":"hi"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"input not string or items", `{"model":"m","input":5}`, "input"},
		{"item not object", `{"model":"m","input":[1]}`, "input[0]"},
		{"unknown item", `{"model":"m","input":[{"type":"web_search_call"}]}`, "input[0].type"},
		{"bad role", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, "input[0].role"},
		{"file image", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, "input[0].content[0]"},
		{"function call output without id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{"mcp without label", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_url":"https://a.example/mcp"}]}`, "tools[0].server_label"},
		{"mcp without url", `{"model":"m","input":"hi","user":"u","tools":[{"type":"function","name":"f"},{"type":"mcp","server_label":"a"}]}`, "tools[1].server_url"},
		{"mcp blocked url", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_label":"a","server_url":"ftp://a.example/"}]}`, "tools[0].server_url"},
		{"two labels", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp"},{"type":"mcp","server_label":"a","server_url":"https://b.example/mcp"}]}`, "tools[1].server_label"},
		{"connector", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_label":"a","connector_id":"connector_gmail"}]}`, "tools[0].connector_id"},
		{"mcp without user", `{"model":"m","input":"hi","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp"}]}`, "user"},
		{"bad approval", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp","require_approval":"sometimes"}]}`, "tools[0].require_approval"},
		{"web search", `{"model":"m","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"max_tool_calls zero", `{"model":"m","input":"hi","max_tool_calls":0}`, "max_tool_calls"},
		{"background not stored", `{"model":"m","input":"hi","background":true,"store":false}`, "store"},
		{"webhook without background", `{"model":"m","input":"hi","webhook":{"url":"https://h.example/"}}`, "webhook"},
		{"metadata not object", `{"model":"m","input":"hi","metadata":[1]}`, "metadata"},
		{"approval mixed with input", `{"model":"m","previous_response_id":"resp_1","input":[{"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":true},{"role":"user","content":"and?"}]}`, "input"},
		{"approval without approve", `{"model":"m","previous_response_id":"resp_1","input":[{"type":"mcp_approval_response","approval_request_id":"mcpr_1"}]}`, "input[0].approve"},
		{"bad text format", `{"model":"m","input":"hi","text":{"format":{"type":"yaml"}}}`, "text.format.type"},
		{"bad tool choice", `{"model":"m","input":"hi","tool_choice":{"type":"mcp"}}`, "tool_choice"},
		{"authorization twice", `{"model":"m","input":"hi","user":"u","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp","authorization":"t","headers":{"authorization":"Bearer x"}}]}`, "tools[0].authorization"},
		{"NUL in user", `{"model":"m","input":"hi","user":"a\u0000b"}`, "user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := responses.ParseRequest([]byte(tc.body), chatreq.Limits{})
			var e *chatreq.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, http.StatusBadRequest, e.Status)
			require.Equal(t, tc.param, e.Param, e.Message)
			require.NotEmpty(t, e.Message)
		})
	}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	instructions := "sys"
	items := []json.RawMessage{
		json.RawMessage(`{"type":"message","role":"developer","content":"dev"}`),
		json.RawMessage(`{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"https://img.example/a.png","detail":"low"}]}`),
		json.RawMessage(`{"type":"mcp_list_tools","server_label":"calc","tools":[]}`),
		json.RawMessage(`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]}`),
		json.RawMessage(`{"type":"mcp_call","id":"mcp_1","server_label":"calc","name":"add","arguments":"{\"a\":1}","output":"2"}`),
		json.RawMessage(`{"type":"mcp_call","id":"mcp_2","server_label":"calc","name":"add","arguments":"{}","error":{"type":"mcp_tool_execution_error","content":[{"type":"text","text":"bad"}]}}`),
		json.RawMessage(`{"type":"function_call","call_id":"call_w","name":"get_weather","arguments":"{}"}`),
		json.RawMessage(`{"type":"function_call_output","call_id":"call_w","output":"sunny"}`),
	}
	msgs, err := responses.Messages(&instructions, items)
	require.NoError(t, err)
	var got []any
	for _, m := range msgs {
		var v any
		require.NoError(t, json.Unmarshal(m, &v))
		got = append(got, v)
	}
	want := `[
		{"role":"system","content":"sys"},
		{"role":"system","content":"dev"},
		{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://img.example/a.png","detail":"low"}}]},
		{"role":"assistant","content":"calling"},
		{"role":"assistant","content":null,"tool_calls":[
			{"id":"mcp_1","type":"function","function":{"name":"calc__add","arguments":"{\"a\":1}"}},
			{"id":"mcp_2","type":"function","function":{"name":"calc__add","arguments":"{}"}},
			{"id":"call_w","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
		{"role":"tool","content":"2","tool_call_id":"mcp_1"},
		{"role":"tool","content":"error: bad","tool_call_id":"mcp_2"},
		{"role":"tool","content":"sunny","tool_call_id":"call_w"}
	]`
	require.JSONEq(t, want, string(mustJSON(t, got)))
}
