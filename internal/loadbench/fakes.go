package loadbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// loopback is an HTTP server on 127.0.0.1 with a random port.
type loopback struct {
	URL string
	srv *http.Server
}

func listen(h http.Handler) (*loopback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("error listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &loopback{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

func (l *loopback) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
}

// The fake model's fixed answers: what a small real completion looks like.
const (
	completionJSON = `{"id":"chatcmpl-load","object":"chat.completion","created":1764000000,"model":"gpt-load",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?","refusal":null},` +
		`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17},` +
		`"system_fingerprint":"fp_load"}`
	chunkPrefix = `data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1764000000,"model":"gpt-load","choices":[{"index":0,"delta":`
)

var streamChunks = []string{
	chunkPrefix + `{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n",
	chunkPrefix + `{"content":"Hello there,"},"finish_reason":null}]}` + "\n\n",
	chunkPrefix + `{"content":" how can I help?"},"finish_reason":null}]}` + "\n\n",
	chunkPrefix + `{},"finish_reason":"stop"}]}` + "\n\n",
	"data: [DONE]\n\n",
}

// fakeModel is a zero-latency OpenAI-compatible upstream. It reads the
// request and answers at once: a fixed completion, or a fixed stream (the
// first chunk flushed alone, so time to first byte means something). A
// request that offers a function tool named "…__echo" is answered with a
// call to it, and a request whose last message is a tool result with text:
// the scripted model of the one-tool scenario.
func fakeModel() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if strings.Contains(string(body), `__echo`) {
			answerToolTurn(w, body)
			return
		}
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			rc := http.NewResponseController(w)
			for i, c := range streamChunks {
				_, _ = io.WriteString(w, c)
				if i == 0 {
					_ = rc.Flush()
				}
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completionJSON)
	})
	return mux
}

// answerToolTurn is the scripted model of the one-tool scenario.
func answerToolTurn(w http.ResponseWriter, body []byte) {
	var req struct {
		Stream   bool `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var msg map[string]any
	if last := req.Messages[len(req.Messages)-1]; last.Role == "tool" {
		msg = map[string]any{"role": "assistant", "content": fmt.Sprintf("The tool said: %v", last.Content)}
	} else {
		name := ""
		for _, t := range req.Tools {
			if strings.HasSuffix(t.Function.Name, "__echo") {
				name = t.Function.Name
			}
		}
		if name == "" {
			http.Error(w, "no echo tool offered", http.StatusBadRequest)
			return
		}
		msg = map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"id": "call_1", "type": "function", "function": map[string]any{"name": name, "arguments": `{"message":"hi"}`}}}}
	}
	finish := "stop"
	if msg["tool_calls"] != nil {
		finish = "tool_calls"
	}
	out, _ := json.Marshal(map[string]any{"id": "chatcmpl-tool", "object": "chat.completion", "created": 1764000000, "model": "gpt-load",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// fakeMCP is a stateless Streamable HTTP MCP server (mark3labs/mcp-go) with
// one tool, echo, that answers at once. Its endpoint is /mcp.
func fakeMCP() http.Handler {
	m := server.NewMCPServer("loadbench", "1.0.0", server.WithToolCapabilities(false))
	m.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes the message."), mcp.WithString("message", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("echo: " + req.GetString("message", "")), nil
		})
	return server.NewStreamableHTTPServer(m)
}

var errStatus = errors.New("unexpected HTTP status")
