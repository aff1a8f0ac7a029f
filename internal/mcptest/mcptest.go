// Package mcptest runs a real MCP server (mark3labs/mcp-go) on loopback for
// tests, over Streamable HTTP or the legacy SSE transport, with tools that
// count their calls so tests can assert at-most-once execution.
package mcptest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Server is a loopback MCP server with the tools:
//   - echo(message): returns "echo: <message>"
//   - add(a, b): returns the sum
//   - wait(message): blocks until Release is called or the request ends,
//     then returns "waited: <message>"
//   - peek(message): like wait, but annotated readOnlyHint (safe to call
//     again), and returns "peeked: <message>"
//   - gate(): refuses with a URL elicitation (-32042) until OpenGate, then
//     returns "gate passed"
type Server struct {
	// URL is the MCP endpoint.
	URL  string
	path string

	// restart, set by NewRestartable, replaces the server's handler by a fresh one.
	restart func()

	// gateOpen, once set (OpenGate), lets the gate tool through.
	gateOpen atomic.Bool

	mu      sync.Mutex
	calls   map[string][]string
	started chan string
	release chan struct{}
	once    sync.Once
}

// Transport selects how the server speaks MCP.
type Transport int

const (
	StreamableHTTP Transport = iota
	SSE
)

// New starts a server closed at test end.
func New(t testing.TB, transport Transport) *Server {
	t.Helper()
	s, h := newServer(transport)
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		s.Release()
		ts.CloseClientConnections()
		ts.Close()
	})
	s.URL = ts.URL + s.path
	return s
}

// NewRestartable starts a server that keeps its sessions (Streamable HTTP: it answers 404 to a
// session it does not know) and can be restarted with Restart. Calls are counted across restarts.
func NewRestartable(t testing.TB, transport Transport) *Server {
	t.Helper()
	s := &Server{calls: map[string][]string{}, started: make(chan string, 100), release: make(chan struct{})}
	var h atomic.Pointer[http.Handler]
	fresh := func() {
		handler := s.handler(transport, true)
		h.Store(&handler)
	}
	fresh()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	s.restart = func() {
		old := *h.Load()
		fresh()
		if sse, ok := old.(*server.SSEServer); ok {
			sse.CloseSessions() // ends the streams
		}
	}
	t.Cleanup(func() {
		s.Release()
		ts.CloseClientConnections()
		ts.Close()
	})
	s.URL = ts.URL + s.path
	return s
}

// Restart plays a server process that restarted behind the same address (a reverse proxy keeps
// the client's connections): every session it knew is gone, and SSE streams end. Only for
// servers from NewRestartable.
func (s *Server) Restart() { s.restart() }

func newServer(transport Transport) (*Server, http.Handler) {
	s := &Server{calls: map[string][]string{}, started: make(chan string, 100), release: make(chan struct{})}
	return s, s.handler(transport, false)
}

// handler builds a fresh MCP server with the tools, recording calls in s.
func (s *Server) handler(transport Transport, stateful bool) http.Handler {
	m := server.NewMCPServer("mcptest", "1.0.0", server.WithToolCapabilities(false))
	m.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes the message."), mcp.WithString("message", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			msg := req.GetString("message", "")
			s.record("echo", msg)
			return mcp.NewToolResultText("echo: " + msg), nil
		})
	m.AddTool(mcp.NewTool("gate", mcp.WithDescription("Asks the user to open a URL first (-32042), until OpenGate.")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			s.record("gate", "")
			if !s.gateOpen.Load() {
				return nil, mcp.URLElicitationRequiredError{Elicitations: []mcp.ElicitationParams{{Mode: mcp.ElicitationModeURL,
					URL: "https://auth.example.com/connect?id=1", ElicitationID: "el-1", Message: "Connect your account first."}}}
			}
			return mcp.NewToolResultText("gate passed"), nil
		})
	m.AddTool(mcp.NewTool("add", mcp.WithDescription("Adds two numbers."), mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			a, b := req.GetFloat("a", 0), req.GetFloat("b", 0)
			s.record("add", fmt.Sprint(a, b))
			return mcp.NewToolResultText(fmt.Sprint(a + b)), nil
		})
	m.AddTool(mcp.NewTool("wait", mcp.WithDescription("Waits, then answers."), mcp.WithString("message")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			msg := req.GetString("message", "")
			s.record("wait", msg)
			s.started <- msg
			select {
			case <-s.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return mcp.NewToolResultText("waited: " + msg), nil
		})
	m.AddTool(mcp.NewTool("peek", mcp.WithDescription("Waits, then answers; changes nothing."), mcp.WithString("message"),
		mcp.WithReadOnlyHintAnnotation(true)),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			msg := req.GetString("message", "")
			s.record("peek", msg)
			s.started <- msg
			select {
			case <-s.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return mcp.NewToolResultText("peeked: " + msg), nil
		})
	switch transport {
	case SSE:
		s.path = "/sse"
		return server.NewSSEServer(m)
	default:
		s.path = "/mcp"
		return server.NewStreamableHTTPServer(m, server.WithStateful(stateful))
	}
}

func (s *Server) record(tool, arg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[tool] = append(s.calls[tool], arg)
}

// Calls returns the arguments of every call of tool so far.
func (s *Server) Calls(tool string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls[tool]...)
}

// Started delivers the message of each wait and peek call as it starts.
func (s *Server) Started() <-chan string { return s.started }

// OpenGate lets the gate tool through, as if the user had completed the URL
// elicitation it asks for.
func (s *Server) OpenGate() { s.gateOpen.Store(true) }

// Release lets every current and future wait call finish.
func (s *Server) Release() { s.once.Do(func() { close(s.release) }) }
