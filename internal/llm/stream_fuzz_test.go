package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzEventReader reads arbitrary bodies as server-sent events without panicking or returning an
// event over the limit, and gives back, in order, any payloads written one "data:" line per event.
func FuzzEventReader(f *testing.F) {
	for _, seed := range [][2]string{
		{"data: {\"a\":1}\n\ndata: [DONE]\n\n", "{}\x00[DONE]"},
		{": keep-alive\r\nevent: x\r\ndata: 1\r\ndata: 2\r\n\r\n", " lead\x00\x00trail "},
		{"data:{}\ndata:{}\n\ndata", "data: x\x00:"},
		{"data: " + strings.Repeat("x", 5000) + "\n\n", strings.Repeat("y", 5000)},
	} {
		f.Add([]byte(seed[0]), seed[1])
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte, payloads string) {
		events := newEventReader(bytes.NewReader(body), limit)
		for i := 0; ; i++ {
			data, err := events.next()
			if err != nil {
				break
			}
			if len(data) > limit {
				t.Fatalf("event of %d bytes over the limit %d", len(data), limit)
			}
			if i > len(body) {
				t.Fatal("more events than bytes")
			}
		}

		var stream strings.Builder
		var want []string
		for _, p := range strings.Split(payloads, "\x00") {
			p = strings.NewReplacer("\r", "", "\n", "").Replace(p)
			stream.WriteString("data: " + p + "\n\n")
			want = append(want, p)
		}
		events = newEventReader(strings.NewReader(stream.String()), limit)
		for i, p := range want {
			data, err := events.next()
			if len(p) > limit {
				if !errors.Is(err, ErrResponseTooLarge) {
					t.Fatalf("payload %d of %d bytes: %v, want ErrResponseTooLarge", i, len(p), err)
				}
				return
			}
			if err != nil || string(data) != p {
				t.Fatalf("payload %d: got %q, %v; want %q", i, data, err, p)
			}
		}
		if data, err := events.next(); err != io.EOF {
			t.Fatalf("after the payloads: %q, %v", data, err)
		}
	})
}

// FuzzStream streams arbitrary bodies from an upstream: the call must end, with a completion whose
// text stays within the limit, or with an error, never a panic.
func FuzzStream(f *testing.F) {
	for _, seed := range []string{
		`data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}` + "\n\n" +
			`data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n" + "data: [DONE]\n\n",
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\""}}]}}]}` + "\n\n" +
			`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":-1,"function":{"arguments":":1}"}}]}}]}` + "\n\n",
		`data: {"error":{"message":"overloaded","type":"server_error"}}` + "\n\n",
		"data: {\"choices\":[{\"index\":3,\"delta\":{\"content\":\"x\"}}]}\ndata: {\"choices\":[]}\n\n",
		"data: not json\n\n", ": only a comment\n", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + strings.Repeat("z", 5000) + "\"}}]}\n\n",
	} {
		f.Add([]byte(seed))
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := New(Config{BaseURL: "http://upstream.test/v1", MaxResponseBytes: limit, HTTPClient: &http.Client{Transport: eventStream(body)}})
		if err != nil {
			t.Fatal(err)
		}
		var chunks int
		completion, err := c.Stream(context.Background(), []byte(`{"model":"m","messages":[]}`), CallOptions{}, func(raw []byte, chunk *Chunk) error {
			if !json.Valid(raw) {
				t.Fatalf("chunk %q is not JSON", raw)
			}
			chunks++
			return nil
		})
		if err != nil {
			return
		}
		if !json.Valid(completion.Raw) {
			t.Fatalf("completion %q is not JSON", completion.Raw)
		}
		size := 0
		for _, choice := range completion.Choices {
			size += len(choice.Message.Content)
			for _, call := range choice.Message.ToolCalls {
				size += len(call.Function.Arguments)
				if call.ID == "" {
					t.Fatal("a tool call without an id")
				}
			}
		}
		if size > limit {
			t.Fatalf("assembled %d bytes, over the limit %d", size, limit)
		}
	})
}

// eventStream answers every request with body as a text/event-stream.
type eventStream []byte

func (b eventStream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(bytes.NewReader(b)), Request: req}, nil
}
