package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

func mcpResponsesTool(label, url string) responses.ToolUnionParam {
	return responses.ToolUnionParam{OfMcp: &responses.ToolMcpParam{ServerLabel: label, ServerURL: openai.String(url)}}
}

func responseParams(user, input string, tools ...responses.ToolUnionParam) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "gpt-test",
		User:  openai.String(user),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(input)},
		Tools: tools,
	}
}

// outputTypes lists the types of a response's output items.
func outputTypes(r *responses.Response) []string {
	var out []string
	for _, it := range r.Output {
		out = append(out, it.Type)
	}
	return out
}

func TestResponsesOpenAIGo(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		client := env.chatClient(keyAcme)
		ctx := context.Background()

		// One MCP call, then the answer.
		env.Model.Handle(callToolOnce(t, "add", `{"a":2,"b":3}`))
		params := responseParams("alice", "Add 2 and 3", mcpResponsesTool("calc", mcp.URL))
		params.Instructions = openai.String("You are terse.")
		resp, err := client.Responses.New(ctx, params)
		require.NoError(t, err)
		require.Equal(t, responses.ResponseStatusCompleted, resp.Status)
		require.True(t, strings.HasPrefix(resp.ID, "resp_"), resp.ID)
		require.Equal(t, []string{"mcp_list_tools", "mcp_call", "message"}, outputTypes(resp))
		list := resp.Output[0].AsMcpListTools()
		require.Equal(t, "calc", list.ServerLabel)
		var names []string
		for _, tl := range list.Tools {
			names = append(names, tl.Name)
		}
		require.Contains(t, names, "add")
		callItem := resp.Output[1].AsMcpCall()
		require.Equal(t, "calc", callItem.ServerLabel)
		require.Equal(t, "add", callItem.Name)
		require.JSONEq(t, `{"a":2,"b":3}`, callItem.Arguments)
		require.Equal(t, "5", callItem.Output)
		require.Equal(t, "The tool said: 5", resp.OutputText())
		require.EqualValues(t, 2*llmtest.DefaultUsage().TotalTokens, resp.Usage.TotalTokens)
		require.EqualValues(t, 2*llmtest.DefaultUsage().PromptTokens, resp.Usage.InputTokens)
		require.Equal(t, []string{"2 3"}, mcp.Calls("add"))
		reqs := env.Model.Requests()
		first := reqs[len(reqs)-2]
		require.Equal(t, "system", first.Messages[0].Role, "instructions are the system message")
		require.Equal(t, "You are terse.", first.Messages[0].Content)
		require.Equal(t, "user", first.Messages[1].Role)

		// Stored: retrieve gives the same response.
		got, err := client.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
		require.NoError(t, err)
		require.Equal(t, resp.ID, got.ID)
		require.Equal(t, outputTypes(resp), outputTypes(got))
		require.Equal(t, "The tool said: 5", got.OutputText())

		// previous_response_id: the model sees the whole conversation,
		// the MCP call included, then the new input.
		env.Model.Handle(nil)
		env.Model.Enqueue(llmtest.Response{Content: "Yes, 5."})
		next := responseParams("alice", "Was it 5?")
		next.PreviousResponseID = openai.String(resp.ID)
		resp2, err := client.Responses.New(ctx, next)
		require.NoError(t, err)
		require.Equal(t, "Yes, 5.", resp2.OutputText())
		last := env.Model.Requests()[len(env.Model.Requests())-1]
		var roles []string
		for _, m := range last.Messages {
			roles = append(roles, m.Role)
		}
		require.Equal(t, []string{"user", "assistant", "tool", "assistant", "user"}, roles, "instructions are not carried over")
		require.Equal(t, "5", last.Messages[2].Content)
		require.Equal(t, "Was it 5?", last.Messages[4].Content)

		// input_items: this request's own input, not the conversation's.
		page, err := client.Responses.InputItems.List(ctx, resp2.ID, responses.InputItemListParams{})
		require.NoError(t, err)
		require.Len(t, page.Data, 1)
		require.Equal(t, "message", page.Data[0].Type)
		require.Equal(t, "Was it 5?", page.Data[0].AsMessage().Content[0].Text)
		require.False(t, page.HasMore)
		var pages int
		iter := client.Responses.InputItems.ListAutoPaging(ctx, resp.ID, responses.InputItemListParams{Limit: openai.Int(1)})
		for iter.Next() {
			pages++
		}
		require.NoError(t, iter.Err())
		require.Equal(t, 1, pages)

		// Another user cannot continue alice's conversation.
		other := responseParams("bob", "Was it 5?")
		other.PreviousResponseID = openai.String(resp.ID)
		_, err = client.Responses.New(ctx, other)
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		// Nor another tenant see it.
		globex := env.chatClient(keyGlobex)
		_, err = globex.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

		// Streamed: OpenAI's events, ending with the same output.
		env.Model.Handle(callToolOnce(t, "add", `{"a":1,"b":1}`))
		stream := client.Responses.NewStreaming(ctx, responseParams("alice", "Add 1 and 1", mcpResponsesTool("calc", mcp.URL)))
		var types []string
		var text strings.Builder
		var final responses.Response
		seq := int64(-1)
		for stream.Next() {
			ev := stream.Current()
			require.Equal(t, seq+1, ev.SequenceNumber)
			seq = ev.SequenceNumber
			types = append(types, ev.Type)
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed":
				final = ev.Response
			}
		}
		require.NoError(t, stream.Err())
		require.Equal(t, "response.created", types[0])
		require.Equal(t, "response.completed", types[len(types)-1])
		for _, want := range []string{"response.mcp_list_tools.completed", "response.mcp_call_arguments.done", "response.mcp_call.in_progress",
			"response.mcp_call.completed", "response.content_part.added", "response.output_text.done", "response.output_item.done"} {
			require.Contains(t, types, want)
		}
		require.Equal(t, "The tool said: 2", text.String())
		require.Equal(t, "The tool said: 2", final.OutputText())
		require.Equal(t, []string{"mcp_list_tools", "mcp_call", "message"}, outputTypes(&final))

		// A client function tool is returned as a function_call item and
		// answered with function_call_output.
		env.Model.Handle(nil)
		env.Model.Enqueue(llmtest.Response{ToolCalls: []llmtest.ToolCall{{ID: "call_w", Name: "get_weather", Arguments: `{"city":"Oslo"}`}}})
		weather := responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
			Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}
		resp3, err := client.Responses.New(ctx, responseParams("alice", "Weather in Oslo?", mcpResponsesTool("calc", mcp.URL), weather))
		require.NoError(t, err)
		require.Equal(t, []string{"mcp_list_tools", "function_call"}, outputTypes(resp3))
		fc := resp3.Output[1].AsFunctionCall()
		require.Equal(t, "call_w", fc.CallID)
		require.Equal(t, "get_weather", fc.Name)
		// Streamed, the call comes with its arguments events.
		env.Model.Enqueue(llmtest.Response{Content: "Let me check.", ToolCalls: []llmtest.ToolCall{{ID: "call_s", Name: "get_weather", Arguments: `{"city":"Bergen"}`}}})
		fcStream := client.Responses.NewStreaming(ctx, responseParams("alice", "Weather in Bergen?", weather))
		var fcTypes []string
		var fcFinal responses.Response
		for fcStream.Next() {
			ev := fcStream.Current()
			fcTypes = append(fcTypes, ev.Type)
			if ev.Type == "response.function_call_arguments.done" {
				require.JSONEq(t, `{"city":"Bergen"}`, ev.Arguments)
			}
			if ev.Type == "response.completed" {
				fcFinal = ev.Response
			}
		}
		require.NoError(t, fcStream.Err())
		require.Contains(t, fcTypes, "response.function_call_arguments.done")
		require.Equal(t, []string{"message", "function_call"}, outputTypes(&fcFinal))
		require.Equal(t, "call_s", fcFinal.Output[1].AsFunctionCall().CallID)

		env.Model.Enqueue(llmtest.Response{Content: "Sunny in Oslo."})
		answer := responses.ResponseNewParams{Model: "gpt-test", User: openai.String("alice"), PreviousResponseID: openai.String(resp3.ID),
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				functionOutput("call_w", "sunny, 21 °C"),
			}}, Tools: []responses.ToolUnionParam{weather}}
		resp4, err := client.Responses.New(ctx, answer)
		require.NoError(t, err)
		require.Equal(t, "Sunny in Oslo.", resp4.OutputText())
		last = env.Model.Requests()[len(env.Model.Requests())-1]
		require.Equal(t, "tool", last.Messages[len(last.Messages)-1].Role)
		require.Equal(t, "call_w", last.Messages[len(last.Messages)-1].ToolCallID)
		require.Equal(t, "sunny, 21 °C", last.Messages[len(last.Messages)-1].Content)

		// max_tool_calls bounds MCP calls: the second is not sent.
		var addName string
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			if n := len(req.Messages); req.Messages[n-1].Role == "tool" && req.Messages[n-3].Role == "tool" {
				return llmtest.Response{Content: "done"}
			}
			if addName == "" {
				addName = req.OfferedTool(t, "add")
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: addName, Arguments: `{"a":7,"b":7}`}}}
		})
		bounded := responseParams("alice", "Add twice", mcpResponsesTool("calc", mcp.URL))
		bounded.MaxToolCalls = openai.Int(1)
		before := len(mcp.Calls("add"))
		resp5, err := client.Responses.New(ctx, bounded)
		require.NoError(t, err)
		require.Equal(t, before+1, len(mcp.Calls("add")))
		require.Equal(t, []string{"mcp_list_tools", "mcp_call", "mcp_call", "message"}, outputTypes(resp5))
		limited := resp5.Output[2].AsMcpCall().Error
		require.Equal(t, "mcp_protocol_error", limited.Type)
		require.Contains(t, limited.Message, "max_tool_calls")
		last = env.Model.Requests()[len(env.Model.Requests())-1]
		require.Empty(t, toolNames(t, last.Tools), "once the limit is reached no MCP tool is offered")

		// store false: not kept.
		env.Model.Handle(nil)
		env.Model.Enqueue(llmtest.Response{Content: "fleeting"})
		unstored := responseParams("alice", "hi")
		unstored.Store = openai.Bool(false)
		resp6, err := client.Responses.New(ctx, unstored)
		require.NoError(t, err)
		_, err = client.Responses.Get(ctx, resp6.ID, responses.ResponseGetParams{})
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

		// Delete.
		require.NoError(t, client.Responses.Delete(ctx, resp.ID))
		_, err = client.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	})
}

func functionOutput(callID, output string) responses.ResponseInputItemUnionParam {
	item := responses.ResponseInputItemParamOfFunctionCallOutput(output)
	item.OfFunctionCallOutput.CallID = openai.String(callID)
	return item
}

func toolNames(t testing.TB, raw json.RawMessage) []string {
	t.Helper()
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	require.NoError(t, json.Unmarshal(raw, &tools))
	var out []string
	for _, tl := range tools {
		out = append(out, tl.Function.Name)
	}
	return out
}

func TestResponsesBackgroundOpenAIGo(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		client := env.chatClient(keyAcme)
		ctx := context.Background()

		env.Model.Handle(callToolOnce(t, "add", `{"a":20,"b":22}`))
		params := responseParams("alice", "Add 20 and 22", mcpResponsesTool("calc", mcp.URL))
		params.Background = openai.Bool(true)
		resp, err := client.Responses.New(ctx, params)
		require.NoError(t, err)
		require.True(t, resp.Background)
		require.Contains(t, []responses.ResponseStatus{responses.ResponseStatusQueued, responses.ResponseStatusInProgress}, resp.Status)

		var got *responses.Response
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return got.Status == responses.ResponseStatusCompleted
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"mcp_call", "message"}, outputTypes(got))
		require.Equal(t, "42", got.Output[0].AsMcpCall().Output)
		require.Equal(t, "calc", got.Output[0].AsMcpCall().ServerLabel)
		require.Equal(t, "The tool said: 42", got.OutputText())
		require.EqualValues(t, 2*llmtest.DefaultUsage().TotalTokens, got.Usage.TotalTokens)

		// The response is a task with the same id.
		status, _, _ := call(t, "GET", env.URL+"/v1/tasks/"+resp.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status)

		// Its webhooks are the task's, to the request's own URL.
		events := make(chan string, 10)
		hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var ev struct {
				Type string `json:"type"`
				Data struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			_ = json.Unmarshal(body, &ev)
			events <- ev.Type + " " + ev.Data.ID
		}))
		t.Cleanup(hooks.Close)
		hooked := responseParams("alice", "Add 20 and 22", mcpResponsesTool("calc", mcp.URL))
		hooked.Background = openai.Bool(true)
		withHook, err := client.Responses.New(ctx, hooked, option.WithJSONSet("webhook", map[string]string{"url": hooks.URL + "/hooks"}))
		require.NoError(t, err)
		select {
		case ev := <-events:
			require.Equal(t, "task.completed "+withHook.ID, ev)
		case <-time.After(30 * time.Second):
			t.Fatal("no webhook")
		}

		// A finished response cannot be cancelled; a waiting one can.
		_, err = client.Responses.Cancel(ctx, resp.ID)
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusConflict, apiErr.StatusCode)

		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Block: true} })
		slow := responseParams("alice", "Think long")
		slow.Background = openai.Bool(true)
		before := len(env.Model.Requests())
		resp2, err := client.Responses.New(ctx, slow)
		require.NoError(t, err)
		// Cancel while its model call is in flight, not before it starts:
		// a call starting after the cancel would take the next scripted answer.
		env.Model.WaitRequests(t, before+1, 30*time.Second)
		cancelled, err := client.Responses.Cancel(ctx, resp2.ID)
		require.NoError(t, err)
		require.Equal(t, responses.ResponseStatusCancelled, cancelled.Status)

		// Continue from the finished background response.
		env.Model.Handle(nil)
		env.Model.Enqueue(llmtest.Response{Content: "It was 42."})
		next := responseParams("alice", "What was it?")
		next.PreviousResponseID = openai.String(resp.ID)
		resp3, err := client.Responses.New(ctx, next)
		require.NoError(t, err)
		require.Equal(t, "It was 42.", resp3.OutputText())
		last := env.Model.Requests()[len(env.Model.Requests())-1]
		require.Equal(t, "42", last.Messages[2].Content)

		require.NoError(t, client.Responses.Delete(ctx, resp.ID))
		status, _, _ = call(t, "GET", env.URL+"/v1/tasks/"+resp.ID, keyAcme, nil)
		require.Equal(t, http.StatusNotFound, status)

		// The caller's own function tools end a background response with
		// function_call items, as in the foreground.
		env.Model.Enqueue(llmtest.Response{ToolCalls: []llmtest.ToolCall{{ID: "call_bg", Name: "lookup", Arguments: `{"q":"x"}`}}})
		fn := responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{Name: "lookup", Parameters: map[string]any{"type": "object"}}}
		withFn := responseParams("alice", "Look it up", fn)
		withFn.Background = openai.Bool(true)
		resp4, err := client.Responses.New(ctx, withFn)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, resp4.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return got.Status == responses.ResponseStatusCompleted
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"function_call"}, outputTypes(got))
		require.Equal(t, "call_bg", got.Output[0].AsFunctionCall().CallID)
		last = env.Model.Requests()[len(env.Model.Requests())-1]
		require.Equal(t, []string{"lookup"}, toolNames(t, last.Tools))
	})
}

func TestResponsesNodeOpenAIClient(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callToolOnce(t, "echo", `{"message":"hello"}`))

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Node22(t), filepath.Join("testdata", "openai_responses.mjs"))
		cmd.Env = append(cmd.Environ(), "NODE_DIR="+testenv.NodeDir(t), "BASE_URL="+env.URL+"/v1", "API_KEY="+keyAcme, "MCP_URL="+everything)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "node: %s", stderr.String())

		type summary struct {
			ID, Status, Text string
			Types            []string
			Usage            struct {
				TotalTokens int `json:"total_tokens"`
			}
			Output []map[string]any
		}
		var got struct {
			Plain  summary
			Stream struct {
				Types     []string
				Text      string
				Completed struct {
					Status string
					Types  []string
				}
			}
			Helper struct {
				Status, Text string
				Types        []string
			}
			Background struct {
				summary
				QueuedStatus string
				Background   bool
			}
		}
		require.NoError(t, json.Unmarshal(out, &got), string(out))

		want := []string{"mcp_list_tools", "mcp_call", "message"}
		p := got.Plain
		require.Equal(t, "completed", p.Status)
		require.Equal(t, want, p.Types)
		require.Equal(t, "The tool said: Echo: hello", p.Text, "the SDK's output_text")
		require.Equal(t, "everything", p.Output[1]["server_label"])
		require.Equal(t, "echo", p.Output[1]["name"])
		require.Equal(t, "Echo: hello", p.Output[1]["output"])
		require.Equal(t, 2*llmtest.DefaultUsage().TotalTokens, p.Usage.TotalTokens)

		s := got.Stream
		require.Equal(t, "response.created", s.Types[0])
		require.Equal(t, "response.completed", s.Types[len(s.Types)-1])
		require.Contains(t, s.Types, "response.mcp_list_tools.completed")
		require.Contains(t, s.Types, "response.mcp_call.completed")
		require.Equal(t, p.Text, s.Text)
		require.Equal(t, want, s.Completed.Types)

		require.Equal(t, "completed", got.Helper.Status)
		require.Equal(t, p.Text, got.Helper.Text)
		require.Equal(t, want, got.Helper.Types)

		b := got.Background
		require.True(t, b.Background)
		require.Contains(t, []string{"queued", "in_progress"}, b.QueuedStatus)
		require.Equal(t, "completed", b.Status)
		require.Equal(t, []string{"mcp_call", "message"}, b.Types, "a background response lists no tools (the worker lists them)")
		require.Equal(t, p.Text, b.Text)

		for _, r := range env.Model.Requests() {
			require.Equal(t, "Bearer upstream-key", r.Header.Get("Authorization"))
			require.NotContains(t, string(r.Body), "node-user")
		}
	})
}

// A server that needs a login: the answer is incomplete with an
// mcp_authorization_request item and a message with the link; a background
// response waits in_progress with the same item and completes after the
// login, as a task does.
func TestResponsesLogin(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		client := env.chatClient(keyAcme)
		ctx := context.Background()
		env.Model.Handle(callToolOnce(t, "add", `{"a":1,"b":2}`))

		resp, err := client.Responses.New(ctx, responseParams("hana", "Add 1 and 2", mcpResponsesTool("calc", mcp.URL)))
		require.NoError(t, err)
		require.Equal(t, responses.ResponseStatusIncomplete, resp.Status)
		require.Equal(t, "mcp_authorization_required", string(resp.IncompleteDetails.Reason))
		require.Equal(t, []string{"mcp_authorization_request", "message"}, outputTypes(resp))
		var login struct {
			ServerLabel      string `json:"server_label"`
			ServerURL        string `json:"server_url"`
			AuthorizationURL string `json:"authorization_url"`
		}
		require.NoError(t, json.Unmarshal([]byte(resp.Output[0].RawJSON()), &login))
		require.Equal(t, "calc", login.ServerLabel)
		require.Equal(t, mcp.URL, login.ServerURL)
		require.True(t, strings.HasPrefix(login.AuthorizationURL, env.URL+"/oauth/start/"), login.AuthorizationURL)
		require.Contains(t, resp.OutputText(), login.AuthorizationURL)
		require.Empty(t, env.Model.Requests(), "no model call before the login")

		// Streamed: the same items, and response.incomplete.
		stream := client.Responses.NewStreaming(ctx, responseParams("hana", "Add 1 and 2", mcpResponsesTool("calc", mcp.URL)))
		var last string
		for stream.Next() {
			last = stream.Current().Type
		}
		require.NoError(t, stream.Err())
		require.Equal(t, "response.incomplete", last)

		// Background: waits for the login, then goes on.
		params := responseParams("hana", "Add 1 and 2", mcpResponsesTool("calc", mcp.URL))
		params.Background = openai.Bool(true)
		bg, err := client.Responses.New(ctx, params)
		require.NoError(t, err)
		var got *responses.Response
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, bg.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return len(got.Output) > 0
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, responses.ResponseStatusInProgress, got.Status)
		require.Equal(t, []string{"mcp_authorization_request"}, outputTypes(got))
		require.NoError(t, json.Unmarshal([]byte(got.Output[0].RawJSON()), &login))
		require.Equal(t, "calc", login.ServerLabel)

		status, page := testenv.FollowLogin(t, login.AuthorizationURL)
		require.Equal(t, http.StatusOK, status, page)
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, bg.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return got.Status == responses.ResponseStatusCompleted
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"mcp_call", "message"}, outputTypes(got))
		require.Equal(t, "The tool said: 3", got.OutputText())

		// Logged in now: the request is answered in place.
		resp, err = client.Responses.New(ctx, responseParams("hana", "Add 1 and 2", mcpResponsesTool("calc", mcp.URL)))
		require.NoError(t, err)
		require.Equal(t, responses.ResponseStatusCompleted, resp.Status)
		require.Equal(t, "The tool said: 3", resp.OutputText())
	})
}

// require_approval holds MCP calls back as mcp_approval_request items; an
// mcp_approval_response with previous_response_id runs (or refuses) them
// and the run goes on from there.
func TestResponsesApproval(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		client := env.chatClient(keyAcme)
		ctx := context.Background()
		env.Model.Handle(callToolOnce(t, "add", `{"a":4,"b":5}`))

		tool := mcpResponsesTool("calc", mcp.URL)
		tool.OfMcp.RequireApproval = responses.ToolMcpRequireApprovalUnionParam{OfMcpToolApprovalSetting: openai.String("always")}
		ask := func(t *testing.T) *responses.Response {
			resp, err := client.Responses.New(ctx, responseParams("alice", "Add 4 and 5", tool))
			require.NoError(t, err)
			require.Equal(t, responses.ResponseStatusCompleted, resp.Status)
			require.Equal(t, []string{"mcp_list_tools", "mcp_approval_request"}, outputTypes(resp))
			req := resp.Output[1].AsMcpApprovalRequest()
			require.Equal(t, "calc", req.ServerLabel)
			require.Equal(t, "add", req.Name)
			require.JSONEq(t, `{"a":4,"b":5}`, req.Arguments)
			return resp
		}
		answer := func(t *testing.T, prev *responses.Response, approve bool) *responses.Response {
			id := prev.Output[1].AsMcpApprovalRequest().ID
			resp, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-test", User: openai.String("alice"),
				PreviousResponseID: openai.String(prev.ID), Tools: []responses.ToolUnionParam{tool},
				Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
					responses.ResponseInputItemParamOfMcpApprovalResponse(id, approve)}}})
			require.NoError(t, err)
			return resp
		}

		// Approved: the call runs once, and the model answers.
		first := ask(t)
		require.Empty(t, mcp.Calls("add"), "nothing runs before the approval")
		done := answer(t, first, true)
		require.Equal(t, []string{"mcp_list_tools", "mcp_call", "message"}, outputTypes(done))
		callItem := done.Output[1].AsMcpCall()
		require.Equal(t, "9", callItem.Output)
		require.Equal(t, first.Output[1].AsMcpApprovalRequest().ID, callItem.ApprovalRequestID)
		require.Equal(t, "The tool said: 9", done.OutputText())
		require.Equal(t, []string{"4 5"}, mcp.Calls("add"))
		// The same approval cannot be used twice.
		id := first.Output[1].AsMcpApprovalRequest().ID
		_, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-test", User: openai.String("alice"),
			PreviousResponseID: openai.String(done.ID), Tools: []responses.ToolUnionParam{tool},
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMcpApprovalResponse(id, true)}}})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)

		// Denied: the call does not run, and the model is told.
		second := ask(t)
		refused := answer(t, second, false)
		require.Equal(t, []string{"mcp_list_tools", "mcp_call", "message"}, outputTypes(refused))
		require.Contains(t, refused.Output[1].AsMcpCall().Error.Message, "denied")
		require.Contains(t, refused.OutputText(), "denied")
		require.Equal(t, []string{"4 5"}, mcp.Calls("add"), "a denied call is not sent")

		// Streamed, the request comes as an item too.
		stream := client.Responses.NewStreaming(ctx, responseParams("alice", "Add 4 and 5", tool))
		var final responses.Response
		for stream.Next() {
			if ev := stream.Current(); ev.Type == "response.completed" {
				final = ev.Response
			}
		}
		require.NoError(t, stream.Err())
		require.Equal(t, []string{"mcp_list_tools", "mcp_approval_request"}, outputTypes(&final))
	})
}

// With MCPIDP_UPSTREAM_RESPONSES=on a request without MCP tools goes to the
// upstream's own /responses untouched; one with MCP tools still runs the
// loop over Chat Completions.
func TestResponsesUpstreamResponsesAPI(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		var got struct {
			body []byte
			auth string
		}
		var model *llmtest.Server
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/responses" {
				target, _ := url.Parse(model.URL())
				target.Path = ""
				httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
				return
			}
			got.body, _ = io.ReadAll(r.Body)
			got.auth = r.Header.Get("Authorization")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"resp_upstream","object":"response","created_at":1,"status":"completed","model":"gpt-test",
				"output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"from upstream","annotations":[]}]}],
				"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}`)
		}))
		t.Cleanup(upstream.Close)
		env := startEnv(t, databaseURL, func(o *envOpts) {
			o.env["MCPIDP_UPSTREAM_RESPONSES"] = "on"
			o.env["MCPIDP_UPSTREAM_BASE_URL"] = upstream.URL + "/v1"
		})
		model = env.Model
		client := env.chatClient(keyAcme)
		ctx := context.Background()

		params := responseParams("alice", "hi")
		params.Temperature = openai.Float(0.5)
		resp, err := client.Responses.New(ctx, params)
		require.NoError(t, err)
		require.Equal(t, "resp_upstream", resp.ID)
		require.Equal(t, "from upstream", resp.OutputText())
		require.JSONEq(t, `{"model":"gpt-test","user":"alice","input":"hi","temperature":0.5}`, string(got.body), "the body goes as it came")
		require.Equal(t, "Bearer upstream-key", got.auth)
		require.Empty(t, env.Model.Requests())

		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(callToolOnce(t, "add", `{"a":1,"b":1}`))
		resp, err = client.Responses.New(ctx, responseParams("alice", "Add", mcpResponsesTool("calc", mcp.URL)))
		require.NoError(t, err)
		require.Equal(t, "The tool said: 2", resp.OutputText())
		require.Len(t, env.Model.Requests(), 2)
	})
}

// Bad requests are 4xx in OpenAI's shape, over HTTP.
func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		post := func(body any) (int, string) {
			status, raw, _ := call(t, "POST", env.URL+"/v1/responses", keyAcme, body)
			var e struct {
				Error struct {
					Code, Param string
				}
			}
			require.NoError(t, json.Unmarshal(raw, &e), string(raw))
			return status, e.Error.Code + " " + e.Error.Param
		}
		status, got := post(map[string]any{"model": "m", "input": "hi", "tools": []any{map[string]any{"type": "web_search"}}})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "invalid_value tools[0].type", got)
		status, got = post(map[string]any{"model": "m", "input": "hi", "tools": []any{map[string]any{"type": "mcp", "server_label": "a", "server_url": "https://a.example/mcp"}}})
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, "missing_required_parameter user", got)
		status, got = post(map[string]any{"model": "m", "input": "hi", "previous_response_id": "resp_nope"})
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "previous_response_not_found previous_response_id", got)

		// An MCP server that cannot be reached: 424, as OpenAI answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		dead := "http://" + ln.Addr().String() + "/mcp"
		require.NoError(t, ln.Close())
		status, got = post(map[string]any{"model": "m", "input": "hi", "user": "u", "tools": []any{map[string]any{"type": "mcp", "server_label": "a", "server_url": dead}}})
		require.Equal(t, http.StatusFailedDependency, status)
		require.Equal(t, "mcp_server_error ", got)
		require.Empty(t, env.Model.Requests())

		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/responses/resp_nope"}, {"DELETE", "/v1/responses/resp_nope"},
			{"POST", "/v1/responses/resp_nope/cancel"}, {"GET", "/v1/responses/resp_nope/input_items"},
		} {
			status, _, _ := call(t, c.method, env.URL+c.path, keyAcme, nil)
			require.Equal(t, http.StatusNotFound, status, c.path)
		}

		// Only a background response can be cancelled.
		env.Model.Enqueue(llmtest.Response{Content: "hello"})
		status, raw, _ := call(t, "POST", env.URL+"/v1/responses", keyAcme, map[string]any{"model": "m", "input": "hi"})
		require.Equal(t, http.StatusOK, status, string(raw))
		var resp struct{ ID string }
		require.NoError(t, json.Unmarshal(raw, &resp))
		status, _, _ = call(t, "POST", env.URL+"/v1/responses/"+resp.ID+"/cancel", keyAcme, nil)
		require.Equal(t, http.StatusBadRequest, status)
		status, _, _ = call(t, "GET", env.URL+"/v1/responses/"+resp.ID, keyGlobex, nil)
		require.Equal(t, http.StatusNotFound, status, "another tenant's response")
	})
}

// A background response with require_approval waits in_progress with
// mcp_approval_request items (and their approve_url); deciding through the
// task's approval API lets it go on in place.
func TestResponsesBackgroundApproval(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		client := env.chatClient(keyAcme)
		ctx := context.Background()
		env.Model.Handle(callToolOnce(t, "add", `{"a":6,"b":7}`))

		tool := mcpResponsesTool("calc", mcp.URL)
		tool.OfMcp.RequireApproval = responses.ToolMcpRequireApprovalUnionParam{OfMcpToolApprovalSetting: openai.String("always")}
		params := responseParams("alice", "Add 6 and 7", tool)
		params.Background = openai.Bool(true)
		bg, err := client.Responses.New(ctx, params)
		require.NoError(t, err)
		var got *responses.Response
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, bg.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return len(got.Output) > 0
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, responses.ResponseStatusInProgress, got.Status)
		require.Equal(t, []string{"mcp_approval_request"}, outputTypes(got))
		req := got.Output[0].AsMcpApprovalRequest()
		require.Equal(t, "calc", req.ServerLabel)
		require.Equal(t, "add", req.Name)
		require.JSONEq(t, `{"a":6,"b":7}`, req.Arguments)
		require.Contains(t, got.Output[0].RawJSON(), `"approve_url":"`+env.URL+`/approve/`)
		require.Empty(t, mcp.Calls("add"))

		// An mcp_approval_response does not answer a background response.
		_, err = client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-test", User: openai.String("alice"),
			PreviousResponseID: openai.String(bg.ID), Background: openai.Bool(true), Tools: []responses.ToolUnionParam{tool},
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMcpApprovalResponse(req.ID, true)}}})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)

		status, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+bg.ID+"/approvals/"+req.ID, keyAcme, map[string]any{"approve": true})
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Eventually(t, func() bool {
			got, err = client.Responses.Get(ctx, bg.ID, responses.ResponseGetParams{})
			require.NoError(t, err)
			return got.Status == responses.ResponseStatusCompleted
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, []string{"mcp_call", "message"}, outputTypes(got))
		require.Equal(t, "13", got.Output[0].AsMcpCall().Output)
		require.Equal(t, "The tool said: 13", got.OutputText())
		require.Equal(t, []string{"6 7"}, mcp.Calls("add"))
	})
}
