package mcpclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// standaloneDropServer is a Streamable HTTP server that behaves as the TypeScript (and Java) SDKs
// do with a request sent outside any POST (server.createMessage without relatedRequestId): it goes
// on the standalone GET stream if one is open and is dropped otherwise ("the spec says the server
// MAY send messages on the stream, so it's ok to discard if no stream"). Its tool "ask" sends a
// sampling request that way at once and answers with the client's reply, or "no answer" after
// answerWait.
type standaloneDropServer struct {
	mu      sync.Mutex
	stream  chan []byte // the open standalone stream's queue; nil while none is open
	answers chan json.RawMessage
	dropped int
}

const answerWait = 3 * time.Second

func startStandaloneDropServer(t *testing.T) (url string, srv *standaloneDropServer) {
	t.Helper()
	srv = &standaloneDropServer{answers: make(chan json.RawMessage, 1)}
	ts := httptest.NewServer(http.HandlerFunc(srv.serve))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp", srv
}

func (s *standaloneDropServer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		return
	case http.MethodGet:
		ch := make(chan []byte, 4)
		s.mu.Lock()
		s.stream = ch
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.stream == ch {
				s.stream = nil
			}
			s.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush() //nolint:errcheck
		for {
			select {
			case msg := <-ch:
				fmt.Fprintf(w, "event: message\ndata: %s\n\n", msg)
				http.NewResponseController(w).Flush() //nolint:errcheck
			case <-r.Context().Done():
				return
			}
		}
	case http.MethodPost:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Result json.RawMessage `json:"result"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	reply := func(result string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", "s-1")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
	}
	switch {
	case msg.Method == "" && msg.Result != nil: // the client's answer to our request
		s.answers <- msg.Result
		w.WriteHeader(http.StatusAccepted)
	case msg.Method == "initialize":
		reply(`{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"drop","version":"1"}}`)
	case len(msg.ID) == 0: // a notification
		w.WriteHeader(http.StatusAccepted)
	case msg.Method == "tools/list":
		reply(`{"tools":[{"name":"ask","inputSchema":{"type":"object"}}]}`)
	case msg.Method == "tools/call":
		s.mu.Lock()
		if s.stream != nil {
			s.stream <- []byte(`{"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"q"}}],"maxTokens":5}}`)
		} else {
			s.dropped++
		}
		s.mu.Unlock()
		text := "no answer"
		select {
		case res := <-s.answers:
			var out struct {
				Content struct {
					Text string `json:"text"`
				} `json:"content"`
			}
			_ = json.Unmarshal(res, &out)
			text = "sampled: " + out.Content.Text
		case <-time.After(answerWait):
		case <-r.Context().Done():
		}
		b, _ := json.Marshal(text)
		reply(`{"content":[{"type":"text","text":` + string(b) + `}]}`)
	default:
		reply(`{}`)
	}
}

// A server request sent on the standalone stream as a tool call begins (the TypeScript SDK's
// createMessage/elicitInput without relatedRequestId) reaches the client: the stream must be open
// by the time the call reaches the server, or such a server drops the request and the call waits
// for an answer that never comes. Reused sessions are checked too: every call is answered.
func TestListenStreamOpenBeforeCallReachesServer(t *testing.T) {
	t.Parallel()
	url, srv := startStandaloneDropServer(t)
	s := connect(t, samplingOptions(), Server{URL: url})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := s.CallTool(ctx, "ask", nil)
		cancel()
		require.NoError(t, err)
		require.Equal(t, "sampled: 42", res.Text, "call %d", i)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Zero(t, srv.dropped, "server requests dropped for want of the standalone stream")
}

// A call on a session closed before its GET stream opened fails at once: it does not wait for a
// GET that will never go out.
func TestListenClosedSessionCallDoesNotWait(t *testing.T) {
	t.Parallel()
	url, _ := startStandaloneDropServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, samplingOptions(), Server{URL: url})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	start := time.Now()
	_, err = s.CallTool(ctx, "ask", nil)
	require.Error(t, err)
	require.Less(t, time.Since(start), listenReadyWait/2)
}
