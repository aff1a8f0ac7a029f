package task_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/task"
)

// A task waiting for input links mcpidp's page for each input: a form is
// answered there, and a URL input's page links the server's URL and has
// the "I'm done" button that resumes the task (the URL alone would leave
// it waiting until input_timeout).
func TestMarkdownPendingInputsLinkTheirPage(t *testing.T) {
	t.Parallel()
	expires := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	inputs, err := json.Marshal([]task.PendingInput{
		{ID: "in_1", ServerURL: "https://mcp.example.com/mcp", Mode: "form", Message: "Which city?", FormURL: "https://idp.example.com/r/tok/inputs/in_1", ExpiresAt: expires},
		{ID: "in_2", ServerURL: "https://pay.example.com/mcp", Mode: "url", Message: "Confirm the payment", URL: "https://pay.example.com/confirm?id=9", FormURL: "https://idp.example.com/r/tok/inputs/in_2", ExpiresAt: expires},
	})
	require.NoError(t, err)
	md := task.Markdown(&task.Object{ID: "task_1", Status: task.StatusAwaitingInput, PendingInputs: inputs})
	require.Contains(t, md, "- mcp.example.com asks: Which city? — [answer here](https://idp.example.com/r/tok/inputs/in_1) (until 2026-12-03T09:00:00Z)")
	require.Contains(t, md, "- pay.example.com asks: Confirm the payment — open <https://pay.example.com/confirm?id=9>, then [say you are done](https://idp.example.com/r/tok/inputs/in_2) (until 2026-12-03T09:00:00Z)")
}
