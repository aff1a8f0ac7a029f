package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// pendingInput is an entry of the task object's pending_inputs.
type pendingInput struct {
	ID              string          `json:"id"`
	ServerURL       string          `json:"server_url"`
	Mode            string          `json:"mode"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema"`
	URL             string          `json:"url"`
	FormURL         string          `json:"form_url"`
	ExpiresAt       time.Time       `json:"expires_at"`
}

// inputsOf reads the pending_inputs of a task from its JSON result URL.
func inputsOf(t *testing.T, tk task) (string, []pendingInput) {
	t.Helper()
	code, raw, _ := call(t, "GET", tk.ResultURLs.JSON, "", nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	var o struct {
		Status        string          `json:"status"`
		PendingInputs json.RawMessage `json:"pending_inputs"`
	}
	require.NoError(t, json.Unmarshal(raw, &o))
	require.NotNil(t, o.PendingInputs, "pending_inputs is always present")
	var in []pendingInput
	require.NoError(t, json.Unmarshal(o.PendingInputs, &in))
	return o.Status, in
}

// TestTaskElicitationForm runs server-everything's trigger-elicitation-request in tasks: the task
// waits in awaiting_input with the form in pending_inputs and in a signed input.required callback;
// answers through the API (accept with content checked and completed with the schema's defaults,
// decline) and through the HTML form reach the server; bad answers are 400s that change nothing.
func TestTaskElicitationForm(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, "")
		env.Model.Handle(callToolOnce(t, "trigger-elicitation-request", `{}`))
		submit := func() task {
			return env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "Ask me",
				"tools": []map[string]any{{"type": "mcp", "url": everything}}, "authorizationRequestCallback": recv.URL + "/auth",
				"webhook": map[string]any{"url": recv.URL + "/hooks"}})
		}
		answer := func(tk task, inputID string, body any) (int, []byte) {
			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+inputID, keyAcme, body)
			return code, raw
		}

		t.Run("AcceptThroughTheAPI", func(t *testing.T) {
			tk := submit()
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			in := inputs[0]
			require.Equal(t, "form", in.Mode)
			require.Equal(t, everything, in.ServerURL)
			require.Contains(t, in.Message, "Please provide inputs")
			require.Contains(t, string(in.RequestedSchema), `"firstLine"`)
			require.Equal(t, env.URL+"/r/"+strings.TrimSuffix(strings.TrimPrefix(tk.ResultURLs.JSON, env.URL+"/r/"), ".json")+"/inputs/"+in.ID, in.FormURL)
			require.WithinDuration(t, time.Now().Add(10*time.Minute), in.ExpiresAt, time.Minute)

			cb := recv.wait(t, "input.required", 0)
			require.Equal(t, "/auth", cb.Path)
			var data map[string]any
			require.NoError(t, json.Unmarshal(cb.Data, &data))
			require.Equal(t, tk.ID, data["task_id"])
			require.Equal(t, in.ID, data["input_id"])
			require.Equal(t, in.FormURL, data["form_url"])
			require.NotNil(t, data["requested_schema"])
			hook := recv.wait(t, "task.input_required", 0)
			require.Equal(t, "/hooks", hook.Path)

			// Bad answers: 400, and the input still waits.
			for body, param := range map[string]string{
				`{"action":"accept","content":{"integer":7}}`:                "content.name",
				`{"action":"accept","content":{"name":"Ada","integer":500}}`: "content.integer",
				`{"action":"accept","content":{"name":"Ada","nope":1}}`:      "content.nope",
				`{"action":"accept","content":{"name":"Ada","email":"x"}}`:   "content.email",
				`{"action":"maybe"}`: "action",
				`{"action":"accept","content":{"name":"Ada"},"extra":true}`: "",
				`not json`: "",
			} {
				code, raw := answer(tk, in.ID, body)
				require.Equal(t, http.StatusBadRequest, code, "%s: %s", body, raw)
				var e struct {
					Error struct{ Param, Message string }
				}
				require.NoError(t, json.Unmarshal(raw, &e))
				require.Equal(t, param, e.Error.Param, "%s: %s", body, raw)
			}
			code, raw := answer(tk, "input_unknown", `{"action":"decline"}`)
			require.Equal(t, http.StatusNotFound, code, string(raw))
			code, raw, _ = call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyGlobex, `{"action":"decline"}`)
			require.Equal(t, http.StatusNotFound, code, "another tenant cannot answer: %s", raw)
			status, inputs := inputsOf(t, tk)
			require.Equal(t, "awaiting_input", status)
			require.Len(t, inputs, 1)

			code, raw = answer(tk, in.ID, `{"action":"accept","content":{"name":"Ada Lovelace","integer":7}}`)
			require.Equal(t, http.StatusOK, code, string(raw))
			code, raw = answer(tk, in.ID, `{"action":"decline"}`)
			require.Equal(t, http.StatusConflict, code, "answered once: %s", raw)

			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status)
			require.Len(t, done.Steps, 3)
			out := done.Steps[1].Output
			require.Contains(t, out, "Name: Ada Lovelace")
			require.Contains(t, out, "Favorite Integer: 7")
			require.Contains(t, out, `"firstLine": "It was a dark and stormy night."`, "the schema's default was applied")
			_, inputs = inputsOf(t, tk)
			require.Empty(t, inputs)
		})

		t.Run("DeclineThroughTheAPI", func(t *testing.T) {
			tk := submit()
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			code, raw := answer(tk, inputs[0].ID, `{"action":"decline"}`)
			require.Equal(t, http.StatusOK, code, string(raw))
			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status)
			require.Contains(t, done.Steps[1].Output, "User declined")
		})

		t.Run("CancelWhileHeld", func(t *testing.T) {
			tk := submit()
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/cancel", keyAcme, nil)
			require.Equal(t, http.StatusOK, code, string(raw))
			done := waitDone(t, tk)
			require.Equal(t, "canceled", done.Status)
			code, raw = answer(tk, inputs[0].ID, `{"action":"accept","content":{"name":"Too late"}}`)
			require.Equal(t, http.StatusConflict, code, "an ended task takes no answer: %s", raw)
			_, inputs = inputsOf(t, tk)
			require.Empty(t, inputs)
		})

		t.Run("FormPage", func(t *testing.T) {
			tk := submit()
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			form := inputs[0].FormURL

			resp, err := http.Get(form)
			require.NoError(t, err)
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
			require.Contains(t, string(page), "Please provide inputs for the following fields:")
			require.Contains(t, string(page), `value="It was a dark and stormy night."`)
			require.Contains(t, string(page), `<option value="hero-2">Green Lantern</option>`)

			// A value the schema refuses shows the form again with the error.
			resp, err = http.PostForm(form, url.Values{"_action": {"accept"}, "name": {"Grace"}, "integer": {"1000"}})
			require.NoError(t, err)
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Contains(t, string(page), "content.integer: must be at most 100")
			require.Contains(t, string(page), `value="Grace"`, "what was typed is kept")

			resp, err = http.PostForm(form, url.Values{"_action": {"accept"}, "name": {"Grace Hopper"}, "check": {"true"}, "integer": {"12"}})
			require.NoError(t, err)
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
			require.Contains(t, string(page), "your answer was sent")
			done := waitDone(t, tk)
			require.Contains(t, done.Steps[1].Output, "Name: Grace Hopper")
			require.Contains(t, done.Steps[1].Output, "Agreed to terms: true")

			resp, err = http.Get(form)
			require.NoError(t, err)
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Contains(t, string(page), "already answered")
			resp, err = http.Get(strings.Replace(form, "/r/", "/r/x", 1))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
		})
	})
}

// TestTaskElicitationHoldTimeout: nobody answers within MCPIDP_ELICITATION_HOLD, so the server is
// told the user declined and the task goes on; a late answer is a 409.
func TestTaskElicitationHoldTimeout(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_ELICITATION_HOLD"] = "2s" })
		env.Model.Handle(callToolOnce(t, "trigger-elicitation-request", `{}`))
		tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "Ask me",
			"tools": []map[string]any{{"type": "mcp", "url": everything}}})
		waitStatus(t, tk, "awaiting_input")
		_, inputs := inputsOf(t, tk)
		require.Len(t, inputs, 1)
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status)
		require.Contains(t, done.Steps[1].Output, "User declined")
		code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+inputs[0].ID, keyAcme, `{"action":"accept","content":{"name":"Late"}}`)
		require.Equal(t, http.StatusConflict, code, string(raw))
		require.Contains(t, string(raw), "expired")
	})
}

// TestTaskSampling answers server-everything's trigger-sampling-request with the task's model and
// key: a sampling step, counted in usage.
func TestTaskSampling(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			switch {
			case req.Messages[0].Role == "system" && req.Messages[0].Content == "You are a helpful test server.":
				return llmtest.Response{Content: "sampled: " + last.Content}
			case last.Role == "tool":
				return llmtest.Response{Content: "The tool said: " + last.Content}
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "trigger-sampling-request"), Arguments: `{"prompt":"a haiku","maxTokens":42}`}}}
		})
		tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "Sample",
			"tools": []map[string]any{{"type": "mcp", "url": everything}}})
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "%+v", done.Error)
		var types []string
		for _, st := range done.Steps {
			types = append(types, st.Type)
		}
		require.Equal(t, []string{"model", "sampling", "tool", "model"}, types)
		s := done.Steps[1]
		require.Equal(t, everything, s.ServerURL)
		require.Equal(t, "sampled: Resource trigger-sampling-request context: a haiku", s.Content)
		require.Contains(t, string(s.Arguments), `"maxTokens":42`)
		require.Contains(t, done.Steps[2].Output, "sampled: Resource trigger-sampling-request context: a haiku")
		require.Equal(t, 3*llmtest.DefaultUsage().TotalTokens, done.Usage.TotalTokens, "the sampling call counts")
		require.Contains(t, done.Output.Markdown, "sampling requested by")

		reqs := env.Model.Requests()
		require.Len(t, reqs, 3)
		sampling := reqs[1]
		require.Equal(t, "Bearer upstream-key", sampling.Header.Get("Authorization"))
		require.Equal(t, "gpt-test", sampling.Model)
		require.Contains(t, string(sampling.Body), `"max_tokens":42`)
		require.Empty(t, sampling.Tools, "a sampling request offers no tools")
	})
}

// TestChatElicitationAndSampling: in the chat proxy, a server's sampling request is answered with
// the request's model and shown as a step; a form elicitation ends the answer with
// mcp_elicitation_requests, and the resent request with mcp_elicitation_responses replays the call
// and answers the server from it (without asking the model to call the tool again).
func TestChatElicitationAndSampling(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		chat := func(body map[string]any) (int, []byte) {
			code, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, body)
			return code, raw
		}
		type answer struct {
			Choices []struct {
				Message struct {
					Content                string `json:"content"`
					MCPElicitationRequests []struct {
						ID              string          `json:"id"`
						ServerURL       string          `json:"server_url"`
						Message         string          `json:"message"`
						Mode            string          `json:"mode"`
						RequestedSchema json.RawMessage `json:"requested_schema"`
					} `json:"mcp_elicitation_requests"`
				} `json:"message"`
			} `json:"choices"`
			Usage struct {
				TotalTokens int `json:"total_tokens"`
			} `json:"usage"`
		}
		base := func(extra map[string]any) map[string]any {
			b := map[string]any{"model": "gpt-test", "user": "alice", "messages": []map[string]any{{"role": "user", "content": "go"}},
				"tools": []map[string]any{{"type": "mcp", "url": everything}}}
			for k, v := range extra {
				b[k] = v
			}
			return b
		}

		t.Run("Sampling", func(t *testing.T) {
			env.Model.Handle(func(req llmtest.Request) llmtest.Response {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case req.Messages[0].Role == "system":
					return llmtest.Response{Content: "sampled: " + last.Content}
				case last.Role == "tool":
					return llmtest.Response{Content: "Done."}
				}
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "trigger-sampling-request"), Arguments: `{"prompt":"hi"}`}}}
			})
			before := len(env.Model.Requests())
			for _, stream := range []bool{false, true} {
				code, raw := chat(base(map[string]any{"stream": stream}))
				require.Equal(t, http.StatusOK, code, string(raw))
				require.Contains(t, string(raw), "sampling requested by")
				require.Contains(t, string(raw), "sampled: Resource trigger-sampling-request context: hi")
				if !stream {
					var a answer
					require.NoError(t, json.Unmarshal(raw, &a))
					require.Equal(t, 3*llmtest.DefaultUsage().TotalTokens, a.Usage.TotalTokens)
				}
			}
			reqs := env.Model.Requests()[before:]
			require.Len(t, reqs, 6)
			require.False(t, reqs[1].Stream, "a sampled answer goes to the server, not streamed to the client")
			require.Empty(t, reqs[4].Tools)
		})

		t.Run("Elicitation", func(t *testing.T) {
			env.Model.Handle(callToolOnce(t, "trigger-elicitation-request", `{}`))
			before := len(env.Model.Requests())
			code, raw := chat(base(nil))
			require.Equal(t, http.StatusOK, code, string(raw))
			var a answer
			require.NoError(t, json.Unmarshal(raw, &a))
			msg := a.Choices[0].Message
			require.Len(t, msg.MCPElicitationRequests, 1, string(raw))
			q := msg.MCPElicitationRequests[0]
			require.Equal(t, everything, q.ServerURL)
			require.Equal(t, "form", q.Mode)
			require.Contains(t, string(q.RequestedSchema), `"firstLine"`)
			require.Contains(t, msg.Content, "Please provide inputs")

			// The stream carries the same request.
			code, raw = chat(base(map[string]any{"stream": true}))
			require.Equal(t, http.StatusOK, code, string(raw))
			require.Contains(t, string(raw), `"mcp_elicitation_requests":[{"id":"elicit_`)

			// A bad answer is a 400.
			code, raw = chat(base(map[string]any{"mcp_elicitation_responses": []map[string]any{{"elicitation_request_id": q.ID, "action": "accept", "content": map[string]any{"integer": 7}}}}))
			require.Equal(t, http.StatusBadRequest, code, string(raw))
			require.Contains(t, string(raw), `"param":"mcp_elicitation_responses[0].content.name"`)
			code, raw = chat(base(map[string]any{"mcp_elicitation_responses": []map[string]any{{"elicitation_request_id": "elicit_???", "action": "decline"}}}))
			require.Equal(t, http.StatusBadRequest, code, string(raw))

			mid := len(env.Model.Requests())
			code, raw = chat(base(map[string]any{"mcp_elicitation_responses": []map[string]any{{"elicitation_request_id": q.ID, "action": "accept", "content": map[string]any{"name": "Ada", "integer": 7}}}}))
			require.Equal(t, http.StatusOK, code, string(raw))
			var done answer
			require.NoError(t, json.Unmarshal(raw, &done))
			content := done.Choices[0].Message.Content
			require.Empty(t, done.Choices[0].Message.MCPElicitationRequests)
			require.Contains(t, content, "Name: Ada")
			require.Contains(t, content, "It was a dark and stormy night.", "defaults applied")
			require.Contains(t, content, "The tool said:")
			reqs := env.Model.Requests()
			require.Len(t, reqs[mid:], 1, "the replayed call needs no model turn: only the one after it")
			require.Len(t, reqs[before:mid], 2)
		})

		t.Run("URLRefusal", func(t *testing.T) {
			srv := mcptest.New(t, mcptest.StreamableHTTP)
			env.Model.Handle(callToolOnce(t, "gate", `{}`))
			body := map[string]any{"model": "gpt-test", "user": "alice", "messages": []map[string]any{{"role": "user", "content": "go"}},
				"tools": []map[string]any{{"type": "mcp", "url": srv.URL}}}
			code, raw := chat(body)
			require.Equal(t, http.StatusOK, code, string(raw))
			var a answer
			require.NoError(t, json.Unmarshal(raw, &a))
			require.Len(t, a.Choices[0].Message.MCPElicitationRequests, 1, string(raw))
			q := a.Choices[0].Message.MCPElicitationRequests[0]
			require.Equal(t, "url", q.Mode)
			require.Contains(t, a.Choices[0].Message.Content, "https://auth.example.com/connect?id=1")

			srv.OpenGate()
			body["mcp_elicitation_responses"] = []map[string]any{{"elicitation_request_id": q.ID, "action": "accept"}}
			code, raw = chat(body)
			require.Equal(t, http.StatusOK, code, string(raw))
			require.Contains(t, string(raw), "The tool said: gate passed")
			require.Len(t, srv.Calls("gate"), 2)
		})
	})
}

// TestTaskURLElicitationPausesDurably: a server that needs the user at a URL first, by refusing the
// call (-32042, a loopback mcp-go server) or by asking during it (server-everything's
// trigger-url-elicitation), parks the task in awaiting_input with nothing running; the user's
// accept resumes it exactly once and the call is sent again; a decline fails it.
func TestTaskURLElicitationPausesDurably(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		recv := newHookReceiver(t, "")
		accept := func(tk task, id string, action string) {
			t.Helper()
			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+id, keyAcme, `{"action":"`+action+`"}`)
			require.Equal(t, http.StatusOK, code, string(raw))
		}

		t.Run("ErrorPath", func(t *testing.T) {
			srv := mcptest.New(t, mcptest.StreamableHTTP)
			env.Model.Handle(callToolOnce(t, "gate", `{}`))
			tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "go",
				"tools": []map[string]any{{"type": "mcp", "url": srv.URL}}, "authorizationRequestCallback": recv.URL + "/auth"})
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			in := inputs[0]
			require.Equal(t, "url", in.Mode)
			require.Equal(t, "https://auth.example.com/connect?id=1", in.URL)
			require.Equal(t, "Connect your account first.", in.Message)
			cb := recv.wait(t, "input.required", 0)
			require.Contains(t, string(cb.Data), `"mode":"url"`)
			require.Len(t, srv.Calls("gate"), 1)

			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyAcme, `{"action":"accept","content":{"x":1}}`)
			require.Equal(t, http.StatusBadRequest, code, "a URL input takes no content: %s", raw)

			resp, err := http.Get(in.FormURL)
			require.NoError(t, err)
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, string(page), `href="https://auth.example.com/connect?id=1"`)
			require.Contains(t, string(page), "I'm done")

			srv.OpenGate() // the user did what the URL asked, and says so on the page
			resp, err = http.PostForm(in.FormURL, url.Values{"_action": {"accept"}})
			require.NoError(t, err)
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
			code, raw, _ = call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+in.ID, keyAcme, `{"action":"accept"}`)
			require.Equal(t, http.StatusConflict, code, "resumed once: %s", raw)
			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status, "%+v", done.Error)
			require.Len(t, srv.Calls("gate"), 2, "the refused call is sent again after the resume")
			require.Equal(t, "gate passed", done.Steps[1].Output)
		})

		t.Run("RequestPath", func(t *testing.T) {
			env.Model.Handle(callToolOnce(t, "trigger-url-elicitation", `{"url":"https://example.com/verify","message":"Verify it is you"}`))
			tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "go",
				"tools": []map[string]any{{"type": "mcp", "url": everything}}})
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			require.Equal(t, "https://example.com/verify", inputs[0].URL)
			accept(tk, inputs[0].ID, "accept")
			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status, "%+v", done.Error)
			require.Contains(t, done.Steps[1].Output, "User completed the URL elicitation flow")
		})

		t.Run("Expiry", func(t *testing.T) {
			srv := mcptest.New(t, mcptest.StreamableHTTP)
			env.Model.Handle(callToolOnce(t, "gate", `{}`))
			tk := env.submit(t, keyAcme, map[string]any{"user": "bob", "model": "gpt-test", "input": "go",
				"tools": []map[string]any{{"type": "mcp", "url": srv.URL}}})
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			require.WithinDuration(t, env.Clock.Now().Add(24*time.Hour), inputs[0].ExpiresAt, time.Minute)
			ctx := context.Background()
			res, err := env.App.River().JobList(ctx, river.NewJobListParams().Kinds("task_input_timeout"))
			require.NoError(t, err)
			var id int64
			for _, j := range res.Jobs {
				if strings.Contains(string(j.EncodedArgs), tk.ID) {
					id = j.ID
				}
			}
			require.NotZero(t, id, "an expiry is scheduled with the pause")
			env.Clock.Add(24*time.Hour + time.Second)
			_, err = env.App.River().JobRetry(ctx, id)
			require.NoError(t, err)
			done := waitDone(t, tk)
			require.Equal(t, "failed", done.Status)
			require.Equal(t, "input_timeout", done.Error.Code)
			code, raw, _ := call(t, "POST", env.URL+"/v1/tasks/"+tk.ID+"/inputs/"+inputs[0].ID, keyAcme, `{"action":"accept"}`)
			require.Equal(t, http.StatusConflict, code, string(raw))
		})

		t.Run("Decline", func(t *testing.T) {
			srv := mcptest.New(t, mcptest.StreamableHTTP)
			env.Model.Handle(callToolOnce(t, "gate", `{}`))
			tk := env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": "go",
				"tools": []map[string]any{{"type": "mcp", "url": srv.URL}}})
			waitStatus(t, tk, "awaiting_input")
			_, inputs := inputsOf(t, tk)
			require.Len(t, inputs, 1)
			accept(tk, inputs[0].ID, "decline")
			done := waitDone(t, tk)
			require.Equal(t, "failed", done.Status)
			require.Equal(t, "input_declined", done.Error.Code)
			require.Len(t, srv.Calls("gate"), 1)
		})
	})
}
