package responses

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/task"
)

// A background response whose task waits for its user's form shows the
// form as an item, with the page where a person answers it.
func TestBackgroundResponseShowsPendingInput(t *testing.T) {
	t.Parallel()
	expires := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	inputs, err := json.Marshal([]task.PendingInput{{ID: "inp_1", ServerURL: "https://mcp.example.com/mcp", Mode: "form", Message: "Your name?",
		RequestedSchema: json.RawMessage(`{"type":"object"}`), FormURL: "https://idp.example.com/r/tok/inputs/inp_1", ExpiresAt: expires}})
	require.NoError(t, err)
	tk := &task.Object{Status: task.StatusAwaitingInput, PendingInputs: inputs, Usage: json.RawMessage(`{}`)}
	o := &Object{ID: "resp_1"}
	fromTask(o, &stored{Labels: map[string]string{"https://mcp.example.com/mcp": "crm"}}, tk)

	require.Equal(t, StatusInProgress, o.Status)
	require.Len(t, o.Output, 1)
	item, ok := o.Output[0].(InputRequestItem)
	require.True(t, ok, "%T", o.Output[0])
	require.Equal(t, InputRequestItem{ID: "inp_1", Type: TypeInputRequest, ServerLabel: "crm", ServerURL: "https://mcp.example.com/mcp",
		Mode: "form", Message: "Your name?", RequestedSchema: json.RawMessage(`{"type":"object"}`),
		FormURL: "https://idp.example.com/r/tok/inputs/inp_1", ExpiresAt: expires.Unix()}, item)
}
