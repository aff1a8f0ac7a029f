package agentloop

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// fakeTools has two tools: "write" (not safe to repeat) and "read" (safe).
type fakeTools struct {
	calls []string
	err   error
}

func (f *fakeTools) FunctionTools() []json.RawMessage { return nil }

func (f *fakeTools) Resolve(function string) (string, string, bool) {
	return "https://mcp.example.com/mcp", function, function == "write" || function == "read"
}

func (f *fakeTools) Call(_ context.Context, function string, _ json.RawMessage) (*ToolResult, error) {
	f.calls = append(f.calls, function)
	if f.err != nil {
		return nil, f.err
	}
	return &ToolResult{Text: function + " done"}, nil
}

func (f *fakeTools) SafeToRepeat(function string) bool { return function == "read" }

// A run that resumes after a crash with one tool call of the last model turn
// unrecorded: what happens to that call depends on whether an earlier run
// had marked it as sent, and on the tool.
func TestResumedToolCallRunsAgainOnlyWhenSafe(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		tools    *fakeTools
		marks    map[int]bool
		recorded []Step
	}
	setup := func(t *testing.T, tool string, marked bool) (*Run, *testBundle) {
		t.Helper()
		b := &testBundle{tools: &fakeTools{}, marks: map[int]bool{}}
		if marked {
			b.marks[1] = true // the earlier run marked step 1, then died
		}
		turn := Step{Type: StepModel, ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function",
			Function: llm.FunctionCall{Name: tool, Arguments: `{}`}}}}
		r := &Run{
			Steps: []Step{turn},
			Tools: b.tools,
			Complete: func(context.Context, []byte) (*llm.Completion, error) {
				return &llm.Completion{Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: "done"}}}}, nil
			},
			Record: func(_ context.Context, index int, st Step) error {
				require.Equal(t, len(b.recorded)+1, index)
				b.recorded = append(b.recorded, st)
				return nil
			},
			MarkCall: func(_ context.Context, index int, st Step, sent bool) (bool, error) {
				require.Equal(t, "call_1", st.ToolCallID)
				was := b.marks[index]
				b.marks[index] = sent
				return was, nil
			},
		}
		return r, b
	}

	t.Run("FirstTimeIsSent", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t, "write", false)
		_, err := r.Execute(context.Background())
		require.NoError(t, err)
		require.Equal(t, []string{"write"}, b.tools.calls)
		require.True(t, b.marks[1], "the call was marked before it was sent")
		require.Equal(t, "write done", b.recorded[0].Output)
	})

	t.Run("InFlightNotSafeIsInterrupted", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t, "write", true)
		out, err := r.Execute(context.Background())
		require.NoError(t, err)
		require.Empty(t, b.tools.calls, "a call that may have run is not sent again")
		st := b.recorded[0]
		require.True(t, st.Interrupted)
		require.True(t, st.IsError)
		require.Equal(t, InterruptedOutput, st.Output)
		require.Equal(t, "write", st.Tool)
		require.Equal(t, ReasonFinal, out.Reason, "the model saw the interruption and answered")
	})

	t.Run("InFlightSafeRunsAgain", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t, "read", true)
		_, err := r.Execute(context.Background())
		require.NoError(t, err)
		require.Equal(t, []string{"read"}, b.tools.calls)
		require.False(t, b.recorded[0].Interrupted)
		require.Equal(t, "read done", b.recorded[0].Output)
	})

	t.Run("RefusedCallIsUnmarked", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t, "write", false)
		challenge := errors.New("login required")
		b.tools.err = challenge
		r.ErrorIsFatal = func(err error) bool { return errors.Is(err, challenge) }
		_, err := r.Execute(context.Background())
		require.ErrorIs(t, err, challenge)
		require.False(t, b.marks[1], "a call the server refused is not in flight")
		require.Empty(t, b.recorded)
	})
}
