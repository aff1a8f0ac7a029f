package agentloop

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

func TestApprovalPolicyRequires(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		policy   ApprovalPolicy
		tool     string
		readOnly bool
		want     bool
	}{
		"always":                    {ApprovalPolicy{Mode: ApprovalAlways}, "read", true, true},
		"never":                     {ApprovalPolicy{Mode: ApprovalNever}, "write", false, false},
		"auto asks a writer":        {ApprovalPolicy{Mode: ApprovalAuto}, "write", false, true},
		"auto lets a reader run":    {ApprovalPolicy{Mode: ApprovalAuto}, "read", true, false},
		"listed always":             {ApprovalPolicy{Always: []string{"write"}}, "write", false, true},
		"only always: others run":   {ApprovalPolicy{Always: []string{"write"}}, "read", false, false},
		"listed never":              {ApprovalPolicy{Never: []string{"read"}}, "read", false, false},
		"only never: others ask":    {ApprovalPolicy{Never: []string{"read"}}, "write", false, true},
		"both lists: unlisted asks": {ApprovalPolicy{Always: []string{"a"}, Never: []string{"b"}}, "c", true, true},
		"both lists: never wins":    {ApprovalPolicy{Always: []string{"a"}, Never: []string{"a"}}, "a", false, false},
		"zero policy asks for none": {ApprovalPolicy{}, "write", false, false},
	} {
		require.Equal(t, c.want, c.policy.Requires(c.tool, c.readOnly), name)
	}
}

// A model turn with a held-back call and a free one: the free one runs and
// is recorded, the run ends with the held one; resumed with a decision, an
// approved call runs and a denied one is recorded as denied, never sent.
func TestHeldCallsWaitForDecision(t *testing.T) {
	t.Parallel()
	turn := Step{Type: StepModel, ToolCalls: []llm.ToolCall{
		{ID: "call_w", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{"x":1}`}},
		{ID: "call_r", Type: "function", Function: llm.FunctionCall{Name: "read", Arguments: `{}`}},
	}}
	run := func(tools *fakeTools, steps []Step, verdict *Verdict) (*Outcome, []Step, error) {
		var recorded []Step
		r := &Run{
			Steps:     steps,
			Tools:     tools,
			Approvals: map[string]ApprovalPolicy{"https://mcp.example.com/mcp": {Always: []string{"write"}}},
			Approve: func(_ context.Context, c *ApprovalCall) (Verdict, error) {
				require.Equal(t, "write", c.Tool)
				require.Equal(t, "call_w", c.ToolCallID)
				require.JSONEq(t, `{"x":1}`, string(c.Arguments))
				c.ID = "apr_1"
				if verdict == nil {
					return Verdict{}, nil
				}
				return *verdict, nil
			},
			Complete: func(context.Context, []byte) (*llm.Completion, error) {
				return &llm.Completion{Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: "done"}}}}, nil
			},
			Record: func(_ context.Context, _ int, st Step) error {
				recorded = append(recorded, st)
				return nil
			},
		}
		out, err := r.Execute(context.Background())
		return out, recorded, err
	}

	tools := &fakeTools{}
	_, recorded, err := run(tools, []Step{turn}, nil)
	var held *ApprovalRequiredError
	require.True(t, errors.As(err, &held), "%v", err)
	require.Len(t, held.Calls, 1)
	require.Equal(t, "apr_1", held.Calls[0].ID)
	require.Equal(t, []string{"read"}, tools.calls, "the call that needs no approval ran")
	require.Len(t, recorded, 1)

	steps := append([]Step{turn}, recorded...)
	tools = &fakeTools{}
	out, recorded, err := run(tools, steps, &Verdict{Decided: true, Approved: true})
	require.NoError(t, err)
	require.Equal(t, []string{"write"}, tools.calls, "approved: runs once, the recorded call is not repeated")
	require.Equal(t, "write done", recorded[0].Output)
	require.Equal(t, ReasonFinal, out.Reason)

	tools = &fakeTools{}
	_, recorded, err = run(tools, steps, &Verdict{Decided: true, Reason: "too risky"})
	require.NoError(t, err)
	require.Empty(t, tools.calls, "denied: never sent")
	require.True(t, recorded[0].Denied)
	require.True(t, recorded[0].IsError)
	require.Equal(t, "error: the user denied this call: too risky", recorded[0].Output)
	require.Equal(t, "error: the user denied this call", DeniedOutput(" "))
}

// A call made after MaxToolCalls was reached is not sent whatever a person
// decides, so nobody is asked to approve it: it is recorded as refused.
func TestHeldCallPastToolCallLimitIsNotAsked(t *testing.T) {
	t.Parallel()
	steps := []Step{
		{Type: StepModel, ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function", Function: llm.FunctionCall{Name: "read", Arguments: `{}`}}}},
		{Type: StepTool, ToolCallID: "call_1", Function: "read", ServerURL: "https://mcp.example.com/mcp", Tool: "read", Output: "read done"},
		{Type: StepModel, ToolCalls: []llm.ToolCall{{ID: "call_2", Type: "function", Function: llm.FunctionCall{Name: "write", Arguments: `{}`}}}},
	}
	tools := &fakeTools{}
	var recorded []Step
	r := &Run{
		Steps:        steps,
		Tools:        tools,
		MaxToolCalls: 1,
		Approvals:    map[string]ApprovalPolicy{"https://mcp.example.com/mcp": {Mode: ApprovalAlways}},
		Approve: func(context.Context, *ApprovalCall) (Verdict, error) {
			t.Error("a call that cannot be sent was put to a person")
			return Verdict{}, nil
		},
		Complete: func(context.Context, []byte) (*llm.Completion, error) {
			return &llm.Completion{Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: "done"}}}}, nil
		},
		Record: func(_ context.Context, _ int, st Step) error {
			recorded = append(recorded, st)
			return nil
		},
	}
	out, err := r.Execute(context.Background())
	require.NoError(t, err)
	require.Equal(t, ReasonFinal, out.Reason)
	require.Empty(t, tools.calls)
	require.Equal(t, ToolCallLimitOutput, recorded[0].Output)
}
