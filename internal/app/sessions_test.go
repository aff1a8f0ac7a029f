package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
)

// echoTwice scripts a model that calls echo("one"), then runs between and
// calls echo("two"), then answers with what the tool said both times,
// joined by " | ".
func echoTwice(t testing.TB, between func()) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		var said []string
		for _, m := range req.Messages {
			if m.Role == "tool" {
				said = append(said, m.Content)
			}
		}
		switch len(said) {
		case 0:
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"one"}`}}}
		case 1:
			between()
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"two"}`}}}
		}
		return llmtest.Response{Content: strings.Join(said, " | ")}
	}
}

// requireCleanRun checks that a task completed with both echo calls and no
// error step.
func requireCleanRun(t *testing.T, done task) {
	t.Helper()
	require.Equal(t, "completed", done.Status, "%+v", done.Error)
	var outputs []string
	for _, s := range done.Steps {
		require.False(t, s.IsError, "step %+v", s)
		if s.Type == "tool" {
			outputs = append(outputs, s.Output)
		}
	}
	require.Equal(t, []string{"echo: one", "echo: two"}, outputs)
	require.Equal(t, "echo: one | echo: two", done.Output.Content)
}

// An MCP server restarted between two tool calls of a task has forgotten
// the task's session (404): mcpidp opens a new one, and both calls run.
func TestTaskSurvivesMCPServerRestart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.NewRestartable(t, mcptest.StreamableHTTP)
		env.Model.Handle(echoTwice(t, mcp.Restart))
		tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})
		requireCleanRun(t, waitDone(t, tk))
		require.Equal(t, []string{"one", "two"}, mcp.Calls("echo"))
	})
}

// The same for the chat proxy, in one completion and in a stream.
func TestChatSurvivesMCPServerRestart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.NewRestartable(t, mcptest.StreamableHTTP)
		env.Model.Handle(echoTwice(t, mcp.Restart))
		client := env.chatClient(keyAcme)
		ctx := context.Background()

		resp, err := client.Chat.Completions.New(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(resp.Choices[0].Message.Content, "echo: one | echo: two"), resp.Choices[0].Message.Content)
		require.Equal(t, []string{"one", "two"}, mcp.Calls("echo"))

		stream := client.Chat.Completions.NewStreaming(ctx, chatParams("alice", mcpToolParam(mcp.URL)))
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			require.True(t, acc.AddChunk(stream.Current()))
		}
		require.NoError(t, stream.Err())
		require.True(t, strings.HasSuffix(acc.Choices[0].Message.Content, "echo: one | echo: two"), acc.Choices[0].Message.Content)
		require.Equal(t, []string{"one", "two", "one", "two"}, mcp.Calls("echo"))
	})
}

// The authorization server revokes the access token between two tool
// calls (the refresh token still works): the second call is refused with
// 401, the token is refreshed once, the call is sent again, and the task
// completes without pausing.
func TestTaskRefreshesTokenRevokedMidRun(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		connectWithScopes(t, env, "gina", mcp.URL, nil)
		recv := newHookReceiver(t, "")
		env.Model.Handle(echoTwice(t, as.RevokeAccessTokens))

		tk := env.submit(t, keyAcme, map[string]any{"user": "gina", "model": "m", "input": "x",
			"tools":                        []map[string]any{{"type": "mcp", "url": mcp.URL}},
			"authorizationRequestCallback": recv.URL + "/cb"})
		done := waitDone(t, tk)
		requireCleanRun(t, done)
		require.Equal(t, []string{"one", "two"}, mcp.Calls("echo"))
		require.Equal(t, 1, as.Count("refresh"), "one refresh at the authorization server")
		require.Equal(t, 1, as.Count("token"), "no new login")
		require.Zero(t, recv.count("authorization.required"), "the task never paused")
	})
}

// A task paused because its token could not be refreshed (the access
// token was revoked and the authorization server's token endpoint was
// down) goes on, exactly once, when a later refresh by another task stores
// a new token: no login is needed.
func TestWaitingTaskResumesAfterAnotherTasksRefresh(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now})
		connectWithScopes(t, env, "hana", mcp.URL, nil)
		recv := newHookReceiver(t, "")
		var mu sync.Mutex
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			if last.Role == "tool" {
				return llmtest.Response{Content: "Tool said: " + last.Content}
			}
			mu.Lock()
			defer mu.Unlock()
			args, _ := json.Marshal(map[string]string{"message": req.Messages[0].Content})
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: string(args)}}}
		})
		as.RevokeAccessTokens()
		as.SetRefreshUnavailable(true)

		waiting := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "hana", "model": "m", "input": "first",
			"tools":                        []map[string]any{{"type": "mcp", "url": mcp.URL}},
			"authorizationRequestCallback": recv.URL + "/cb"}), "awaiting_authorization")
		require.Len(t, waiting.AuthorizationRequired, 1, "the user can still log in")
		// The refresh was tried and failed. The token the server refused is
		// marked expired, so the periodic token upkeep may try once more,
		// and fail the same way, before the pause commits.
		require.GreaterOrEqual(t, as.Count("refresh"), 1)

		as.SetRefreshUnavailable(false)
		other := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "hana", "model": "m", "input": "second",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}))
		require.Equal(t, "completed", other.Status, "%+v", other.Error)

		done := waitDone(t, waiting)
		require.Equal(t, "completed", done.Status, "%+v", done.Error)
		require.Equal(t, "Tool said: echo: first", done.Output.Content)
		require.ElementsMatch(t, []string{"first", "second"}, mcp.Calls("echo"), "each task's call ran once")
		require.GreaterOrEqual(t, as.Count("refresh"), 2, "the failed refresh and the other task's (and maybe the upkeep's)")
		require.Equal(t, 1, as.Count("token"), "no new login")
		require.Equal(t, 1, recv.count("authorization.required"), "one pause")
	})
}

// The same when the other refresh lands while the task is pausing, after
// its own refresh failed and before its wait is recorded: the refresh finds
// no wait to resume, so the pause must see the new token itself.
func TestRefreshWhilePausingResumesTask(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		var (
			armed atomic.Bool
			as    *mcpauthtest.Server
			chat  = make(chan error, 1)
		)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now, PRMHookFunc: func() {
			// The paused task is discovering where its user logs in: its
			// refresh has failed. Another request of the user refreshes now.
			if !armed.CompareAndSwap(true, false) {
				return
			}
			as.SetRefreshUnavailable(false)
			client := env.chatClient(keyAcme)
			_, err := client.Chat.Completions.New(context.Background(), chatParams("ines", mcpToolParam(as.URL())))
			chat <- err
		}})
		connectWithScopes(t, env, "ines", mcp.URL, nil)
		recv := newHookReceiver(t, "")
		env.Model.Handle(echoOnce(t))
		as.RevokeAccessTokens()
		as.SetRefreshUnavailable(true)
		armed.Store(true)

		done := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "ines", "model": "m", "input": "first",
			"tools":                        []map[string]any{{"type": "mcp", "url": mcp.URL}},
			"authorizationRequestCallback": recv.URL + "/cb"}))
		require.NoError(t, <-chat)
		require.Equal(t, "completed", done.Status, "%+v", done.Error)
		require.Equal(t, "Tool said: echo: first", done.Output.Content)
		require.Equal(t, 2, as.Count("refresh"), "the failed refresh and the chat's")
		require.Equal(t, 1, as.Count("token"), "no new login")
		require.Zero(t, recv.count("authorization.required"), "no login link for a task that went on")
	})
}
