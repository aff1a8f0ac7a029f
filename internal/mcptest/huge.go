package mcptest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// HugeOptions configures NewHuge.
type HugeOptions struct {
	// ResultBytes is the length of the text the tool "huge" returns.
	ResultBytes int64
	// DescriptionBytes is the length of the description of the tool "huge" in tools/list.
	DescriptionBytes int64
	// EventStream makes the server answer tools/call and tools/list as a text/event-stream (one
	// event, its JSON on a single data line) instead of application/json.
	EventStream bool
}

// NewHuge starts a Streamable HTTP MCP server, closed at test end, whose one tool "huge" returns
// a text of opts.ResultBytes bytes. The answers are written as they are generated, a small buffer
// at a time, so that the test process never holds them: a test can measure what the client keeps.
// It returns the MCP endpoint URL.
func NewHuge(t testing.TB, opts HugeOptions) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		switch req.Method {
		case "initialize":
			writeJSON(w, req.ID, `{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"huge","version":"1.0.0"}}`)
		case "tools/list":
			writeHuge(w, opts.EventStream, `{"jsonrpc":"2.0","id":`+string(req.ID)+`,"result":{"tools":[{"name":"huge","inputSchema":{"type":"object"},"description":"`,
				opts.DescriptionBytes, `"}]}}`)
		case "tools/call":
			writeHuge(w, opts.EventStream, `{"jsonrpc":"2.0","id":`+string(req.ID)+`,"result":{"content":[{"type":"text","text":"`,
				opts.ResultBytes, `"}],"isError":false}}`)
		default:
			writeJSON(w, req.ID, `{}`)
		}
	}))
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts.URL + "/mcp"
}

func writeJSON(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":`+result+`}`)
}

// writeHuge writes prefix, n bytes of "x" and suffix, as JSON or as one event.
func writeHuge(w http.ResponseWriter, eventStream bool, prefix string, n int64, suffix string) {
	if eventStream {
		w.Header().Set("Content-Type", "text/event-stream")
		prefix = "event: message\ndata: " + prefix
		suffix += "\n\n"
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	if _, err := io.WriteString(w, prefix); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for n > 0 {
		part := chunk[:min(n, int64(len(chunk)))]
		if _, err := w.Write(part); err != nil {
			return // the client stopped reading
		}
		n -= int64(len(part))
	}
	_, _ = io.WriteString(w, suffix)
}
