package mcpclient

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// A session that answers server requests listens on the standalone GET stream of Streamable HTTP
// (mcp-go's WithContinuousListening), but only once it may need it. A server sends its requests
// on the stream that answers the POST they belong to when it can (the TypeScript SDK always does
// for requests made from a tool; mcp-go does for elicitation), so the GET stream matters only for
// requests sent outside any POST stream: mcp-go sends sampling there, and any server may send
// requests unrelated to a call. Opening it on every session cost one more HTTP request, its
// connection (a stream cut off by Close cannot go back to the pool, so the next session dials a
// new one) and goroutines on both sides, for sessions that mostly live for one quick tools/call.
//
// So the listener's GET is held in the session's RoundTripper until a tools/call has been in
// flight for callListenDelay (a server request made during the call waits that long at most:
// mcp-go queues it until the stream opens, and whoever answers it, a model or a person, takes far
// longer) or the session has lived for sessionListenDelay (a long session listens as before).
// A session closed first never sends it.
const (
	callListenDelay    = 50 * time.Millisecond
	sessionListenDelay = 2 * time.Second
)

// listenGate holds the standalone GET stream of a session until open is called.
type listenGate struct {
	once   sync.Once
	opened chan struct{}
}

func newListenGate() *listenGate {
	return &listenGate{opened: make(chan struct{})}
}

func (g *listenGate) open() {
	g.once.Do(func() { close(g.opened) })
}

func (g *listenGate) isOpen() bool {
	select {
	case <-g.opened:
		return true
	default:
		return false
	}
}

// wait returns once the gate is open, or ctx's error when ctx ends first.
func (g *listenGate) wait(ctx context.Context) error {
	select {
	case <-g.opened:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openDuring opens the gate if the call that returns stop is still in flight after
// callListenDelay.
func (g *listenGate) openDuring() (stop func() bool) {
	if g == nil || g.isOpen() {
		return func() bool { return false }
	}
	return time.AfterFunc(callListenDelay, g.open).Stop
}

// listenGateKey marks the context the listener's requests carry: the one given to the transport's
// Start, which mcp-go uses for the GET stream alone (a GET that resumes a POST's answer carries
// that request's context).
type listenGateKey struct{}

func withListenGate(ctx context.Context, g *listenGate) context.Context {
	return context.WithValue(ctx, listenGateKey{}, g)
}

// holdListen waits until req, if it is the session's standalone GET, may go out.
func holdListen(ctx context.Context, req *http.Request) error {
	if req.Method != http.MethodGet {
		return nil
	}
	g, _ := ctx.Value(listenGateKey{}).(*listenGate)
	if g == nil {
		return nil
	}
	return g.wait(ctx)
}
