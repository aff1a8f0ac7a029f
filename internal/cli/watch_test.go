package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A watcher shows each step once, each link once while the task waits on
// it, and says when the task resumes.
func TestProgressReport(t *testing.T) {
	t.Parallel()
	var p progress
	var out strings.Builder
	for _, raw := range []string{
		`{"id":"task_1","status":"running","steps":[{"type":"model","tool_calls":[{"function":{"name":"srv__delete","arguments":"{\"id\": 7}"}}]}]}`,
		`{"id":"task_1","status":"awaiting_approval","steps":[{"type":"model","tool_calls":[{"function":{"name":"srv__delete","arguments":"{\"id\": 7}"}}]}],
		  "pending_approvals":[{"id":"appr_1","server_url":"https://mcp.example.com/mcp","name":"delete","arguments":{"id":7},"approve_url":"https://idp.example.com/approve/abc","expires_at":"2026-01-01T00:00:00Z"}]}`,
		`{"id":"task_1","status":"awaiting_approval","pending_approvals":[{"name":"delete","server_url":"https://mcp.example.com/mcp","approve_url":"https://idp.example.com/approve/abc"}],
		  "steps":[{"type":"model","tool_calls":[{"function":{"name":"srv__delete","arguments":"{\"id\": 7}"}}]}]}`,
		`{"id":"task_1","status":"completed","steps":[{"type":"model","tool_calls":[{"function":{"name":"srv__delete","arguments":"{\"id\": 7}"}}]},
		  {"type":"tool","tool":"delete","output":"deleted\nitem 7","duration_ms":12},{"type":"model","content":"Done."}],"output":{"content":"Done."}}`,
	} {
		var tk Task
		require.NoError(t, json.Unmarshal([]byte(raw), &tk))
		p.report(&out, &tk)
	}
	require.Equal(t, `task task_1: running
  model calls srv__delete({"id": 7})
task task_1: awaiting_approval
  approve the call of delete on https://mcp.example.com/mcp to continue:
    https://idp.example.com/approve/abc
  decided: the task resumes
  tool delete returned in 12 ms: deleted item 7
  model: Done.
task task_1: completed
`, out.String())
}

// A task waiting for a server's form shows the form's link once, and says
// when the answer lets it go on; a sampling step is one readable line.
func TestProgressReportInputs(t *testing.T) {
	t.Parallel()
	var p progress
	var out strings.Builder
	for _, raw := range []string{
		`{"id":"task_1","status":"awaiting_input","pending_approvals":[],
		  "pending_inputs":[{"id":"in_1","server_url":"https://mcp.example.com/mcp","mode":"form","message":"Which city?","requested_schema":{"type":"object"},"url":"","form_url":"https://idp.example.com/r/tok/inputs/in_1","expires_at":"2026-01-01T00:00:00Z"}]}`,
		`{"id":"task_1","status":"awaiting_input","pending_inputs":[{"id":"in_1","server_url":"https://mcp.example.com/mcp","message":"Which city?","form_url":"https://idp.example.com/r/tok/inputs/in_1"}]}`,
		`{"id":"task_1","status":"running","pending_inputs":[],"steps":[{"type":"sampling","server_url":"https://mcp.example.com/mcp","content":"Paris\nis nice","duration_ms":5}]}`,
	} {
		var tk Task
		require.NoError(t, json.Unmarshal([]byte(raw), &tk))
		p.report(&out, &tk)
	}
	require.Equal(t, `task task_1: awaiting_input
  https://mcp.example.com/mcp asks: Which city? Answer to continue:
    https://idp.example.com/r/tok/inputs/in_1
  answered: the task resumes
task task_1: running
  sampling for https://mcp.example.com/mcp in 5 ms: Paris is nice
`, out.String())
}
