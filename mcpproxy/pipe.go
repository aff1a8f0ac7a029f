package mcpproxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// servePipe runs serve as if it were an HTTP handler and returns its answer
// as an *http.Response as soon as the headers are written, with a body that
// streams what serve writes after them. Closing the body early (or the
// request's context ending) cancels serve's context.
func servePipe(req *http.Request, serve func(ctx context.Context, w http.ResponseWriter)) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer cancel()
		serve(ctx, w)
		w.WriteHeader(http.StatusOK) // no-op unless serve wrote nothing
		_ = pw.Close()
	}()
	select {
	case <-w.ready:
	case <-ctx.Done():
		_ = pr.CloseWithError(ctx.Err())
		return nil, context.Cause(ctx)
	}
	// An answer that says its length (a JSON completion does) ends for the
	// reader after that many bytes, as it would on the wire: the handler may
	// still be closing its MCP sessions, and the caller need not wait for it.
	length := int64(-1)
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		length = n
	}
	return &http.Response{
		Status:        http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          &pipeBody{pr: pr, cancel: cancel, remaining: length},
		ContentLength: length,
		Request:       req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of servePipe.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	ready  chan struct{}
	once   sync.Once
	status int
	sent   http.Header
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush implements http.Flusher: a pipe has no buffer, every Write is
// already in the reader's hands.
func (w *pipeWriter) Flush() {}

type pipeBody struct {
	pr        *io.PipeReader
	cancel    context.CancelFunc
	remaining int64 // bytes the answer still has; -1 when it did not say
}

func (b *pipeBody) Read(p []byte) (int, error) {
	if b.remaining < 0 {
		return b.pr.Read(p)
	}
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.pr.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		// The handler ended before writing what it announced.
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *pipeBody) Close() error {
	b.cancel()
	return b.pr.CloseWithError(io.ErrClosedPipe)
}
