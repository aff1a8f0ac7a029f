package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpidp/mcpidp/internal/jsoncut"
)

// Defaults of Limits.
const (
	DefaultMaxToolResultBytes = 1 << 20
	DefaultMaxToolsListBytes  = 1 << 20
)

const (
	// maxOtherBody bounds response bodies that are not a JSON-RPC answer: HTTP error pages, the
	// legacy transport's "Accepted".
	maxOtherBody = 64 << 10
	// maxEventLine bounds the lines of an event stream that are not JSON data (event names, ids,
	// the legacy transport's endpoint URL).
	maxEventLine = 64 << 10
	// listSlack is room for the JSON-RPC envelope around a tools/list result.
	listSlack = 4 << 10
)

// Limits bound what a session keeps of a server's answers, whatever the server sends: they are
// enforced while the answer streams in, so an answer far larger is never held in memory.
type Limits struct {
	// MaxToolResultBytes is how much of a tools/call answer is kept. Past it, long strings (text,
	// base64 data, structured content) are cut, each ending with a marker that starts with
	// "…[truncated"; an answer that is still more than twice as large (deep structure, countless
	// small values) is an error. Default DefaultMaxToolResultBytes.
	MaxToolResultBytes int64
	// MaxToolsListBytes bounds the tool list of a server, all pages together; a larger one is an
	// error, as cutting descriptions and schemas would change what the tools mean. Default
	// DefaultMaxToolsListBytes.
	MaxToolsListBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxToolResultBytes <= 0 {
		l.MaxToolResultBytes = DefaultMaxToolResultBytes
	}
	if l.MaxToolsListBytes <= 0 {
		l.MaxToolsListBytes = DefaultMaxToolsListBytes
	}
	return l
}

// ToolResultMarker is the text that ends a value cut from a tool result.
func ToolResultMarker(size, kept int64) string {
	return fmt.Sprintf("%s: the tool returned %d bytes, mcpidp keeps %d]", jsoncut.MarkerPrefix, size, kept)
}

// cutCeiling is where cutting gives up: room for the kept bytes, the markers and the structure
// around them.
func cutCeiling(budget int64) int64 { return 2*budget + 64<<10 }

// toolResultOptions cuts a tools/call answer.
func (l Limits) toolResultOptions() jsoncut.Options {
	return jsoncut.Options{
		Budget:     l.MaxToolResultBytes,
		Ceiling:    cutCeiling(l.MaxToolResultBytes),
		MarkerFunc: func(size int64) string { return ToolResultMarker(size, l.MaxToolResultBytes) },
	}
}

// streamOptions cuts answers with no request of ours to say what they are: every message on the
// legacy transport's stream, and the answers mcp-go's client reads (initialize). Its budget lets
// both a whole tool list and a whole tool result through, which the session then holds to their
// own limits.
func (l Limits) streamOptions() jsoncut.Options {
	budget := max(l.MaxToolResultBytes, l.MaxToolsListBytes)
	return jsoncut.Options{
		Budget:  budget,
		Ceiling: cutCeiling(budget),
		MarkerFunc: func(size int64) string {
			return fmt.Sprintf("%s: the MCP server sent %d bytes, mcpidp keeps %d]", jsoncut.MarkerPrefix, size, budget)
		},
	}
}

// responseBound is the bound a request puts on its answer, carried in the request's context to
// the transport. It records why the answer was refused: mcp-go reports a broken event stream only
// as a missing response.
type responseBound struct {
	opts jsoncut.Options
	// tooLarge is the error a request returns when the answer outgrew opts.Ceiling.
	tooLarge error

	mu  sync.Mutex
	err error
}

type boundKey struct{}

// withBound bounds the answer of a request for method.
func (s *Session) withBound(ctx context.Context, method string) (context.Context, *responseBound) {
	var b *responseBound
	switch method {
	case string(mcp.MethodToolsCall):
		opts := s.limits.toolResultOptions()
		b = &responseBound{opts: opts,
			tooLarge: fmt.Errorf("the result is larger than %d bytes even with its long values cut", opts.Ceiling)}
	case string(mcp.MethodToolsList):
		// No cutting: past the limit the list is refused (Tools adds the pages up).
		b = &responseBound{opts: jsoncut.Options{Ceiling: s.limits.MaxToolsListBytes + listSlack},
			tooLarge: fmt.Errorf("the tool list is larger than %d bytes", s.limits.MaxToolsListBytes)}
	default:
		return ctx, nil
	}
	return context.WithValue(ctx, boundKey{}, b), b
}

// failure returns the error to report instead of err when the answer was refused as too large.
func (b *responseBound) failure(err error) error {
	if b == nil || err == nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		return err
	}
	return b.tooLarge
}

func (b *responseBound) observe(err error) {
	if errors.Is(err, jsoncut.ErrTooLarge) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.err == nil {
			b.err = err
		}
	}
}

// boundBody replaces resp.Body with a reader that holds the answer to the bound in ctx, or to the
// stream bound.
func (t *authTransport) boundBody(ctx context.Context, resp *http.Response) {
	b, _ := ctx.Value(boundKey{}).(*responseBound)
	if b == nil {
		b = &responseBound{opts: t.limits.streamOptions()}
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var r io.Reader
	switch {
	case resp.StatusCode != http.StatusOK:
		r = io.LimitReader(resp.Body, maxOtherBody)
	case mediaType == "application/json":
		r = jsoncut.NewReader(resp.Body, b.opts)
	case mediaType == "text/event-stream":
		r = jsoncut.NewEventStreamReader(resp.Body, b.opts, maxEventLine)
	default:
		r = io.LimitReader(resp.Body, maxOtherBody)
	}
	resp.Body = &boundedBody{r: r, body: resp.Body, bound: b}
	resp.ContentLength = -1
}

type boundedBody struct {
	r     io.Reader
	body  io.ReadCloser
	bound *responseBound
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.bound.observe(err)
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.body.Close() }

// boundResult holds a tools/call result that came over the legacy transport, whose stream is cut
// to the larger stream bound, to the tool result limit. A value the stream already cut is cut
// again, its marker then giving the size that reached this point.
func (s *Session) boundResult(raw json.RawMessage) json.RawMessage {
	if s.transportName != TransportSSE || int64(len(raw)) <= s.limits.MaxToolResultBytes {
		return raw
	}
	c := jsoncut.New(s.limits.toolResultOptions())
	if _, err := c.Write(raw); err != nil {
		return raw
	}
	out := c.Take()
	if err := c.Close(); err != nil {
		return raw
	}
	return json.RawMessage(out)
}
