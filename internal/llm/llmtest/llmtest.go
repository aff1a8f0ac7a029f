// Package llmtest provides a scripted OpenAI-compatible model server on loopback for tests.
//
// It is a real HTTP server, so code under test, including a separate worker process, can reach it
// by URL. Tests script answers with Enqueue (first in, first out) or Handle (computed per request),
// then inspect what the model was sent with Requests or WaitRequests. A request with nothing
// scripted gets a 500 "llmtest: no scripted response", so a test that calls the model more often
// than it expects fails loudly.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// Model is the model name answered when a request names none, and listed by GET /v1/models.
const Model = "llmtest-model"

// fragmentSize is how many characters go in one streamed content or arguments delta, so that
// streaming clients have to assemble several fragments.
const fragmentSize = 8

// DefaultUsage returns the usage reported when a Response does not set one.
func DefaultUsage() llm.Usage {
	return llm.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18}
}

// Response is one scripted answer.
type Response struct {
	// Content is the assistant text. For an error answer (Status not 200) it is the error message.
	Content string

	// ToolCalls are the function calls the model asks for. IDs are generated when empty.
	ToolCalls []ToolCall

	// Usage is reported in the answer (and in the usage chunk of a stream when the request asked
	// for it). Defaults to DefaultUsage().
	Usage *llm.Usage

	// FinishReason defaults to "tool_calls" when there are tool calls and "stop" otherwise.
	FinishReason string

	// Status, when neither 0 nor 200, makes this an error answer with an OpenAI error body.
	Status int

	// Body, when set, is sent instead of the generated body, as is (for a stream request too, so a
	// test can script raw server-sent events or a malformed answer).
	Body string

	// Header is added to the answer's headers (e.g. Retry-After, or Content-Type to override it).
	Header http.Header

	// Delay is waited before answering; it ends early if the client goes away.
	Delay time.Duration

	// ChunkDelay is waited between the events of a streamed answer.
	ChunkDelay time.Duration

	// Block makes the server wait, without answering, until the client goes away.
	Block bool
}

// ToolCall is a scripted function call.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Request is a chat completion request the server received.
type Request struct {
	Header   http.Header
	Body     []byte
	Messages []llm.Message
	Tools    json.RawMessage
	Stream   bool
	Model    string

	// IncludeUsage is stream_options.include_usage: a stream then ends with a usage chunk.
	IncludeUsage bool
}

// OfferedTool returns the name of the function tool the model was offered for the MCP tool
// named tool: the one whose name ends with "__"+tool, as mcpidp prefixes MCP tools with their
// server ("notion__create_page"). It reports an error on t, and returns "", when there is none.
func (r Request) OfferedTool(t testing.TB, tool string) string {
	t.Helper()
	var tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(r.Tools, &tools); err != nil {
		t.Errorf("llmtest: the request's tools are not an array of function tools: %v; tools: %s", err, r.Tools)
		return ""
	}
	for _, tl := range tools {
		if strings.HasSuffix(tl.Function.Name, "__"+tool) {
			return tl.Function.Name
		}
	}
	t.Errorf("tool %q was not offered; offered: %s", tool, r.Tools)
	return ""
}

// Server is a fake OpenAI-compatible model server. It is safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	done chan struct{}

	mu       sync.Mutex
	queue    []Response
	handle   func(Request) Response
	requests []Request
	canceled int
	nextID   int
	changed  chan struct{} // closed and replaced whenever a request is recorded
}

// NewServer starts a server on 127.0.0.1 that is closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{done: make(chan struct{}), changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serveChat)
	mux.HandleFunc("GET /v1/models", s.serveModels)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "llmtest: no route for "+r.Method+" "+r.URL.Path)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.done) // releases blocked handlers, or Close would wait for them forever
		s.srv.Close()
	})
	return s
}

// URL returns the base URL of the API, ending in /v1.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Enqueue appends answers to the script; each request takes the first one left.
func (s *Server) Enqueue(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, rs...)
}

// Handle sets a function that computes the answer of requests that find the script empty. It may
// be called from several goroutines at once.
func (s *Server) Handle(f func(req Request) Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = f
}

// Requests returns a copy of the chat requests received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Canceled returns how many requests were abandoned by their client before the answer was complete.
func (s *Server) Canceled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

// WaitRequests waits until at least n chat requests have arrived and returns them all; it fails the
// test if that takes longer than timeout.
func (s *Server) WaitRequests(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, changed := len(s.requests), s.changed
		if got >= n {
			reqs := append([]Request(nil), s.requests...)
			s.mu.Unlock()
			return reqs
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("llmtest: got %d chat requests after %s, want %d", got, timeout, n)
			return nil
		}
	}
}

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "llmtest: "+err.Error())
		return
	}
	req, err := parseRequest(r.Header, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "llmtest: "+err.Error())
		return
	}
	resp, id, ok := s.record(req)
	if !ok {
		writeError(w, http.StatusInternalServerError, "llmtest: no scripted response")
		return
	}

	if resp.Block {
		s.wait(r, -1)
		return
	}
	if resp.Delay > 0 && !s.wait(r, resp.Delay) {
		return
	}
	for name, values := range resp.Header {
		w.Header()[http.CanonicalHeaderKey(name)] = values
	}
	if resp.Status != 0 && resp.Status != http.StatusOK {
		if resp.Body != "" {
			setDefault(w.Header(), "Content-Type", "application/json")
			w.WriteHeader(resp.Status)
			_, _ = w.Write([]byte(resp.Body))
			return
		}
		msg := resp.Content
		if msg == "" {
			msg = "llmtest: scripted " + strconv.Itoa(resp.Status) + " " + http.StatusText(resp.Status)
		}
		writeError(w, resp.Status, msg)
		return
	}

	s.fillIDs(&resp)
	if resp.Usage == nil {
		usage := DefaultUsage()
		resp.Usage = &usage
	}
	if resp.FinishReason == "" {
		resp.FinishReason = "stop"
		if len(resp.ToolCalls) > 0 {
			resp.FinishReason = "tool_calls"
		}
	}
	model := req.Model
	if model == "" {
		model = Model
	}
	completionID := fmt.Sprintf("chatcmpl-llmtest-%d", id)

	if req.Stream {
		s.writeStream(w, r, req, resp, completionID, model)
		return
	}
	setDefault(w.Header(), "Content-Type", "application/json")
	if resp.Body != "" {
		_, _ = w.Write([]byte(resp.Body))
		return
	}
	_ = json.NewEncoder(w).Encode(completion(resp, completionID, model))
}

// record stores the request and picks its answer: the next scripted one, else the handler's.
func (s *Server) record(req Request) (resp Response, id int, ok bool) {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	close(s.changed)
	s.changed = make(chan struct{})
	s.nextID++
	id = s.nextID
	if len(s.queue) > 0 {
		resp = s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return resp, id, true
	}
	handle := s.handle
	s.mu.Unlock()

	if handle == nil {
		return Response{}, id, false
	}
	return handle(req), id, true
}

// wait waits d (forever when d < 0) and reports whether the client is still there. A client that
// went away is counted as canceled.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-timeout:
		return true
	case <-r.Context().Done():
		s.markCanceled()
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) markCanceled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.canceled++
}

func (s *Server) fillIDs(resp *Response) {
	calls := make([]ToolCall, len(resp.ToolCalls))
	copy(calls, resp.ToolCalls)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range calls {
		if calls[i].ID == "" {
			s.nextID++
			calls[i].ID = fmt.Sprintf("call_llmtest_%d", s.nextID)
		}
	}
	resp.ToolCalls = calls
}

func (s *Server) writeStream(w http.ResponseWriter, r *http.Request, req Request, resp Response, id, model string) {
	setDefault(w.Header(), "Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	if resp.Body != "" {
		_, _ = w.Write([]byte(resp.Body))
		return
	}

	created := time.Now().Unix()
	var events []any
	chunk := func(delta map[string]any, finish *string) map[string]any {
		return map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
	}
	events = append(events, chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, piece := range split(resp.Content) {
		events = append(events, chunk(map[string]any{"content": piece}, nil))
	}
	for i, tc := range resp.ToolCalls {
		events = append(events, chunk(map[string]any{"tool_calls": []any{map[string]any{
			"index": i, "id": tc.ID, "type": "function",
			"function": map[string]any{"name": tc.Name, "arguments": ""},
		}}}, nil))
		for _, piece := range split(tc.Arguments) {
			events = append(events, chunk(map[string]any{"tool_calls": []any{map[string]any{
				"index": i, "function": map[string]any{"arguments": piece},
			}}}, nil))
		}
	}
	finish := resp.FinishReason
	events = append(events, chunk(map[string]any{}, &finish))
	if req.IncludeUsage {
		events = append(events, map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{}, "usage": resp.Usage,
		})
	}
	events = append(events, "[DONE]")

	for i, event := range events {
		if i > 0 && resp.ChunkDelay > 0 && !s.wait(r, resp.ChunkDelay) {
			return
		}
		data, ok := event.(string)
		if !ok {
			raw, err := json.Marshal(event)
			if err != nil {
				panic(err) // only maps of plain values: cannot fail
			}
			data = string(raw)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			s.markCanceled()
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func (s *Server) serveModels(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data": []any{
			map[string]any{"id": Model, "object": "model", "created": 1700000000, "owned_by": "llmtest"},
			map[string]any{"id": Model + "-mini", "object": "model", "created": 1700000000, "owned_by": "llmtest"},
		},
	})
}

func completion(resp Response, id, model string) map[string]any {
	msg := llm.Message{Role: "assistant", Content: resp.Content}
	for _, tc := range resp.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{
			ID: tc.ID, Type: "function", Function: llm.FunctionCall{Name: tc.Name, Arguments: tc.Arguments},
		})
	}
	return map[string]any{
		"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": resp.FinishReason}},
		"usage":   resp.Usage,
	}
}

func parseRequest(header http.Header, body []byte) (Request, error) {
	var payload struct {
		Model         string          `json:"model"`
		Messages      []llm.Message   `json:"messages"`
		Tools         json.RawMessage `json:"tools"`
		Stream        bool            `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		return Request{}, fmt.Errorf("invalid chat completion request: %w", err)
	}
	return Request{
		Header:       header.Clone(),
		Body:         body,
		Messages:     payload.Messages,
		Tools:        payload.Tools,
		Stream:       payload.Stream,
		Model:        payload.Model,
		IncludeUsage: payload.StreamOptions != nil && payload.StreamOptions.IncludeUsage,
	}, nil
}

func readBody(r *http.Request) ([]byte, error) {
	const limit = 64 << 20
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("error reading request body: %w", err)
	}
	return body, nil
}

func writeError(w http.ResponseWriter, status int, message string) {
	errType := "invalid_request_error"
	code := any(nil)
	switch {
	case status == http.StatusTooManyRequests:
		errType, code = "requests", "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		code = "invalid_api_key"
	case status >= 500:
		errType = "server_error"
	}
	setDefault(w.Header(), "Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": message, "type": errType, "param": nil, "code": code},
	})
}

// split cuts s into pieces of at most fragmentSize characters, never inside a UTF-8 sequence.
func split(s string) []string {
	var pieces []string
	for len(s) > 0 {
		n, i := 0, 0
		for i < len(s) && n < fragmentSize {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			n++
		}
		pieces = append(pieces, s[:i])
		s = s[i:]
	}
	return pieces
}

func setDefault(h http.Header, name, value string) {
	if h.Get(name) == "" {
		h.Set(name, value)
	}
}
