package mcpclient

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// A session that answers server requests listens on the standalone GET stream of Streamable HTTP
// (mcp-go's WithContinuousListening) from the moment it is connected: a server may send requests
// there that belong to no POST (mcp-go sends sampling there; the TypeScript and Java SDKs send
// createMessage or elicitInput without relatedRequestId there), and those SDKs drop such a request
// while no standalone stream is open. (Opening the stream lazily, only once a call had run a while,
// was tried for speed and lost exactly those requests; the conformance suite caught it.)
//
// The GET goes out in the background as soon as the session is initialized. A tools/call waits, at
// most listenReadyWait, until that GET has been answered (or has failed) before it goes out, so that
// a tool sending such a request as it starts finds the stream registered. Normally the GET was
// answered long before (a model call lies between listing tools and calling one); the wait matters
// for a call made right after connecting, as a replayed call is.
const listenReadyWait = time.Second

// listenReady tells when a session's standalone GET has been answered. A nil *listenReady (a
// session that answers no server requests, or legacy SSE, which listens on its one stream) is
// always ready.
type listenReady struct {
	once  sync.Once
	ready chan struct{}
}

func newListenReady() *listenReady {
	return &listenReady{ready: make(chan struct{})}
}

// mark records that the GET has been answered, has failed, or will not come.
func (l *listenReady) mark() {
	if l != nil {
		l.once.Do(func() { close(l.ready) })
	}
}

// waitForCall returns once the GET has been answered, ctx ends, or listenReadyWait has passed.
func (l *listenReady) waitForCall(ctx context.Context) {
	if l == nil {
		return
	}
	select {
	case <-l.ready:
		return
	default:
	}
	t := time.NewTimer(listenReadyWait)
	defer t.Stop()
	select {
	case <-l.ready:
	case <-t.C:
	case <-ctx.Done():
	}
}

// listenReadyKey marks the context the listener's requests carry: the one given to the transport's
// Start, which mcp-go uses for the GET stream alone (a GET that resumes a POST's answer carries
// that request's context).
type listenReadyKey struct{}

func withListenReady(ctx context.Context, l *listenReady) context.Context {
	return context.WithValue(ctx, listenReadyKey{}, l)
}

// listenOf returns the session's listenReady when req is its standalone GET, else nil.
func listenOf(ctx context.Context, req *http.Request) *listenReady {
	if req.Method != http.MethodGet {
		return nil
	}
	l, _ := ctx.Value(listenReadyKey{}).(*listenReady)
	return l
}
