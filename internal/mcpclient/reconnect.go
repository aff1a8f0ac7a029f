package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
)

// errSessionClosed is returned by requests made on a closed Session.
var errSessionClosed = errors.New("MCP session is closed")

// link is one initialized connection of a Session to its server. A Session replaces its link when
// the server no longer knows the session.
type link struct {
	client       *client.Client
	transport    transport.Interface
	cancelStream context.CancelFunc    // legacy SSE: ends the stream
	lost         atomic.Pointer[error] // legacy SSE: why the stream ended
	lostCh       chan struct{}         // legacy SSE: closed when the stream ends
	lostOnce     sync.Once
}

// markLost records why a legacy SSE stream ended and wakes the requests waiting for answers
// on it: mcp-go does not fail them, so they would wait out their whole timeout.
func (l *link) markLost(err error) {
	l.lost.Store(&err)
	l.lostOnce.Do(func() { close(l.lostCh) })
}

func (l *link) close() error {
	err := l.client.Close()
	if l.cancelStream != nil {
		l.cancelStream()
	}
	return err
}

// request sends one JSON-RPC request and returns its raw result. It sends the request at most
// twice, and only when the first attempt was certainly not acted on:
//
//   - the server answered 404 for the session (Streamable HTTP: it restarted and forgot it; the
//     specification says to start a new session), or, on the legacy SSE transport, refused the
//     POST with 400 or 404 (the endpoint's session is gone): a new session is opened, through
//     the same credentials, and the request is sent on it. A refused request reached no tool.
//   - the server answered 401 and UnauthorizedFunc renewed the credentials: a 401 is given before
//     the server acts on a request.
//
// A legacy SSE stream that was lost before the request is reconnected first; nothing had been sent.
func (s *Session) request(ctx context.Context, method string, params any) (json.RawMessage, error) {
	reconnected, reauthorized := false, false
	for {
		l, err := s.current()
		if err != nil {
			return nil, err
		}
		if lost := l.lost.Load(); lost != nil {
			if reconnected {
				return nil, *lost
			}
			reconnected = true
			if err := s.reconnect(ctx, l, *lost); err != nil {
				return nil, err
			}
			continue
		}
		rctx, rec := withRecorder(ctx)
		raw, err := s.send(rctx, rec, l, method, params)
		if err == nil {
			return raw, nil
		}
		var lost *AnswerLostError
		if errors.As(err, &lost) {
			return nil, err // accepted by the server: never sent twice
		}
		if !reconnected && ctx.Err() == nil && s.sessionGone(rec, err) {
			reconnected = true
			if err := s.reconnect(ctx, l, err); err != nil {
				return nil, err
			}
			continue
		}
		if !reauthorized && s.renew(ctx, rec, err) {
			reauthorized = true
			continue
		}
		return nil, err
	}
}

// sessionGone reports whether a request failed because the server no longer knows the session.
// mcp-go's Streamable HTTP transport returns ErrSessionTerminated for a 404 answer, and without
// sending anything once it saw one; the legacy SSE endpoint answers an unknown session with 400
// (mcp-go, the TypeScript SDK) or 404 (the Python SDK).
func (s *Session) sessionGone(rec *challengeRecorder, err error) bool {
	if s.transportName == TransportSSE {
		status := rec.refusedStatus()
		return status == http.StatusBadRequest || status == http.StatusNotFound
	}
	return errors.Is(err, transport.ErrSessionTerminated)
}

// renew reports whether err is a 401 that UnauthorizedFunc says new credentials can answer. When
// they cannot be renewed, the reason goes into the challenge.
func (s *Session) renew(ctx context.Context, rec *challengeRecorder, err error) bool {
	var ch *AuthChallengeError
	if s.unauthorized == nil || !errors.As(err, &ch) || ch.StatusCode != http.StatusUnauthorized || ctx.Err() != nil {
		return false
	}
	retry, renewErr := s.unauthorized(ctx, s.serverURL, rec.sent())
	if !retry {
		ch.RenewErr = renewErr
	}
	return retry
}

// authorized runs dial, and once more when it met a 401 that renew says new credentials can
// answer.
func (s *Session) authorized(ctx context.Context, dial func(ctx context.Context, rec *challengeRecorder) (*link, error)) (*link, error) {
	for reauthorized := false; ; reauthorized = true {
		rctx, rec := withRecorder(ctx)
		l, err := dial(rctx, rec)
		if err == nil || reauthorized || !s.renew(ctx, rec, err) {
			return l, err
		}
	}
}

// current returns the session's link.
func (s *Session) current() (*link, error) {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	if s.closed {
		return nil, errSessionClosed
	}
	return s.link, nil
}

// reconnect replaces old, the link whose session the server forgot (why), by a new one on the
// same transport, unless another request replaced it already. A login challenge met on the way is
// returned as is.
func (s *Session) reconnect(ctx context.Context, old *link, why error) error {
	s.reconnectMu.Lock()
	defer s.reconnectMu.Unlock()
	if cur, err := s.current(); err != nil || cur != old {
		return err
	}
	s.logger.InfoContext(ctx, "mcpclient: MCP server lost the session, opening a new one",
		slog.String("server_url", s.serverURL), slog.String("transport", s.transportName), slog.String("reason", why.Error()))
	l, err := s.authorized(ctx, func(ctx context.Context, rec *challengeRecorder) (*link, error) {
		var (
			l   *link
			err error
		)
		if s.transportName == TransportSSE {
			l, err = s.connectSSE(ctx, s.httpClient, s.info)
		} else {
			l, err = s.connectStreamable(ctx, s.httpClient, s.info)
		}
		if challenge := authChallenge(rec, err); challenge != nil {
			return nil, challenge
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w: %w", ctxErr, err)
			}
			return nil, fmt.Errorf("error reconnecting to MCP server %s (%v): %w", s.serverURL, why, err)
		}
		return l, nil
	})
	if err != nil {
		return err
	}
	s.linkMu.Lock()
	if s.closed {
		s.linkMu.Unlock()
		_ = l.close()
		return errSessionClosed
	}
	s.link = l
	s.linkMu.Unlock()
	_ = old.close()
	return nil
}
