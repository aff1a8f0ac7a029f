package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/testenv"
	"github.com/mcpidp/mcpidp/webhooks"
)

// hookEvent is one signed POST mcpidp made to a receiver.
type hookEvent struct {
	Path      string
	Header    http.Header
	Body      []byte
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	// NodeStatus is what the Node standardwebhooks receiver answered to the
	// same request (0 when not forwarded).
	NodeStatus int
}

// hookReceiver records callbacks and webhooks, verifies every signature
// with our Go helper, and can forward each request unchanged to a second
// receiver (the Node one) to verify it there too.
type hookReceiver struct {
	URL     string
	forward string

	mu     sync.Mutex
	events []hookEvent
	added  chan struct{}
}

func newHookReceiver(t *testing.T, forward string) *hookReceiver {
	r := &hookReceiver{forward: forward, added: make(chan struct{}, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ev := hookEvent{Path: req.URL.Path, Header: req.Header.Clone(), Body: body}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body is not JSON: %s", body)
		}
		if err := webhooks.Verify(testWebhookSecret, req.Header, body, time.Now()); err != nil {
			t.Errorf("webhook %s fails Go verification: %v", ev.Type, err)
		}
		if r.forward != "" {
			fwd, _ := http.NewRequest("POST", r.forward, bytes.NewReader(body))
			fwd.Header = req.Header.Clone()
			resp, err := http.DefaultClient.Do(fwd)
			if err != nil {
				t.Errorf("forwarding to the Node receiver: %v", err)
			} else {
				ev.NodeStatus = resp.StatusCode
				resp.Body.Close()
			}
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		r.added <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// wait returns the first event of the type (at index n of that type).
func (r *hookReceiver) wait(t testing.TB, typ string, n int) hookEvent {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		var seen []hookEvent
		for _, ev := range r.events {
			if ev.Type == typ {
				seen = append(seen, ev)
			}
		}
		r.mu.Unlock()
		if len(seen) > n {
			return seen[n]
		}
		select {
		case <-r.added:
		case <-deadline:
			t.Fatalf("no %s event #%d within 30s", typ, n)
		}
	}
}

func (r *hookReceiver) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// startNodeReceiver runs a receiver written for Node with the
// standardwebhooks library: 204 when it verifies, 400 otherwise.
func startNodeReceiver(t *testing.T) string {
	t.Helper()
	port := testenv.FreePort(t)
	script, err := filepath.Abs("../delivery/testdata/receiver.mjs")
	require.NoError(t, err)
	testenv.StartProcess(t, testenv.Node22(t), []string{script},
		[]string{"PORT=" + strconv.Itoa(port), "WEBHOOK_SECRET=" + testWebhookSecret, "NODE_MODULES=" + filepath.Join(testenv.NodeDir(t), "node_modules")},
		testenv.PortReady(port))
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/"
}
