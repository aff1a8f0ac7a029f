package mcpproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
	"github.com/mcpidp/mcpidp/mcpproxy"
)

type testBundle struct {
	model  *llmtest.Server
	mcp    *mcptest.Server
	client openai.Client
}

func setup(t testing.TB, configure ...func(*mcpproxy.Options)) (*mcpproxy.Proxy, *testBundle) {
	t.Helper()
	b := &testBundle{model: llmtest.NewServer(t), mcp: mcptest.New(t, mcptest.StreamableHTTP)}
	opts := mcpproxy.Options{
		UpstreamBaseURL:      b.model.URL(),
		DatabaseURL:          "sqlite:" + filepath.Join(t.TempDir(), "tokens.db"),
		ListenAddr:           "127.0.0.1:0",
		AllowPrivateNetworks: true,
	}
	for _, c := range configure {
		c(&opts)
	}
	proxy, err := mcpproxy.New(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	b.client = openai.NewClient(
		option.WithBaseURL("https://api.openai.example/v1/"), // never dialed: the proxy answers
		option.WithAPIKey("sk-from-client"),
		option.WithHTTPClient(&http.Client{Transport: proxy}),
		option.WithMaxRetries(0),
	)
	return proxy, b
}

// mcpTool is an MCP tool entry in openai-go's typed tools.
func mcpTool(url string, allowed ...string) openai.ChatCompletionToolUnionParam {
	t := map[string]any{"type": "mcp", "url": url}
	if len(allowed) > 0 {
		t["allowed_tools"] = allowed
	}
	return param.Override[openai.ChatCompletionToolUnionParam](t)
}

// echoThenAnswer scripts a model that calls the echo tool once, then
// repeats what the tool said.
func echoThenAnswer(t testing.TB) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "The tool said: " + last.Content}
		}
		return llmtest.Response{Content: "Let me ask.", ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"hi"}`}}}
	}
}

func chatParams(tools ...openai.ChatCompletionToolUnionParam) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi through the echo tool")},
		Tools:    tools,
		User:     openai.String("alice"),
	}
}

func TestProxyOpenAIGoWithMCPTool(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.model.Handle(echoThenAnswer(t))
	ctx := context.Background()
	host := strings.TrimPrefix(strings.TrimSuffix(b.mcp.URL, "/mcp"), "http://")
	wantStart := "Let me ask.\n\n<details><summary>🔧 echo (" + host + ")</summary>\n\nArguments:\n\n```json\n{\n  \"message\": \"hi\"\n}\n```\n\nOutput:\n\n```\necho: hi\n```\n\n</details>\n\n"

	// One completion: the model's text and the tool call as markdown, usage summed.
	resp, err := b.client.Chat.Completions.New(ctx, chatParams(mcpTool(b.mcp.URL)))
	require.NoError(t, err)
	require.Len(t, resp.Choices, 1)
	require.Equal(t, wantStart+"The tool said: echo: hi", resp.Choices[0].Message.Content)
	require.Equal(t, "stop", resp.Choices[0].FinishReason)
	require.Empty(t, resp.Choices[0].Message.ToolCalls)
	require.EqualValues(t, 2*llmtest.DefaultUsage().TotalTokens, resp.Usage.TotalTokens)
	require.Equal(t, []string{"hi"}, b.mcp.Calls("echo"))
	reqs := b.model.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "Bearer sk-from-client", reqs[0].Header.Get("Authorization"), "without UpstreamAPIKey the client's key is used")
	require.NotContains(t, string(reqs[0].Body), `"user":"alice"`, "user is mcpidp's, not the model's")
	require.Equal(t, "tool", reqs[1].Messages[len(reqs[1].Messages)-1].Role)

	// The same, streamed: the accumulated stream equals the completion.
	params := chatParams(mcpTool(b.mcp.URL))
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := b.client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		require.True(t, acc.AddChunk(stream.Current()), "chunk %d does not fit the stream", chunks)
		chunks++
	}
	require.NoError(t, stream.Err())
	require.Greater(t, chunks, 6, "upstream deltas are forwarded one by one")
	require.Equal(t, wantStart+"The tool said: echo: hi", acc.Choices[0].Message.Content)
	require.Equal(t, "stop", acc.Choices[0].FinishReason)
	require.EqualValues(t, 2*llmtest.DefaultUsage().TotalTokens, acc.Usage.TotalTokens)
	require.Equal(t, []string{"hi", "hi"}, b.mcp.Calls("echo"))

	// mcp_output "text" leaves the tool blocks out.
	resp, err = b.client.Chat.Completions.New(ctx, chatParams(mcpTool(b.mcp.URL)), option.WithJSONSet("mcp_output", "text"))
	require.NoError(t, err)
	require.Equal(t, "Let me ask.\n\nThe tool said: echo: hi", resp.Choices[0].Message.Content)
}

func TestProxyClientFunctionTools(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.model.Handle(func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{ID: "call_weather", Name: "get_weather", Arguments: `{"city":"Paris"}`}}}
		}
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"first"}`}}}
	})
	weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})
	ctx := context.Background()

	resp, err := b.client.Chat.Completions.New(ctx, chatParams(mcpTool(b.mcp.URL), weather))
	require.NoError(t, err)
	require.Equal(t, "tool_calls", resp.Choices[0].FinishReason)
	require.Len(t, resp.Choices[0].Message.ToolCalls, 1)
	call := resp.Choices[0].Message.ToolCalls[0]
	require.Equal(t, "call_weather", call.ID)
	require.Equal(t, "get_weather", call.Function.Name)
	require.JSONEq(t, `{"city":"Paris"}`, call.Function.Arguments)
	require.Contains(t, resp.Choices[0].Message.Content, "🔧 echo", "the MCP call before it is shown")
	require.Equal(t, []string{"first"}, b.mcp.Calls("echo"))
	// Both kinds of tools were offered to the model.
	require.Contains(t, string(b.model.Requests()[0].Tools), `"get_weather"`)

	stream := b.client.Chat.Completions.NewStreaming(ctx, chatParams(mcpTool(b.mcp.URL), weather))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		require.True(t, acc.AddChunk(stream.Current()))
	}
	require.NoError(t, stream.Err())
	require.Equal(t, "tool_calls", acc.Choices[0].FinishReason)
	require.Len(t, acc.Choices[0].Message.ToolCalls, 1, "MCP tool calls are not the client's")
	require.Equal(t, "get_weather", acc.Choices[0].Message.ToolCalls[0].Function.Name)
	require.JSONEq(t, `{"city":"Paris"}`, acc.Choices[0].Message.ToolCalls[0].Function.Arguments)
}

func TestProxyWithoutMCPToolsPassesThrough(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t, func(o *mcpproxy.Options) { o.UpstreamAPIKey = "sk-configured" })
	b.model.Enqueue(llmtest.Response{Content: "plain answer"}, llmtest.Response{Content: "streamed answer"})
	ctx := context.Background()

	// An unknown field, odd spacing included, reaches the upstream as written.
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"x_vendor_knob":{"b": 1,  "a":[true,null]} ,"user":"alice"}`
	resp := post(t, proxy, "/v1/chat/completions", body)
	require.Equal(t, http.StatusOK, resp.status, resp.body)
	require.Contains(t, resp.body, "plain answer")
	got := string(b.model.Requests()[0].Body)
	require.Contains(t, got, `"x_vendor_knob":{"b": 1,  "a":[true,null]}`)
	require.NotContains(t, got, `"user":"alice"`)
	require.Equal(t, "Bearer sk-configured", b.model.Requests()[0].Header.Get("Authorization"))

	stream := b.client.Chat.Completions.NewStreaming(ctx, chatParams())
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		require.True(t, acc.AddChunk(stream.Current()))
	}
	require.NoError(t, stream.Err())
	require.Equal(t, "streamed answer", acc.Choices[0].Message.Content)

	models, err := b.client.Models.List(ctx)
	require.NoError(t, err)
	require.Equal(t, llmtest.Model, models.Data[0].ID)
}

func TestProxyUnknownFieldWithMCPTools(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t)
	b.model.Handle(echoThenAnswer(t))
	body := `{"model":"gpt-test","temperature":0.25,"messages":[{"role":"user","content":"hi"}],"x_vendor_knob":{"b": 1,  "a":[true,null]},` +
		`"user":"alice","max_steps":3,"tools":[{"type":"mcp","server_url":"` + b.mcp.URL + `","allowed_tools":{"tool_names":["echo"]}}]}`
	resp := post(t, proxy, "/v1/chat/completions", body)
	require.Equal(t, http.StatusOK, resp.status, resp.body)
	reqs := b.model.Requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		require.Contains(t, string(r.Body), `"x_vendor_knob":{"b": 1,  "a":[true,null]}`)
		require.Contains(t, string(r.Body), `"temperature":0.25`)
		require.NotContains(t, string(r.Body), `max_steps`)
		require.NotContains(t, string(r.Body), `"mcp"`)
	}
	require.Contains(t, string(reqs[0].Tools), "__echo")
	require.NotContains(t, string(reqs[0].Tools), "__add", "allowed_tools limits what is offered")
}

func TestProxyUpstreamErrorsKeepTheirStatus(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tools  []openai.ChatCompletionToolUnionParam
		stream bool
	}{
		{"no MCP tools", nil, false},
		{"no MCP tools, stream", nil, true},
		{"MCP tools", []openai.ChatCompletionToolUnionParam{mcpTool(b.mcp.URL)}, false},
		{"MCP tools, stream", []openai.ChatCompletionToolUnionParam{mcpTool(b.mcp.URL)}, true},
	} {
		b.model.Enqueue(llmtest.Response{Status: http.StatusTooManyRequests, Content: "slow down", Header: http.Header{"Retry-After": {"7"}}})
		var err error
		if tc.stream {
			stream := b.client.Chat.Completions.NewStreaming(ctx, chatParams(tc.tools...))
			for stream.Next() {
			}
			err = stream.Err()
		} else {
			_, err = b.client.Chat.Completions.New(ctx, chatParams(tc.tools...))
		}
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%s: %v", tc.name, err)
		require.Equal(t, http.StatusTooManyRequests, apiErr.StatusCode, tc.name)
		require.Equal(t, "slow down", apiErr.Message, tc.name)
		require.Equal(t, "rate_limit_exceeded", apiErr.Code, tc.name)
		require.Equal(t, "7", apiErr.Response.Header.Get("Retry-After"), tc.name)
	}
}

func TestProxyUpstreamErrorMidStream(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.model.Handle(func(req llmtest.Request) llmtest.Response {
		if req.Messages[len(req.Messages)-1].Role == "tool" {
			return llmtest.Response{Status: http.StatusServiceUnavailable, Content: "overloaded"}
		}
		return llmtest.Response{Content: "Let me ask.", ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"hi"}`}}}
	})
	stream := b.client.Chat.Completions.NewStreaming(context.Background(), chatParams(mcpTool(b.mcp.URL)))
	var content string
	for stream.Next() {
		if c := stream.Current(); len(c.Choices) > 0 {
			content += c.Choices[0].Delta.Content
		}
	}
	// What was streamed stays; the failure ends the stream as an error event.
	require.Contains(t, content, "Let me ask.\n\n<details><summary>🔧 echo (")
	require.ErrorContains(t, stream.Err(), "overloaded")
}

func TestProxyClientCloseStopsTheRun(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.model.Handle(func(req llmtest.Request) llmtest.Response {
		return llmtest.Response{
			Content:    "A long answer that streams slowly before it asks for a tool.",
			ToolCalls:  []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"never"}`}},
			ChunkDelay: 50 * time.Millisecond,
		}
	})
	stream := b.client.Chat.Completions.NewStreaming(context.Background(), chatParams(mcpTool(b.mcp.URL)))
	for stream.Next() {
		if stream.Current().Choices[0].Delta.Content != "" {
			break
		}
	}
	require.NoError(t, stream.Close())
	require.Eventually(t, func() bool { return b.model.Canceled() == 1 }, 5*time.Second, 10*time.Millisecond, "the upstream call is canceled")
	time.Sleep(300 * time.Millisecond)
	require.Empty(t, b.mcp.Calls("echo"), "no tool call starts")
	require.Len(t, b.model.Requests(), 1)
}

func TestProxyValidation(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t)
	for _, tc := range []struct {
		body, param string
	}{
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"` + b.mcp.URL + `"}]}`, "user"},
		{`{"model":"m","user":"u","messages":[]}`, "messages"},
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"ftp://x"}]}`, "tools[0].url"},
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"` + b.mcp.URL + `"}],"max_steps":0}`, "max_steps"},
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"` + b.mcp.URL + `"}],"mcp_output":"html"}`, "mcp_output"},
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"` + b.mcp.URL + `","headers":{"Mcp-Session-Id":"x"}}]}`, "tools[0].headers"},
	} {
		resp := post(t, proxy, "/v1/chat/completions", tc.body)
		require.Equal(t, http.StatusBadRequest, resp.status, resp.body)
		var e struct {
			Error struct{ Param, Type string }
		}
		require.NoError(t, json.Unmarshal([]byte(resp.body), &e))
		require.Equal(t, tc.param, e.Error.Param, resp.body)
		require.Equal(t, "invalid_request_error", e.Error.Type)
	}
	require.Empty(t, b.model.Requests())

	// A default user stands in for a request that names none.
	withUser, b2 := setup(t, func(o *mcpproxy.Options) { o.User = "me" })
	b2.model.Handle(echoThenAnswer(t))
	resp := post(t, withUser, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"mcp","url":"`+b2.mcp.URL+`"}]}`)
	require.Equal(t, http.StatusOK, resp.status, resp.body)
}

// TestProxyLimits checks that Options.Limits reach the engine: a request
// within the defaults is refused once the program lowers them.
func TestProxyLimits(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t, func(o *mcpproxy.Options) { o.Limits = mcpproxy.Limits{MaxMessages: 1, MaxSteps: 2} })
	tool := `"tools":[{"type":"mcp","url":"` + b.mcp.URL + `"}]`
	for _, tc := range []struct {
		body, param string
	}{
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}],` + tool + `}`, "messages"},
		{`{"model":"m","user":"u","messages":[{"role":"user","content":"x"}],` + tool + `,"max_steps":3}`, "max_steps"},
	} {
		resp := post(t, proxy, "/v1/chat/completions", tc.body)
		require.Equal(t, http.StatusBadRequest, resp.status, resp.body)
		var e struct {
			Error struct{ Param string }
		}
		require.NoError(t, json.Unmarshal([]byte(resp.body), &e))
		require.Equal(t, tc.param, e.Error.Param, resp.body)
	}
	require.Empty(t, b.model.Requests())
}

func TestProxyStaticAuthorizationHeader(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t)
	b.model.Handle(echoThenAnswer(t))
	target, err := url.Parse(b.mcp.URL)
	require.NoError(t, err)
	forward := httputil.NewSingleHostReverseProxy(target)
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer static-key" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)
	resp := post(t, proxy, "/v1/chat/completions", `{"model":"m","user":"alice","messages":[{"role":"user","content":"x"}],`+
		`"tools":[{"type":"mcp","url":"`+guarded.URL+`/mcp","headers":{"authorization":"Bearer static-key"}}]}`)
	require.Equal(t, http.StatusOK, resp.status, resp.body)
	require.Contains(t, resp.body, "The tool said: echo: hi")
}

func TestProxyMCPServerDown(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	_, err := b.client.Chat.Completions.New(context.Background(), chatParams(mcpTool(down.URL+"/mcp")))
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, http.StatusFailedDependency, apiErr.StatusCode)
	require.Equal(t, "mcp_server_error", apiErr.Code)
	require.Empty(t, b.model.Requests())
}

func TestProxyLoginLinkThenSuccess(t *testing.T) {
	t.Parallel()
	server := testenv.StartOAuthExample(t)
	proxy, b := setup(t)
	b.model.Handle(func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "Server said: " + last.Content}
		}
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "greet"), Arguments: `{"name":"Alice"}`}}}
	})
	ctx := context.Background()

	resp, err := b.client.Chat.Completions.New(ctx, chatParams(mcpTool(server)))
	require.NoError(t, err)
	msg := resp.Choices[0].Message
	var links []chat.AuthorizationRequest
	require.NoError(t, json.Unmarshal([]byte(msg.JSON.ExtraFields["mcp_authorization_required"].Raw()), &links))
	require.Len(t, links, 1)
	require.Equal(t, server, links[0].ServerURL)
	require.True(t, strings.HasPrefix(links[0].AuthorizationURL, proxy.PublicURL()+"/oauth/start/"), links[0].AuthorizationURL)
	require.Contains(t, msg.Content, "[Log in to "+strings.TrimPrefix(strings.TrimSuffix(server, "/mcp"), "http://")+"]("+links[0].AuthorizationURL+")")
	require.Empty(t, b.model.Requests(), "no model call without the tools")

	status, page := testenv.FollowLogin(t, links[0].AuthorizationURL)
	require.Equal(t, http.StatusOK, status, page)
	require.Contains(t, page, "You&#39;ve authorized localhost:")

	resp, err = b.client.Chat.Completions.New(ctx, chatParams(mcpTool(server)))
	require.NoError(t, err)
	require.Contains(t, resp.Choices[0].Message.Content, "Server said: Hello, Alice!")
	require.False(t, resp.Choices[0].Message.JSON.ExtraFields["mcp_authorization_required"].Valid())

	// Another user of the same program has not logged in.
	params := chatParams(mcpTool(server))
	params.User = openai.String("bob")
	resp, err = b.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	require.Contains(t, resp.Choices[0].Message.Content, "[Log in to ")
}

func TestProxyRemoteMode(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, query, auth, upstream, body string
	}
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("X-Upstream-Authorization"), string(body)}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"remote-model","object":"model","created":1,"owned_by":"x"}]}`)
	}))
	t.Cleanup(srv.Close)
	proxy, err := mcpproxy.New(context.Background(), mcpproxy.Options{ServerURL: srv.URL + "/api/v1", APIKey: "mcpidp-key", UpstreamAPIKey: "sk-upstream"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	client := openai.NewClient(option.WithBaseURL("https://api.openai.example/v1/"), option.WithAPIKey("sk-client"),
		option.WithHTTPClient(&http.Client{Transport: proxy}), option.WithMaxRetries(0))

	page, err := client.Models.List(context.Background())
	require.NoError(t, err)
	require.Equal(t, "remote-model", page.Data[0].ID)
	s := <-got
	require.Equal(t, seen{method: "GET", path: "/api/v1/models", auth: "Bearer mcpidp-key", upstream: "Bearer sk-upstream"}, s)
}

type response struct {
	status int
	header http.Header
	body   string
}

func post(t testing.TB, proxy http.RoundTripper, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://api.openai.example"+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-from-client")
	resp, err := (&http.Client{Transport: proxy}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// Login CSRF through Proxy.Handler: the authorization server's answer to
// browser A, opened in browser B, connects nothing; A then finishes the
// login with it.
func TestProxyLoginAnswerOpenedInAnotherBrowser(t *testing.T) {
	t.Parallel()
	proxy, b := setup(t)
	mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{})
	b.model.Handle(echoThenAnswer(t))
	ctx := context.Background()

	resp, err := b.client.Chat.Completions.New(ctx, chatParams(mcpTool(mcp.URL)))
	require.NoError(t, err)
	var links []chat.AuthorizationRequest
	require.NoError(t, json.Unmarshal([]byte(resp.Choices[0].Message.JSON.ExtraFields["mcp_authorization_required"].Raw()), &links))
	require.Len(t, links, 1)

	a := testenv.NewBrowser(t)
	callback := a.FollowUntil(t, links[0].AuthorizationURL, proxy.PublicURL()+"/oauth/callback")
	status, page := testenv.NewBrowser(t).FollowLogin(t, callback)
	require.Equal(t, http.StatusBadRequest, status, page)
	require.Contains(t, page, "This login was started in another browser")
	require.Equal(t, 0, as.Count("token"), "the code was not exchanged")
	resp, err = b.client.Chat.Completions.New(ctx, chatParams(mcpTool(mcp.URL)))
	require.NoError(t, err)
	require.Contains(t, resp.Choices[0].Message.Content, "[Log in to ", "still not logged in")

	status, page = a.FollowLogin(t, callback)
	require.Equal(t, http.StatusOK, status, page)
	require.Contains(t, page, "You&#39;ve authorized")
	resp, err = b.client.Chat.Completions.New(ctx, chatParams(mcpTool(mcp.URL)))
	require.NoError(t, err)
	require.Contains(t, resp.Choices[0].Message.Content, "The tool said: ")
	require.Len(t, mcp.Calls("echo"), 1)
}
