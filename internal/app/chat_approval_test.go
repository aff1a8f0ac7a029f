package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// chatAnswer posts a chat completion and returns the assistant's content
// and mcp_approval_requests, read from the completion or from the stream's
// chunks.
func chatAnswer(t testing.TB, env *testEnv, key string, body map[string]any) (string, []chat.ApprovalRequest) {
	t.Helper()
	status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", key, body)
	require.Equal(t, http.StatusOK, status, string(raw))
	if stream, _ := body["stream"].(bool); !stream {
		var c struct {
			Choices []struct {
				Message struct {
					Content             string                 `json:"content"`
					MCPApprovalRequests []chat.ApprovalRequest `json:"mcp_approval_requests"`
				} `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(raw, &c), string(raw))
		return c.Choices[0].Message.Content, c.Choices[0].Message.MCPApprovalRequests
	}
	var content strings.Builder
	var reqs []chat.ApprovalRequest
	done := false
	for _, block := range strings.Split(string(raw), "\n\n") {
		data, ok := strings.CutPrefix(block, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content             string                 `json:"content"`
					MCPApprovalRequests []chat.ApprovalRequest `json:"mcp_approval_requests"`
				} `json:"delta"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &c), data)
		for _, ch := range c.Choices {
			content.WriteString(ch.Delta.Content)
			reqs = append(reqs, ch.Delta.MCPApprovalRequests...)
		}
	}
	require.True(t, done, "the stream ends with [DONE]: %s", raw)
	return content.String(), reqs
}

// Chat under require_approval, streamed and not: the answer asks for the
// call (mcp_approval_requests); the resend with mcp_approval_responses runs
// an approved call and tells the model of a denied one, without asking
// the model for the call again.
func TestChatToolApproval(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"approve me"}`))
		for _, stream := range []bool{false, true} {
			for _, approve := range []bool{true, false} {
				t.Run(fmt.Sprintf("stream=%v/approve=%v", stream, approve), func(t *testing.T) {
					body := map[string]any{"model": "m", "user": "carol", "stream": stream,
						"messages": []map[string]any{{"role": "user", "content": "echo please"}},
						"tools":    []map[string]any{{"type": "mcp", "url": everything, "require_approval": "always"}}}
					before := len(env.Model.Requests())
					content, reqs := chatAnswer(t, env, keyAcme, body)
					require.Len(t, reqs, 1, content)
					require.Equal(t, "echo", reqs[0].Name)
					require.Equal(t, everything, reqs[0].ServerURL)
					require.JSONEq(t, `{"message":"approve me"}`, string(reqs[0].Arguments))
					require.True(t, strings.HasPrefix(reqs[0].ID, "mcpr_"), reqs[0].ID)
					require.Contains(t, content, "waits for your approval")
					require.NotContains(t, content, "Echo: approve me", "nothing ran")
					require.Equal(t, before+1, len(env.Model.Requests()))

					body["mcp_approval_responses"] = []map[string]any{{"approval_request_id": reqs[0].ID, "approve": approve, "reason": "not now"}}
					content, reqs = chatAnswer(t, env, keyAcme, body)
					require.Empty(t, reqs)
					require.Equal(t, before+2, len(env.Model.Requests()), "the model is asked once more, after the call")
					last := env.Model.Requests()[before+1]
					require.NotContains(t, string(last.Body), "mcp_approval_responses", "consumed, not sent upstream")
					if approve {
						require.Contains(t, content, "The tool said: Echo: approve me")
					} else {
						require.Contains(t, content, "The tool said: error: the user denied this call: not now")
					}
				})
			}
		}
	})
}

// An approval response names only what this deployment asked this user:
// a made-up id, another user's, or one without the server's policy is a
// 400, and nothing runs.
func TestChatApprovalResponsesAreChecked(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"guarded"}`))
		body := func(user string, policy any, responses any) map[string]any {
			b := map[string]any{"model": "m", "user": user, "messages": []map[string]any{{"role": "user", "content": "x"}},
				"tools": []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": policy}}}
			if responses != nil {
				b["mcp_approval_responses"] = responses
			}
			return b
		}
		_, reqs := chatAnswer(t, env, keyAcme, body("dana", "auto", nil))
		require.Len(t, reqs, 1, "auto asks for echo, which is not read-only")
		id := reqs[0].ID
		ok := []map[string]any{{"approval_request_id": id, "approve": true}}
		for name, c := range map[string]struct {
			key       string
			body      map[string]any
			wantParam string
		}{
			"forged":        {keyAcme, body("dana", "auto", []map[string]any{{"approval_request_id": "mcpr_v1.k.AAAA", "approve": true}}), "mcp_approval_responses[0].approval_request_id"},
			"altered":       {keyAcme, body("dana", "auto", []map[string]any{{"approval_request_id": id[:len(id)-4] + "AAAA", "approve": true}}), "mcp_approval_responses[0].approval_request_id"},
			"other user":    {keyAcme, body("eve", "auto", ok), "mcp_approval_responses[0].approval_request_id"},
			"other tenant":  {keyGlobex, body("dana", "auto", ok), "mcp_approval_responses[0].approval_request_id"},
			"no policy":     {keyAcme, body("dana", "never", ok), "mcp_approval_responses[0].approval_request_id"},
			"no decision":   {keyAcme, body("dana", "auto", []map[string]any{{"approval_request_id": id}}), "mcp_approval_responses[0].approve"},
			"not an array":  {keyAcme, body("dana", "auto", "yes"), "mcp_approval_responses"},
			"bad policy":    {keyAcme, body("dana", "sometimes", nil), "tools[0].require_approval"},
			"listed twice":  {keyAcme, body("dana", "auto", append(ok, ok...)), "mcp_approval_responses[1].approval_request_id"},
			"unknown shape": {keyAcme, body("dana", map[string]any{"always": true}, nil), "tools[0].require_approval.always"},
		} {
			status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", c.key, c.body)
			require.Equal(t, http.StatusBadRequest, status, "%s: %s", name, raw)
			require.Contains(t, string(raw), `"param":"`+c.wantParam+`"`, "%s: %s", name, raw)
		}
		require.Empty(t, mcp.Calls("echo"), "nothing ran")
		content, reqs := chatAnswer(t, env, keyAcme, body("dana", "auto", ok))
		require.Empty(t, reqs)
		require.Contains(t, content, "The tool said: echo: guarded")
		require.Equal(t, []string{"guarded"}, mcp.Calls("echo"))
	})
}

// "auto" lets a tool that declares readOnlyHint run without asking.
func TestChatApprovalAutoRunsReadOnlyTools(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		mcp.Release() // peek answers at once
		env.Model.Handle(callToolOnce(t, "peek", `{"message":"look"}`))
		content, reqs := chatAnswer(t, env, keyAcme, map[string]any{"model": "m", "user": "u",
			"messages": []map[string]any{{"role": "user", "content": "x"}},
			"tools":    []map[string]any{{"type": "mcp", "url": mcp.URL, "require_approval": "auto"}}})
		require.Empty(t, reqs)
		require.Contains(t, content, "The tool said: peeked: look")
		require.Equal(t, []string{"look"}, mcp.Calls("peek"))
	})
}
