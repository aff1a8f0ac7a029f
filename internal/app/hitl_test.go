package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// getPage GETs a result page as a browser would.
func getPage(t *testing.T, link string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// One task run both waits for an approval and, once the approved call
// runs, for the server's form: each wait shows on the HTML and markdown
// result pages with its link, and the task completes with the answer.
func TestTaskApprovalThenElicitation(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "trigger-elicitation-request", `{}`))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "Ask me",
			"tools": []map[string]any{{"type": "mcp", "url": everything, "require_approval": "always"}}}), "awaiting_approval")
		page := strings.TrimSuffix(tk.ResultURLs.JSON, ".json")

		pa := getApprovalTask(t, env, tk.ID).PendingApprovals
		require.Len(t, pa, 1)
		code, html := getPage(t, page)
		require.Equal(t, http.StatusOK, code, html)
		require.Contains(t, html, "Needs approval")
		require.Contains(t, html, pa[0].ApproveURL)
		code, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, string(md), pa[0].ApproveURL)

		status, raw := decide(t, env, tk.ID, pa[0].ID, map[string]any{"approve": true})
		require.Equal(t, http.StatusOK, status, raw)
		waitStatus(t, tk, "awaiting_input")
		require.Empty(t, getApprovalTask(t, env, tk.ID).PendingApprovals, "the approval was decided")
		_, inputs := inputsOf(t, tk)
		require.Len(t, inputs, 1)
		code, html = getPage(t, page)
		require.Equal(t, http.StatusOK, code, html)
		require.Contains(t, html, "Needs your input")
		require.Contains(t, html, inputs[0].FormURL)
		code, md, _ = call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, string(md), inputs[0].FormURL)

		code, raw2, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+inputs[0].ID, keyAcme,
			`{"action":"accept","content":{"name":"Ada Lovelace","integer":7}}`)
		require.Equal(t, http.StatusOK, code, string(raw2))
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		var outputs []string
		for _, st := range done.Steps {
			if st.Type == "tool" {
				outputs = append(outputs, st.Output)
			}
		}
		require.Len(t, outputs, 1, "the approved call ran once")
		require.Contains(t, outputs[0], "Name: Ada Lovelace")
		code, html = getPage(t, page)
		require.Equal(t, http.StatusOK, code, html)
	})
}

// Chat under require_approval with a tool that asks for a form: the
// client approves the call, then answers the form; the resend with the
// answer replays the approved call without asking for approval again.
func TestChatApprovalThenElicitation(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "trigger-elicitation-request", `{}`))
		type message struct {
			Content                string                    `json:"content"`
			MCPApprovalRequests    []chat.ApprovalRequest    `json:"mcp_approval_requests"`
			MCPElicitationRequests []chat.ElicitationRequest `json:"mcp_elicitation_requests"`
		}
		ask := func(extra map[string]any) message {
			body := map[string]any{"model": "m", "user": "alice", "messages": []map[string]any{{"role": "user", "content": "go"}},
				"tools": []map[string]any{{"type": "mcp", "url": everything, "require_approval": "always"}}}
			for k, v := range extra {
				body[k] = v
			}
			code, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, body)
			require.Equal(t, http.StatusOK, code, string(raw))
			var c struct {
				Choices []struct {
					Message message `json:"message"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal(raw, &c), string(raw))
			return c.Choices[0].Message
		}
		first := ask(nil)
		require.Len(t, first.MCPApprovalRequests, 1)
		second := ask(map[string]any{"mcp_approval_responses": []map[string]any{{"approval_request_id": first.MCPApprovalRequests[0].ID, "approve": true}}})
		require.Empty(t, second.MCPApprovalRequests)
		require.Len(t, second.MCPElicitationRequests, 1, "the approved call asks for the form: %+v", second)

		// A second form of the same call would carry the approval too; here
		// the answer completes it.
		third := ask(map[string]any{"mcp_elicitation_responses": []map[string]any{{"elicitation_request_id": second.MCPElicitationRequests[0].ID,
			"action": "accept", "content": map[string]any{"name": "Ada", "integer": 7}}}})
		require.Empty(t, third.MCPApprovalRequests, "the call was approved already")
		require.Empty(t, third.MCPElicitationRequests)
		require.Contains(t, third.Content, "Name: Ada")
		require.Contains(t, third.Content, "The tool said:")

		// The elicitation id is not signed: one without the approval it
		// carries asks for approval again.
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(second.MCPElicitationRequests[0].ID, "elicit_"))
		require.NoError(t, err)
		var p map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &p))
		require.Contains(t, p, "ap", "the id carries the approval")
		delete(p, "ap")
		raw, err = json.Marshal(p)
		require.NoError(t, err)
		forged := ask(map[string]any{"mcp_elicitation_responses": []map[string]any{{"elicitation_request_id": "elicit_" + base64.RawURLEncoding.EncodeToString(raw),
			"action": "decline"}}})
		require.Len(t, forged.MCPApprovalRequests, 1)
	})
}

// A URL input's page goes by the deployment's clock, as the API does: once
// the input has expired it offers no "I'm done" button.
func TestInputPageClosesAtExpiry(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		srv := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(callToolOnce(t, "gate", `{}`))
		tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": srv.URL}}}), "awaiting_input")
		_, inputs := inputsOf(t, tk)
		require.Len(t, inputs, 1)
		in := inputs[0]
		code, page := getPage(t, in.FormURL)
		require.Equal(t, http.StatusOK, code, page)
		require.Contains(t, page, "I'm done")

		env.Clock.Add(in.ExpiresAt.Sub(env.Clock.Now()) + time.Second)
		code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyAcme, `{"action":"accept"}`)
		require.Equal(t, http.StatusConflict, code, "expired: %s", raw)
		code, page = getPage(t, in.FormURL)
		require.Equal(t, http.StatusOK, code, page)
		require.NotContains(t, page, "I'm done", "the page of an expired input offers nothing to press")
		require.Contains(t, page, "has expired")
	})
}

// startTwoFormsServer starts an MCP server whose ask_twice tool sends two
// forms at once (mcp-go sends each server request on its own), and
// answers with what each got.
func startTwoFormsServer(t *testing.T) string {
	t.Helper()
	m := server.NewMCPServer("forms", "1.0.0", server.WithElicitation())
	schema := map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}, "required": []string{"name"}}
	m.AddTool(mcp.NewTool("ask_twice", mcp.WithDescription("Asks two questions at once.")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			answers := make([]string, 2)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := m.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
						Message: fmt.Sprintf("Question %d", i+1), RequestedSchema: schema}})
					if err != nil {
						answers[i] = "error: " + err.Error()
						return
					}
					answers[i] = fmt.Sprintf("%s %v", res.Action, res.Content)
				}()
			}
			wg.Wait()
			return mcp.NewToolResultText(strings.Join(answers, " | ")), nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(m, server.WithStateful(true)))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// A server that sends two forms at once during one call gets both answered:
// the task asks its user one after the other.
func TestTaskTwoFormsAtOnce(t *testing.T) {
	t.Parallel()
	forms := startTwoFormsServer(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "ask_twice", `{}`))
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": forms}}})
		var names []string
		for range 2 {
			// Each form waits in turn: one pending input at a time.
			var in pendingInput
			for deadline := time.Now().Add(30 * time.Second); in.ID == "" || slices.Contains(names, "Ada "+in.Message); {
				require.True(t, time.Now().Before(deadline), "no form waits")
				status, inputs := inputsOf(t, tk)
				require.NotContains(t, []string{"completed", "failed", "canceled"}, status, "the task ended before its forms were answered")
				in = pendingInput{}
				if status == "awaiting_input" {
					require.Len(t, inputs, 1)
					in = inputs[0]
				}
				time.Sleep(20 * time.Millisecond)
			}
			name := "Ada " + in.Message
			names = append(names, name)
			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyAcme,
				map[string]any{"action": "accept", "content": map[string]any{"name": name}})
			require.Equal(t, http.StatusOK, code, string(raw))
		}
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.NotContains(t, done.Steps[1].Output, "error")
		for _, name := range names {
			require.Contains(t, done.Steps[1].Output, "accept map[name:"+name+"]")
		}
	})
}

// startFormAndSampleServer serves a tool that asks its user a form and,
// while the form waits, asks the client's model (sampling).
func startFormAndSampleServer(t *testing.T) string {
	t.Helper()
	m := server.NewMCPServer("form-and-sample", "1.0.0", server.WithElicitation())
	m.EnableSampling()
	schema := map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}, "required": []string{"name"}}
	m.AddTool(mcp.NewTool("ask_and_sample", mcp.WithDescription("Asks a form and samples while it waits.")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var form, sampled string
			var wg sync.WaitGroup
			wg.Go(func() {
				res, err := m.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{Message: "Your name?", RequestedSchema: schema}})
				if err != nil {
					form = "error: " + err.Error()
					return
				}
				form = fmt.Sprintf("%s %v", res.Action, res.Content)
			})
			wg.Go(func() {
				time.Sleep(300 * time.Millisecond) // the form waits by now
				res, err := m.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
					Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("sample me")}},
					MaxTokens: 20}})
				if err != nil {
					sampled = "error: " + err.Error()
					return
				}
				if tc, ok := res.Content.(mcp.TextContent); ok {
					sampled = tc.Text
				}
			})
			wg.Wait()
			return mcp.NewToolResultText(form + " | " + sampled), nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(m, server.WithStateful(true)))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// A server's sampling request that arrives while the task waits for its
// user's form (awaiting_input, the call held open) is answered and recorded.
func TestTaskSamplesWhileAFormWaits(t *testing.T) {
	t.Parallel()
	srv := startFormAndSampleServer(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		tool := callToolOnce(t, "ask_and_sample", `{}`)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			if last := req.Messages[len(req.Messages)-1]; last.Role == "user" && last.Content == "sample me" {
				return llmtest.Response{Content: "sampled while waiting"}
			}
			return tool(req)
		})
		tk := env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "go",
			"tools": []map[string]any{{"type": "mcp", "url": srv}}})
		var in pendingInput
		require.Eventually(t, func() bool {
			status, inputs := inputsOf(t, tk)
			if status == "awaiting_input" && len(inputs) == 1 {
				in = inputs[0]
				return true
			}
			return false
		}, 30*time.Second, 20*time.Millisecond)
		// The sampled answer is recorded while the form still waits.
		require.Eventually(t, func() bool {
			code, raw, _ := call(t, "GET", tk.ResultURLs.JSON, "", nil)
			require.Equal(t, http.StatusOK, code, string(raw))
			var got task
			require.NoError(t, json.Unmarshal(raw, &got))
			for _, st := range got.Steps {
				if st.Type == "sampling" {
					return true
				}
			}
			return false
		}, 30*time.Second, 20*time.Millisecond, "no sampling step while the form waits")
		code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyAcme,
			map[string]any{"action": "accept", "content": map[string]any{"name": "Ada"}})
		require.Equal(t, http.StatusOK, code, string(raw))
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		var out string
		for _, st := range done.Steps {
			if st.Type == "tool" {
				out = st.Output
			}
		}
		require.Equal(t, "accept map[name:Ada] | sampled while waiting", out)
	})
}
