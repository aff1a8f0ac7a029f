package chatreq_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/netguard"
)

// FuzzChatRequest runs every chatreq parser over an arbitrary body, as the chat proxy does. Each
// either refuses it with a 400 in the OpenAI error shape or gives values within the limits; MCP
// servers it accepts pass the SSRF guard's URL checks and have canonical header names.
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user"}],"tools":[{"type":"mcp","url":"https://mcp.example.com/mcp","allowed_tools":{"tool_names":["a"]},"headers":{"x-api-key":"k"}},{"type":"function","function":{"name":"f"}}],"max_steps":100,"stop_when":[{"type":"tool_called","name":"a"}]}`,
		`{"messages":[{"role":"user"}],"tools":[{"type":"mcp","server_url":"http://127.0.0.1/mcp"}]}`,
		`{"messages":[{"role":"user"}],"tools":[{"type":"mcp","url":"https://a.example/mcp","headers":{"Mcp-Session-Id":"x"}}]}`,
		`{"messages":[{"role":""}]}`, `{"messages":{}}`, `{"max_steps":"3","messages":[{"role":"user"}]}`, `{"stop_when":[{}],"messages":[{"role":"user"}]}`,
		`{"messages":[{"role":"user"}],"tools":[{"type":"web_search"},{"type":"mcp","url":"https://a.example/mcp"}]}`, `nul`,
	} {
		f.Add([]byte(seed))
	}
	var lim chatreq.Limits
	lim.ApplyDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) bool {
			if err == nil {
				return true
			}
			var e *chatreq.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Type != "invalid_request_error" || e.Code == "" || e.Message == "" {
				t.Fatalf("error %v (%+v) is not a 400 in the OpenAI error shape", err, e)
			}
			answer, _ := json.Marshal(map[string]any{"error": e})
			if !json.Valid(answer) {
				t.Fatalf("error %+v does not encode", e)
			}
			return false
		}
		obj, err := chatreq.ParseObject(body)
		if !check(err) {
			return
		}
		msgs, err := chatreq.ParseMessages(obj, lim, false)
		if check(err) && (len(msgs) == 0 || len(msgs) > lim.MaxMessages) {
			t.Fatalf("%d messages accepted", len(msgs))
		}
		// The pass-through's one-pass check agrees with it, error for error.
		if n, cerr := chatreq.CheckMessages(obj, lim); !reflect.DeepEqual(cerr, err) || err == nil && n != len(msgs) {
			t.Fatalf("CheckMessages = %d, %v; ParseMessages = %d, %v", n, cerr, len(msgs), err)
		}
		tools, err := chatreq.ParseTools(obj["tools"], lim, true)
		if check(err) {
			if len(tools.MCP) > lim.MaxServers {
				t.Fatalf("%d servers accepted", len(tools.MCP))
			}
			for _, s := range tools.MCP {
				if _, err := netguard.ValidateURL(s.URL); err != nil {
					t.Fatalf("server URL %q accepted: %v", s.URL, err)
				}
				if len(s.AllowedTools) > lim.MaxAllowedTools || len(s.Headers) > lim.MaxHeaders {
					t.Fatalf("server limits exceeded: %+v", s)
				}
				for name := range s.Headers {
					if name != http.CanonicalHeaderKey(name) {
						t.Fatalf("header name %q is not canonical", name)
					}
				}
			}
		}
		steps, err := chatreq.ParseMaxSteps(obj["max_steps"], lim)
		if check(err) && (steps < 1 || steps > lim.MaxSteps) {
			t.Fatalf("max_steps %d accepted", steps)
		}
		conds, err := chatreq.ParseStopWhen(obj["stop_when"], lim)
		if check(err) {
			if len(conds) > lim.MaxStopWhen {
				t.Fatalf("%d stop conditions accepted", len(conds))
			}
			for _, c := range conds {
				if c.Type != "tool_called" || c.Name == "" {
					t.Fatalf("stop condition %+v accepted", c)
				}
			}
		}
	})
}
