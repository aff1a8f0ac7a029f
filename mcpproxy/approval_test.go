package mcpproxy_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/stretchr/testify/require"
)

// The in-process proxy shares the chat engine's approvals: openai-go reads
// mcp_approval_requests from the message's extra fields and resends the
// request with mcp_approval_responses.
func TestProxyToolApproval(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.model.Handle(echoThenAnswer(t))
	ctx := context.Background()
	tool := param.Override[openai.ChatCompletionToolUnionParam](map[string]any{"type": "mcp", "url": b.mcp.URL, "require_approval": "always"})

	resp, err := b.client.Chat.Completions.New(ctx, chatParams(tool))
	require.NoError(t, err)
	require.Empty(t, b.mcp.Calls("echo"), "held back")
	var reqs []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	require.NoError(t, json.Unmarshal([]byte(resp.Choices[0].Message.JSON.ExtraFields["mcp_approval_requests"].Raw()), &reqs))
	require.Len(t, reqs, 1)
	require.Equal(t, "echo", reqs[0].Name)

	resp, err = b.client.Chat.Completions.New(ctx, chatParams(tool),
		option.WithJSONSet("mcp_approval_responses", []map[string]any{{"approval_request_id": reqs[0].ID, "approve": true}}))
	require.NoError(t, err)
	require.Contains(t, resp.Choices[0].Message.Content, "The tool said: echo: hi")
	require.Equal(t, []string{"hi"}, b.mcp.Calls("echo"), "the approved call ran once")
}
