package agentloop

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// offeringTools is fakeTools that offers its tools to the model.
type offeringTools struct{ fakeTools }

func (o *offeringTools) FunctionTools() []json.RawMessage {
	return []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"write"}}`)}
}

// MaxToolCalls counts the calls a resumed run already sent, stops offering
// MCP tools once they are spent, and does not send a call made anyway.
func TestMaxToolCalls(t *testing.T) {
	t.Parallel()
	tools := &offeringTools{}
	var bodies []map[string]json.RawMessage
	answers := []llm.Message{
		{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "c3", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{}`}}}},
		{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: "c4", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{}`}}}},
		{Role: "assistant", Content: "done"},
	}
	var recorded []Step
	r := &Run{
		// One call already sent by an earlier segment; the second of its
		// turn is still to run.
		Steps: []Step{
			{Type: StepModel, ToolCalls: []llm.ToolCall{
				{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{}`}},
				{ID: "c2", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{}`}}}},
			{Type: StepTool, ToolCallID: "c1", Function: "write", ServerURL: "https://mcp.example.com/mcp", Tool: "write", Output: "write done"},
		},
		MaxToolCalls: 3,
		MaxSteps:     10,
		Tools:        tools,
		Complete: func(_ context.Context, body []byte) (*llm.Completion, error) {
			var b map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(body, &b))
			bodies = append(bodies, b)
			m := answers[0]
			answers = answers[1:]
			return &llm.Completion{Choices: []llm.Choice{{Message: m}}}, nil
		},
		Record: func(_ context.Context, _ int, st Step) error { recorded = append(recorded, st); return nil },
	}
	out, err := r.Execute(context.Background())
	require.NoError(t, err)
	require.Equal(t, ReasonFinal, out.Reason)
	require.Equal(t, []string{"write", "write"}, tools.calls, "c2 and c3 are sent; c1 was sent before; c4 is over the limit")

	require.Len(t, bodies, 3)
	require.Contains(t, string(bodies[0]["tools"]), "write", "2 of 3 calls sent: still offered")
	require.NotContains(t, bodies[1], "tools", "3 of 3 sent: no MCP tool is offered")
	require.NotContains(t, bodies[2], "tools")

	last := recorded[len(recorded)-2]
	require.Equal(t, "c4", last.ToolCallID)
	require.True(t, last.IsError)
	require.Equal(t, ToolCallLimitOutput, last.Output)
}
