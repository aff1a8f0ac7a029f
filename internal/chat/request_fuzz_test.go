package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/mcpidp/mcpidp/internal/netguard"
)

// FuzzParseChat feeds arbitrary bodies to the chat request parser (chatreq's rules plus the
// proxy's). A body is either refused with a 4xx in the OpenAI error shape, or gives a request
// within the limits whose upstream body keeps every field mcpidp does not consume byte for byte
// and drops those it does.
func FuzzParseChat(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","user":"alice","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},
		  "tools":[{"type":"mcp","url":"https://mcp.example.com/mcp","allowed_tools":["search"]},{"type":"function","function":{"name":"f"}}],
		  "max_steps":3,"stop_when":[{"type":"tool_called","tool":"search"}],"mcp_output":"text","temperature":0.5,"x":{"y":[1,2]}}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"https://mcp.example.com/mcp"}]}`,
		`{"messages":[{"role":"user"}],"user":"u","user":"v","max_steps":0}`, `{"messages":[]}`, `[]`, `{"messages":[{"role":"user"}],"mcp_output":"html"}`,
		`{"messages":[{"role":"user"}],"tools":[{"type":"web_search"},{"type":"mcp","url":"https://a.example/mcp"}],"user":"u"}`,
	} {
		f.Add([]byte(seed))
	}
	var lim Limits
	lim.ApplyDefaults()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseChat(body, lim, "")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an API error", err)
			}
			status, _, answer := errorBody(err)
			var shape struct {
				Error struct{ Type, Code, Message string } `json:"error"`
			}
			if status < 400 || status > 499 || json.Unmarshal(answer, &shape) != nil || shape.Error.Message == "" || shape.Error.Code == "" {
				t.Fatalf("error %v answers %d %s, not a 4xx in the OpenAI error shape", err, status, answer)
			}
			return
		}
		if req.messageCount == 0 || req.messageCount > lim.MaxMessages || len(req.servers) > 0 && len(req.messages) != req.messageCount || len(req.servers) > lim.MaxServers ||
			req.maxSteps < 1 || req.maxSteps > lim.MaxSteps || len(req.stopWhen) > lim.MaxStopWhen || len(req.user) > lim.MaxUserLength {
			t.Fatalf("limits exceeded: %+v", req)
		}
		for _, s := range req.servers {
			if _, err := netguard.ValidateURL(s.URL); err != nil {
				t.Fatalf("server URL %q accepted: %v", s.URL, err)
			}
		}
		if len(req.servers) > 0 && req.user == "" {
			t.Fatal("MCP tools accepted without a user")
		}
		var in, out map[string]json.RawMessage
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted body is not an object: %v", err)
		}
		if err := json.Unmarshal(req.body, &out); err != nil {
			t.Fatalf("upstream body %q is not an object: %v", req.body, err)
		}
		for k, v := range in {
			consumed := slices.Contains(consumedFields, k)
			got, ok := out[k]
			switch {
			case consumed && ok:
				t.Fatalf("consumed field %q reaches the upstream", k)
			case !consumed && !bytes.Equal(got, v):
				t.Fatalf("field %q reaches the upstream as %q, sent %q", k, got, v)
			}
		}
		if len(out) > len(in) {
			t.Fatalf("upstream body has fields the request did not: %s", req.body)
		}
	})
}
