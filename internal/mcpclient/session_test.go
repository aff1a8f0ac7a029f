package mcpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcptest"
)

// A server that restarts between two calls of one session forgets the session: the Streamable
// HTTP one answers 404 for it, the legacy SSE one drops the stream and refuses the old endpoint.
// The session opens a new one and both calls run, each exactly once.
func TestSessionSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		transport mcptest.Transport
		want      string
	}{
		{"streamable-http", mcptest.StreamableHTTP, TransportStreamableHTTP},
		{"sse", mcptest.SSE, TransportSSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mcptest.NewRestartable(t, tc.transport)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := Connect(ctx, Options{HTTPClient: &http.Client{}}, Server{URL: srv.URL})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			require.Equal(t, tc.want, s.Transport())

			res, err := s.CallTool(ctx, "echo", []byte(`{"message":"one"}`))
			require.NoError(t, err)
			require.Equal(t, "echo: one", res.Text)

			srv.Restart()
			res, err = s.CallTool(ctx, "echo", []byte(`{"message":"two"}`))
			require.NoError(t, err)
			require.Equal(t, "echo: two", res.Text)

			srv.Restart()
			res, err = s.CallTool(ctx, "echo", []byte(`{"message":"three"}`))
			require.NoError(t, err, "every restart gets a new session")
			require.Equal(t, "echo: three", res.Text)
			require.Equal(t, []string{"one", "two", "three"}, srv.Calls("echo"))
		})
	}
}

// A server that keeps forgetting the session is not asked forever: one new session per request.
func TestSessionReconnectsOncePerRequest(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		inits int
	)
	mcpSrv := server.NewStreamableHTTPServer(newTestMCPServer(0), server.WithStateful(true))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), `"tools/call"`) {
			http.Error(w, "session not found", http.StatusNotFound) // forgets the session at once
			return
		}
		if strings.Contains(string(body), `"initialize"`) {
			mu.Lock()
			inits++
			mu.Unlock()
		}
		mcpSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, Options{HTTPClient: &http.Client{}}, Server{URL: ts.URL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.CallTool(ctx, "echo", []byte(`{"message":"x"}`))
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, inits, "the first session and one new one")
}

// tokenGate is an MCP server that wants a bearer token from an allowed set, answering 401 with a
// challenge otherwise.
type tokenGate struct {
	mu      sync.Mutex
	allowed map[string]bool
	calls   int // tools/call requests that got through
}

func newTokenGate(t *testing.T, tokens ...string) (*tokenGate, string) {
	g := &tokenGate{allowed: map[string]bool{}}
	for _, tok := range tokens {
		g.allowed[tok] = true
	}
	mcpSrv := server.NewStreamableHTTPServer(newTestMCPServer(0), server.WithStateful(true))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		ok := g.allowed[r.Header.Get("Authorization")]
		g.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="http://example.com/prm"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mcpSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return g, ts.URL
}

func (g *tokenGate) set(tokens ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.allowed = map[string]bool{}
	for _, tok := range tokens {
		g.allowed[tok] = true
	}
}

// userCredentials plays the OAuth engine: a current token, and a refresh that replaces it.
type userCredentials struct {
	mu       sync.Mutex
	token    string
	next     string // what a refresh gives
	fail     error  // what a refresh fails with
	rejected []string
}

func (c *userCredentials) options() Options {
	return Options{
		HTTPClient: &http.Client{},
		AuthorizeFunc: func(_ context.Context, _ string, req *http.Request) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			req.Header.Set("Authorization", "Bearer "+c.token)
			return nil
		},
		UnauthorizedFunc: func(_ context.Context, _ string, authorization string) (bool, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.rejected = append(c.rejected, authorization)
			if c.fail != nil {
				return false, c.fail
			}
			c.token = c.next
			return true, nil
		},
	}
}

// A token revoked in the middle of a session: the call is refused with 401, the credentials are
// renewed once and the call is sent again, and runs once.
func TestSessionRenewsCredentialsOnceOn401(t *testing.T) {
	t.Parallel()
	gate, url := newTokenGate(t, "Bearer one")
	creds := &userCredentials{token: "one", next: "two"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, creds.options(), Server{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	res, err := s.CallTool(ctx, "echo", []byte(`{"message":"a"}`))
	require.NoError(t, err)
	require.Equal(t, "echo: a", res.Text)
	require.Empty(t, creds.rejected)

	gate.set("Bearer two") // "one" revoked
	res, err = s.CallTool(ctx, "echo", []byte(`{"message":"b"}`))
	require.NoError(t, err)
	require.Equal(t, "echo: b", res.Text)
	require.Equal(t, []string{"Bearer one"}, creds.rejected, "told once which token was refused")

	// A renewed token the server refuses too is a challenge, after one renewal.
	creds.next = "three"
	gate.set()
	_, err = s.CallTool(ctx, "echo", []byte(`{"message":"c"}`))
	var ch *AuthChallengeError
	require.ErrorAs(t, err, &ch)
	require.Equal(t, http.StatusUnauthorized, ch.StatusCode)
	require.NoError(t, ch.RenewErr)
	require.Equal(t, []string{"Bearer one", "Bearer two"}, creds.rejected)
}

// When the credentials cannot be renewed, the challenge says why.
func TestSessionChallengeCarriesRenewError(t *testing.T) {
	t.Parallel()
	gate, url := newTokenGate(t, "Bearer one")
	refreshDown := errors.New("token endpoint answered HTTP 503")
	creds := &userCredentials{token: "one", fail: refreshDown}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, creds.options(), Server{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	gate.set()
	_, err = s.Tools(ctx)
	var ch *AuthChallengeError
	require.ErrorAs(t, err, &ch)
	require.ErrorIs(t, ch.RenewErr, refreshDown)
	require.Len(t, creds.rejected, 1)

	// Connect too renews before it gives up.
	gate.set("Bearer two")
	creds.fail, creds.next = nil, "two"
	s2, err := Connect(ctx, creds.options(), Server{URL: url})
	require.NoError(t, err)
	_ = s2.Close()
	require.Len(t, creds.rejected, 2)
}
