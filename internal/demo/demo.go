// Package demo is what `mcpidp demo` runs beside mcpidp itself, all in
// process on loopback: an MCP server with one tool behind its own OAuth
// authorization server, whose consent page has an Allow button, and a
// scripted OpenAI-compatible model that calls that tool and answers from
// its result (used when no real model key is set).
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpidp/mcpidp/internal/demo/authserver"
	"github.com/mcpidp/mcpidp/internal/llm"
)

// Tool is the demo MCP server's one tool.
const Tool = "get_forecast"

// Model is the scripted model's name.
const Model = "mcpidp-demo-model"

// Servers are the demo's MCP server, its authorization server, and the
// scripted model.
type Servers struct {
	// MCPURL is the OAuth-protected MCP endpoint.
	MCPURL string
	// ModelURL is the scripted model's API base URL, ending in /v1.
	ModelURL string

	auth  *authserver.Server
	model *httptest.Server
}

// Start starts the servers on loopback; Close stops them.
func Start() *Servers {
	auth := authserver.Start(authserver.Config{Consent: true, Resource: NewMCPHandler()})
	model := httptest.NewServer(NewModelHandler())
	return &Servers{MCPURL: auth.URL(), ModelURL: model.URL + "/v1", auth: auth, model: model}
}

// Close stops the servers.
func (s *Servers) Close() {
	s.model.Close()
	s.auth.Close()
}

// Forecast is what the demo tool answers for a city.
func Forecast(city string) string {
	return fmt.Sprintf("%s: sunny, 21 °C, light wind from the west (demo data).", city)
}

// NewMCPHandler returns the demo MCP server (Streamable HTTP) with its
// tool.
func NewMCPHandler() http.Handler {
	m := server.NewMCPServer("mcpidp-demo", "1.0.0", server.WithToolCapabilities(false))
	m.AddTool(mcp.NewTool(Tool, mcp.WithDescription("Tells tomorrow's weather in a city."),
		mcp.WithString("city", mcp.Required(), mcp.Description("the city")), mcp.WithReadOnlyHintAnnotation(true)),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(Forecast(req.GetString("city", "Lisbon"))), nil
		})
	return server.NewStreamableHTTPServer(m)
}

// NewModelHandler returns a tiny deterministic OpenAI-compatible model
// (POST /v1/chat/completions, not streamed): it calls the demo tool, when
// offered, for the city the user's last message names last (Lisbon when it
// names none), then answers from the tool's result.
func NewModelHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []llm.Message `json:"messages"`
			Tools    []struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			} `json:"tools"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"type": "invalid_request_error", "message": "want a chat completion request with messages"}})
			return
		}
		reply := llm.Message{Role: "assistant"}
		last := req.Messages[len(req.Messages)-1]
		tool := ""
		for _, t := range req.Tools {
			if strings.HasSuffix(t.Function.Name, "__"+Tool) || t.Function.Name == Tool {
				tool = t.Function.Name
			}
		}
		switch {
		case last.Role == "tool":
			reply.Content = "Here is the forecast the demo MCP server gave me: " + strings.TrimSpace(last.Content)
		case tool == "":
			reply.Content = "I was given no forecast tool, so I cannot tell the weather."
		default:
			args, _ := json.Marshal(map[string]string{"city": city(last.Content)})
			reply.ToolCalls = []llm.ToolCall{{ID: fmt.Sprintf("call_demo_%d", len(req.Messages)), Type: "function",
				Function: llm.FunctionCall{Name: tool, Arguments: string(args)}}}
		}
		finish := "stop"
		if len(reply.ToolCalls) > 0 {
			finish = "tool_calls"
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": "chatcmpl-demo", "object": "chat.completion", "model": Model,
			"choices": []any{map[string]any{"index": 0, "message": reply, "finish_reason": finish}},
			"usage":   map[string]int{"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
		})
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list",
			"data": []any{map[string]any{"id": Model, "object": "model", "owned_by": "mcpidp-demo"}}})
	})
	return mux
}

// city is the last capitalized word of text that is not its first, or
// Lisbon.
func city(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !(r == '-' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r > 127) })
	for i := len(words) - 1; i > 0; i-- {
		if w := words[i]; strings.ToUpper(w[:1]) == w[:1] && strings.ToLower(w[:1]) != w[:1] {
			return w
		}
	}
	return "Lisbon"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
