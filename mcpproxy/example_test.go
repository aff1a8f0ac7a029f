package mcpproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"

	"github.com/mcpidp/mcpidp/mcpproxy"
)

// An OpenAI client whose requests may name MCP servers as tools. The proxy
// lists the server's tools, offers them to the model, runs the calls the
// model makes and returns the answer with each call shown as markdown.
func Example() {
	ctx := context.Background()
	model := exampleModel() // stands in for https://api.openai.com/v1
	defer model.Close()
	tools := exampleMCPServer() // stands in for https://mcp.example.com/mcp
	defer tools.Close()
	dir, err := os.MkdirTemp("", "mcpproxy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	proxy, err := mcpproxy.New(ctx, mcpproxy.Options{
		UpstreamBaseURL: model.URL + "/v1",
		UpstreamAPIKey:  "sk-…",
		// Each user's MCP logins, sealed with a key kept beside the file.
		DatabaseURL: "sqlite:" + filepath.Join(dir, "tokens.db"),
		// Login links point here, and the proxy serves them.
		ListenAddr: "127.0.0.1:0",
		// The example's servers are on loopback; real ones need not be.
		AllowPrivateNetworks: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()

	client := openai.NewClient(option.WithHTTPClient(&http.Client{Transport: proxy}))
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4.1",
		User:     openai.String("alice@example.com"), // whose MCP logins to use
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello with the echo tool")},
		Tools: []openai.ChatCompletionToolUnionParam{
			param.Override[openai.ChatCompletionToolUnionParam](map[string]any{
				"type": "mcp", "url": tools.URL + "/mcp", "allowed_tools": []string{"echo"},
			}),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// A server that wants the user to log in first gives an answer with a
	// login link instead, and the links in
	// resp.Choices[0].Message.JSON.ExtraFields["mcp_authorization_required"].
	content := resp.Choices[0].Message.Content
	fmt.Println(strings.HasPrefix(content, "<details><summary>🔧 echo ("))
	fmt.Println(content[strings.LastIndex(content, "\n")+1:])
	// Output:
	// true
	// The echo tool said: hello
}

// exampleModel is a tiny OpenAI-compatible model: it calls the first tool
// it is offered, then repeats what the tool said.
func exampleModel() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Role, Content string } `json:"messages"`
			Tools    []struct {
				Function struct{ Name string } `json:"function"`
			} `json:"tools"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		msg := map[string]any{"role": "assistant", "content": ""}
		finish := "tool_calls"
		if last := req.Messages[len(req.Messages)-1]; last.Role == "tool" {
			msg["content"], finish = "The echo tool said: "+last.Content, "stop"
		} else {
			msg["tool_calls"] = []any{map[string]any{"id": "call_1", "type": "function",
				"function": map[string]any{"name": req.Tools[0].Function.Name, "arguments": `{"message":"hello"}`}}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1",
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}})
	}))
}

// exampleMCPServer is an MCP server with an echo tool.
func exampleMCPServer() *httptest.Server {
	s := server.NewMCPServer("example", "1.0.0")
	s.AddTool(mcp.NewTool("echo", mcp.WithString("message", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	return httptest.NewServer(server.NewStreamableHTTPServer(s))
}
