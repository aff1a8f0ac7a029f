package llm_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

func TestMessageJSON(t *testing.T) {
	t.Parallel()

	t.Run("Marshal", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			msg  llm.Message
			want string
		}{
			{
				msg:  llm.Message{Role: "user", Content: "hi"},
				want: `{"role":"user","content":"hi"}`,
			},
			{
				msg: llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{
					{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}},
				}},
				want: `{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}`,
			},
			{
				msg: llm.Message{Role: "assistant", Content: "calling", ToolCalls: []llm.ToolCall{
					{ID: "c1", Type: "function", Function: llm.FunctionCall{Name: "f", Arguments: "{}"}},
				}},
				want: `{"role":"assistant","content":"calling","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}`,
			},
			{
				msg:  llm.Message{Role: "tool", ToolCallID: "c1", Content: ""},
				want: `{"role":"tool","content":"","tool_call_id":"c1"}`,
			},
		} {
			got, err := json.Marshal(tt.msg)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))

			var back llm.Message
			require.NoError(t, json.Unmarshal(got, &back))
			require.Equal(t, tt.msg, back)
		}
	})

	t.Run("UnmarshalContentForms", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			in   string
			want string
		}{
			{in: `{"role":"user","content":"plain"}`, want: "plain"},
			{in: `{"role":"assistant","content":null}`, want: ""},
			{in: `{"role":"assistant"}`, want: ""},
			{in: `{"role":"user","content":[{"type":"text","text":"look at"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"this"}]}`, want: "look at\nthis"},
		} {
			var msg llm.Message
			require.NoError(t, json.Unmarshal([]byte(tt.in), &msg), tt.in)
			require.Equal(t, tt.want, msg.Content, tt.in)
		}

		var msg llm.Message
		require.ErrorContains(t, json.Unmarshal([]byte(`{"content":42}`), &msg), "message content must be a string")
	})
}

func TestUsageAdd(t *testing.T) {
	t.Parallel()

	total := llm.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}
	total.Add(&llm.Usage{PromptTokens: 10, CompletionTokens: 20, TotalTokens: 30})
	total.Add(nil)
	require.Equal(t, llm.Usage{PromptTokens: 11, CompletionTokens: 22, TotalTokens: 33}, total)
}

func TestCompletionJSON(t *testing.T) {
	t.Parallel()

	c := llm.Completion{
		ID: "x", Model: "m", Created: 5,
		Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: "hi"}, FinishReason: "stop"}},
		Raw:     json.RawMessage(`{"ignored":true}`),
	}
	got, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"object":"chat.completion","id":"x","model":"m","created":5,`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`, string(got))
	require.Equal(t, "hi", c.Content())
	require.Empty(t, (*llm.Completion)(nil).Content())
}

func TestToolCallDeltaMissingIndex(t *testing.T) {
	t.Parallel()

	var d llm.ToolCallDelta
	require.NoError(t, json.Unmarshal([]byte(`{"id":"a","function":{"name":"f"}}`), &d))
	require.Equal(t, -1, d.Index)
	require.NoError(t, json.Unmarshal([]byte(`{"index":0,"function":{"arguments":"{"}}`), &d))
	require.Equal(t, llm.ToolCallDelta{Index: 0, Function: llm.FunctionCallDelta{Arguments: "{"}}, d)
}
