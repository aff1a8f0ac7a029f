package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/task"
)

// FuzzParseCreateTask feeds arbitrary bodies to the task request parser. A body is either refused
// with a 4xx in the OpenAI error shape, or gives a request within every limit whose stored form
// (the JSON kept in the database and read back by the worker) round-trips, whose pass-through body
// holds none of the fields mcpidp consumes, and whose URLs pass the SSRF guard's checks.
func FuzzParseCreateTask(f *testing.F) {
	for _, seed := range []string{
		`{"user":"u","model":"m","input":"x"}`,
		`{"user":"alice@example.com","model":"gpt-4.1","messages":[{"role":"user","content":"hi"}],"temperature":0.2,
		  "tools":[{"type":"mcp","url":"https://mcp.example.com/mcp","allowed_tools":["echo"],"headers":{"X-Key":"v"}},
		           {"type":"mcp","server_url":"https://other.example.com/sse","allowed_tools":{"tool_names":["a","b"]}}],
		  "max_steps":5,"stop_when":[{"type":"tool_called","tool":"echo"}],"metadata":{"order":42},"store":true,
		  "webhook":{"url":"https://app.example.com/hook"},"authorizationRequestCallback":"https://app.example.com/login"}`,
		`{"user":"u","model":"m","input":"x","tools":[{"type":"mcp","url":"https://mcp.example.com/mcp"},{"type":"mcp","url":"https://MCP.example.com:443/mcp"}]}`,
		`{"user":"u","model":"m","messages":[]}`, `{"user":" ","model":"m","input":"x"}`, `[]`, `null`, `{"user":1}`,
		`{"user":"u","model":"m","input":"x","tools":[{"type":"function"}]}`, `{"user":"u","model":"m","input":"x","max_steps":1e9}`,
		`{"user":"u","model":"m","input":"x","webhook":{"url":"http://169.254.169.254/"}}`,
		`{"user":"u","model":"m","input":"x","tools":[{"type":"mcp","url":"https://a.example/mcp","headers":{"Host":"x"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	var lim Limits
	lim.ApplyDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseCreateTask(body, lim)
		if err != nil {
			e := toError(err)
			if e.Status < 400 || e.Status > 499 || e.Message == "" || e.Type != "invalid_request_error" || e.Code == "" {
				t.Fatalf("error %v answers %+v, not a 4xx in the OpenAI error shape", err, e)
			}
			return
		}
		if req.User == "" || len(req.User) > lim.MaxUserLength || req.User != strings.TrimSpace(req.User) {
			t.Fatalf("user %q accepted", req.User)
		}
		if req.Model == "" {
			t.Fatal("empty model accepted")
		}
		r := req.Request
		if len(r.Messages) == 0 || len(r.Messages) > lim.MaxMessages {
			t.Fatalf("%d messages accepted", len(r.Messages))
		}
		if r.MaxSteps < 1 || r.MaxSteps > lim.MaxSteps || len(r.StopWhen) > lim.MaxStopWhen || len(r.Servers) > lim.MaxServers {
			t.Fatalf("limits exceeded: %+v", r)
		}
		for _, s := range r.Servers {
			if _, err := netguard.ValidateURL(s.URL); err != nil {
				t.Fatalf("server URL %q accepted: %v", s.URL, err)
			}
			if len(s.AllowedTools) > lim.MaxAllowedTools || len(req.Headers[s.URL]) > lim.MaxHeaders {
				t.Fatalf("server limits exceeded: %+v", s)
			}
		}
		if r.Webhook != nil {
			if _, err := netguard.ValidateURL(r.Webhook.URL); err != nil {
				t.Fatalf("webhook URL %q accepted: %v", r.Webhook.URL, err)
			}
		}
		if req.Metadata != nil && (len(req.Metadata) > lim.MaxMetadata || !json.Valid(req.Metadata)) {
			t.Fatalf("metadata %q accepted", req.Metadata)
		}
		var pass map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &pass); err != nil {
			t.Fatalf("pass-through body %q is not an object: %v", r.Body, err)
		}
		for k := range pass {
			if slices.Contains(taskFields, k) {
				t.Fatalf("consumed field %q passes through", k)
			}
		}

		stored, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("the request cannot be stored: %v", err)
		}
		var back task.Request
		if err := json.Unmarshal(stored, &back); err != nil {
			t.Fatalf("the stored request cannot be read back: %v", err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(stored) || !reflect.DeepEqual(normalize(t, again), normalize(t, stored)) {
			t.Fatalf("stored request does not round-trip:\n%s\n%s", stored, again)
		}
	})
}

func normalize(t *testing.T, raw []byte) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
