package responses_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/responses"
)

// FuzzParseRequest checks that any body is refused with a 4xx in OpenAI's
// shape or accepted as a request whose chat body is a JSON object without
// the fields mcpidp consumes, within the limits.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"instructions":"i"}`,
		`{"model":"m","user":"u","input":"hi","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example/mcp","require_approval":{"never":{"tool_names":["x"]}}}]}`,
		`{"model":"m","previous_response_id":"resp_1","input":[{"type":"mcp_approval_response","approval_request_id":"r","approve":false}]}`,
		`{"model":"m","input":"hi","text":{"format":{"type":"json_object"}},"max_output_tokens":5,"tool_choice":"auto","foo":[1]}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f"},{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"o"}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	lim := chatreq.Limits{}
	lim.ApplyDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := responses.ParseRequest(body, chatreq.Limits{})
		if err != nil {
			var e *chatreq.Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 || e.Message == "" {
				t.Fatalf("error is not a 4xx in OpenAI's shape: %#v", err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(req.Body, &obj); err != nil {
			t.Fatalf("chat body is not a JSON object: %v", err)
		}
		for _, f := range []string{"input", "instructions", "tools", "user", "store", "background", "previous_response_id", "metadata", "max_tool_calls"} {
			if _, ok := obj[f]; ok {
				t.Fatalf("chat body keeps %q", f)
			}
		}
		if len(req.Servers) > lim.MaxServers || len(req.Input) > lim.MaxMessages {
			t.Fatalf("limits not kept: %d servers, %d items", len(req.Servers), len(req.Input))
		}
		if len(req.Servers) > 0 && req.User == "" {
			t.Fatal("MCP servers without a user")
		}
	})
}
