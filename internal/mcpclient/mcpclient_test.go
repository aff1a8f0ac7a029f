package mcpclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"
)

// newTestMCPServer builds an MCP server with a few tools; pageSize > 0 makes tools/list paginate.
func newTestMCPServer(pageSize int) *server.MCPServer {
	opts := []server.ServerOption{server.WithToolCapabilities(false)}
	if pageSize > 0 {
		opts = append(opts, server.WithPaginationLimit(pageSize))
	}
	s := server.NewMCPServer("test-server", "1.0.0", opts...)
	s.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Echoes the message back."),
		mcp.WithString("message", mcp.Required(), mcp.Description("What to echo")),
		mcp.WithReadOnlyHintAnnotation(true),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		msg, err := req.RequireString("message")
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		return mcp.NewToolResultText("echo: " + msg), nil
	})
	s.AddTool(mcp.NewTool("fail", mcp.WithDescription("Always fails."), mcp.WithIdempotentHintAnnotation(true)),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("the tool broke"), nil
		})
	s.AddTool(mcp.NewTool("picture", mcp.WithDescription("Returns a picture and a resource.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				mcp.NewTextContent("here it is"),
				mcp.NewImageContent(base64.StdEncoding.EncodeToString(make([]byte, 1234)), "image/png"),
				mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: "file:///notes.txt", MIMEType: "text/plain", Text: "the notes"}),
			}}, nil
		})
	s.AddTool(mcp.NewTool("delete_everything", mcp.WithDescription("Dangerous.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("deleted"), nil
		})
	s.AddTool(mcp.NewTool("structured", mcp.WithDescription("Structured only.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"count": 3}}, nil
		})
	return s
}

type testBundle struct {
	url      string
	requests *requestLog
}

// requestLog records what reached a test server.
type requestLog struct {
	mu      sync.Mutex
	headers []http.Header
}

func (l *requestLog) add(h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.headers = append(l.headers, h.Clone())
}

func (l *requestLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.headers...)
}

func logging(log *requestLog, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r.Header)
		next.ServeHTTP(w, r)
	})
}

func startStreamable(t *testing.T, pageSize int, wrap func(http.Handler) http.Handler) *testBundle {
	t.Helper()
	log := &requestLog{}
	var h http.Handler = server.NewStreamableHTTPServer(newTestMCPServer(pageSize))
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(logging(log, h))
	t.Cleanup(ts.Close)
	return &testBundle{url: ts.URL + "/mcp", requests: log}
}

func startSSE(t *testing.T, wrap func(http.Handler) http.Handler) *testBundle {
	t.Helper()
	log := &requestLog{}
	var h http.Handler = server.NewSSEServer(newTestMCPServer(0))
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(logging(log, h))
	t.Cleanup(ts.Close)
	return &testBundle{url: ts.URL + "/sse", requests: log}
}

func testOptions() Options {
	return Options{HTTPClient: &http.Client{}}
}

func connect(t *testing.T, opts Options, srv Server) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, opts, srv)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func toolNames(tools []Tool) []string {
	names := make([]string, 0, len(tools))
	for _, tool := range tools {
		names = append(names, tool.Name)
	}
	return names
}

func TestSessionBothTransports(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		transport string
		start     func(t *testing.T) *testBundle
	}{
		{TransportStreamableHTTP, func(t *testing.T) *testBundle { return startStreamable(t, 2, nil) }},
		{TransportSSE, func(t *testing.T) *testBundle { return startSSE(t, nil) }},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			t.Parallel()

			t.Run("ListAndCall", func(t *testing.T) {
				t.Parallel()
				bundle := tc.start(t)
				s := connect(t, testOptions(), Server{URL: bundle.url})
				require.Equal(t, tc.transport, s.Transport())
				require.Equal(t, bundle.url, s.ServerURL())

				ctx := context.Background()
				tools, err := s.Tools(ctx)
				require.NoError(t, err)
				require.ElementsMatch(t, []string{"echo", "fail", "picture", "delete_everything", "structured"}, toolNames(tools))
				byName := map[string]Tool{}
				for _, tool := range tools {
					byName[tool.Name] = tool
				}
				echo := byName["echo"]
				require.Equal(t, ToolAnnotations{ReadOnlyHint: true}, echo.Annotations)
				require.Equal(t, ToolAnnotations{IdempotentHint: true}, byName["fail"].Annotations)
				require.True(t, byName["fail"].Annotations.SafeToRepeat(), "idempotent tools are safe to call again")
				require.False(t, byName["delete_everything"].Annotations.SafeToRepeat(), "tools without hints are not")
				require.Equal(t, "Echoes the message back.", echo.Description)
				require.JSONEq(t, `{"type":"object","properties":{"message":{"type":"string","description":"What to echo"}},"required":["message"]}`, string(echo.InputSchema))

				res, err := s.CallTool(ctx, "echo", json.RawMessage(`{"message":"hello"}`))
				require.NoError(t, err)
				require.False(t, res.IsError)
				require.Equal(t, "echo: hello", res.Text)
				require.JSONEq(t, `{"content":[{"type":"text","text":"echo: hello"}]}`, string(res.Raw))
			})

			t.Run("ErrorResult", func(t *testing.T) {
				t.Parallel()
				s := connect(t, testOptions(), Server{URL: tc.start(t).url})
				res, err := s.CallTool(context.Background(), "fail", nil)
				require.NoError(t, err)
				require.True(t, res.IsError)
				require.Equal(t, "the tool broke", res.Text)
			})

			t.Run("UnknownTool", func(t *testing.T) {
				t.Parallel()
				s := connect(t, testOptions(), Server{URL: tc.start(t).url})
				_, err := s.CallTool(context.Background(), "no_such_tool", nil)
				require.Error(t, err)
				require.Contains(t, err.Error(), `error calling tool "no_such_tool"`)
			})

			t.Run("HeadersOnEveryRequest", func(t *testing.T) {
				t.Parallel()
				bundle := tc.start(t)
				var authorized int
				var mu sync.Mutex
				opts := testOptions()
				opts.AuthorizeFunc = func(_ context.Context, serverURL string, req *http.Request) error {
					require.Equal(t, bundle.url, serverURL)
					mu.Lock()
					authorized++
					mu.Unlock()
					req.Header.Set("Authorization", "Bearer tok")
					return nil
				}
				s := connect(t, opts, Server{URL: bundle.url, Headers: map[string]string{"x-api-key": "k1"}})
				_, err := s.CallTool(context.Background(), "echo", json.RawMessage(`{"message":"x"}`))
				require.NoError(t, err)

				var reached int
				// Every request, including the SSE stream's GET and the fallback probe, carries both.
				for _, h := range bundle.requests.all() {
					reached++
					require.Equal(t, "k1", h.Get("X-Api-Key"))
					require.Equal(t, "Bearer tok", h.Get("Authorization"))
				}
				require.GreaterOrEqual(t, reached, 3) // initialize, initialized, tools/call
				mu.Lock()
				require.GreaterOrEqual(t, authorized, reached)
				mu.Unlock()
			})
		})
	}
}

func TestPaginationAndRichContent(t *testing.T) {
	t.Parallel()

	bundle := startStreamable(t, 1, nil)
	s := connect(t, testOptions(), Server{URL: bundle.url})
	ctx := context.Background()
	tools, err := s.Tools(ctx)
	require.NoError(t, err)
	require.Len(t, tools, 5, "one tool per page, all pages followed")

	res, err := s.CallTool(ctx, "picture", nil)
	require.NoError(t, err)
	require.Equal(t, "here it is\n[image image/png, 1234 bytes: attached below]\nthe notes", res.Text)
	require.Equal(t, []Image{{MIMEType: "image/png", Data: make([]byte, 1234)}}, res.Images)
	require.Len(t, res.Resources, 1)
	require.JSONEq(t, `{"type":"resource","resource":{"uri":"file:///notes.txt","mimeType":"text/plain","text":"the notes"}}`, string(res.Resources[0]))

	res, err = s.CallTool(ctx, "structured", json.RawMessage(`{}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"count":3}`, res.Text)
	require.JSONEq(t, `{"count":3}`, string(res.StructuredContent))

	_, err = s.CallTool(ctx, "echo", json.RawMessage(`["not","an","object"]`))
	require.ErrorContains(t, err, "must be a JSON object")
}

func TestToolsCached(t *testing.T) {
	t.Parallel()

	bundle := startStreamable(t, 0, nil)
	s := connect(t, testOptions(), Server{URL: bundle.url})
	ctx := context.Background()
	first, err := s.Tools(ctx)
	require.NoError(t, err)
	before := len(bundle.requests.all())
	second, err := s.Tools(ctx)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.Len(t, bundle.requests.all(), before, "second Tools call must not reach the server")
}

func TestAllowedTools(t *testing.T) {
	t.Parallel()

	for _, start := range []func(t *testing.T) *testBundle{
		func(t *testing.T) *testBundle { return startStreamable(t, 0, nil) },
		func(t *testing.T) *testBundle { return startSSE(t, nil) },
	} {
		bundle := start(t)
		s := connect(t, testOptions(), Server{URL: bundle.url, AllowedTools: []string{"echo", "fail", "not_on_server"}})
		ctx := context.Background()
		tools, err := s.Tools(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"echo", "fail"}, toolNames(tools))

		before := len(bundle.requests.all())
		_, err = s.CallTool(ctx, "delete_everything", nil)
		require.ErrorContains(t, err, `tool "delete_everything"`)
		require.ErrorContains(t, err, "not in allowed_tools")
		require.Len(t, bundle.requests.all(), before, "a refused call must not reach the server")

		res, err := s.CallTool(ctx, "echo", json.RawMessage(`{"message":"ok"}`))
		require.NoError(t, err)
		require.Equal(t, "echo: ok", res.Text)
	}
}

// requireBearer answers 401 with a challenge unless the request carries the token.
func requireBearer(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="http://as.example/.well-known/oauth-protected-resource"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func bearer(token string) AuthorizeFunc {
	return func(_ context.Context, _ string, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

func TestAuthChallenge(t *testing.T) {
	t.Parallel()

	const wantHeader = `Bearer resource_metadata="http://as.example/.well-known/oauth-protected-resource"`

	t.Run("401OnConnect", func(t *testing.T) {
		t.Parallel()
		for _, bundle := range []*testBundle{
			startStreamable(t, 0, requireBearer("good")),
			startSSE(t, requireBearer("good")),
		} {
			opts := testOptions()
			opts.AuthorizeFunc = bearer("stale")
			_, err := Connect(context.Background(), opts, Server{URL: bundle.url})
			var challenge *AuthChallengeError
			require.ErrorAs(t, err, &challenge)
			require.Equal(t, bundle.url, challenge.ServerURL)
			require.Equal(t, http.StatusUnauthorized, challenge.StatusCode)
			require.Equal(t, wantHeader, challenge.WWWAuthenticate)

			opts.AuthorizeFunc = bearer("good")
			s := connect(t, opts, Server{URL: bundle.url})
			_, err = s.Tools(context.Background())
			require.NoError(t, err)
		}
	})

	t.Run("403InsufficientScopeOnCall", func(t *testing.T) {
		t.Parallel()
		const scopeHeader = `Bearer error="insufficient_scope", scope="files:write", resource_metadata="http://as.example/prm"`
		bundle := startStreamable(t, 0, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte(`"tools/call"`)) && r.Header.Get("Authorization") != "Bearer admin" {
					w.Header().Set("WWW-Authenticate", scopeHeader)
					http.Error(w, "forbidden", http.StatusForbidden)
					return
				}
				next.ServeHTTP(w, r)
			})
		})
		opts := testOptions()
		opts.AuthorizeFunc = bearer("reader")
		s := connect(t, opts, Server{URL: bundle.url})
		_, err := s.Tools(context.Background())
		require.NoError(t, err)
		_, err = s.CallTool(context.Background(), "echo", json.RawMessage(`{"message":"x"}`))
		var challenge *AuthChallengeError
		require.ErrorAs(t, err, &challenge)
		require.Equal(t, http.StatusForbidden, challenge.StatusCode)
		require.Equal(t, scopeHeader, challenge.WWWAuthenticate)
	})

	t.Run("403InsufficientScopeWithJSONBodyOnCall", func(t *testing.T) {
		t.Parallel()
		// OAuth resource servers answer with an OAuth error object, which mcp-go would otherwise
		// report as a JSON-RPC error.
		const scopeHeader = `Bearer scope="files:read files:write", error="insufficient_scope"`
		bundle := startStreamable(t, 0, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte(`"tools/call"`)) {
					w.Header().Set("WWW-Authenticate", scopeHeader)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusForbidden)
					_, _ = io.WriteString(w, `{"error":"insufficient_scope","error_description":"Token has insufficient scope"}`)
					return
				}
				next.ServeHTTP(w, r)
			})
		})
		s := connect(t, testOptions(), Server{URL: bundle.url})
		_, err := s.CallTool(context.Background(), "echo", json.RawMessage(`{"message":"x"}`))
		var challenge *AuthChallengeError
		require.ErrorAs(t, err, &challenge)
		require.Equal(t, http.StatusForbidden, challenge.StatusCode)
		require.Equal(t, scopeHeader, challenge.WWWAuthenticate)
	})

	t.Run("403InsufficientScopeOnConnect", func(t *testing.T) {
		t.Parallel()
		// mcp-go takes any 4xx to initialize for a legacy server; the challenge must win.
		const scopeHeader = `Bearer error="insufficient_scope", scope="admin"`
		bundle := startStreamable(t, 0, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("WWW-Authenticate", scopeHeader)
				http.Error(w, "forbidden", http.StatusForbidden)
			})
		})
		_, err := Connect(context.Background(), testOptions(), Server{URL: bundle.url})
		var challenge *AuthChallengeError
		require.ErrorAs(t, err, &challenge)
		require.Equal(t, http.StatusForbidden, challenge.StatusCode)
		require.Equal(t, scopeHeader, challenge.WWWAuthenticate)
		require.Len(t, bundle.requests.all(), 1, "no legacy SSE fallback after a challenge")
	})

	t.Run("403WithoutChallengeIsPlainError", func(t *testing.T) {
		t.Parallel()
		forbidden := func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "forbidden", http.StatusForbidden)
			})
		}
		bundle := startStreamable(t, 0, forbidden)
		_, err := Connect(context.Background(), testOptions(), Server{URL: bundle.url})
		require.Error(t, err)
		var challenge *AuthChallengeError
		require.False(t, errors.As(err, &challenge))
		require.ErrorContains(t, err, "error connecting to MCP server "+bundle.url)
	})

	t.Run("AuthorizeFuncChallenge", func(t *testing.T) {
		t.Parallel()
		bundle := startStreamable(t, 0, nil)
		want := &AuthChallengeError{ServerURL: bundle.url, StatusCode: http.StatusUnauthorized}
		opts := testOptions()
		opts.AuthorizeFunc = func(context.Context, string, *http.Request) error { return want }
		_, err := Connect(context.Background(), opts, Server{URL: bundle.url})
		var challenge *AuthChallengeError
		require.ErrorAs(t, err, &challenge)
		require.Same(t, want, challenge)
		require.Empty(t, bundle.requests.all(), "nothing may be sent without a token")
	})
}

func TestConnectFailures(t *testing.T) {
	t.Parallel()

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		url := fmt.Sprintf("http://%s/mcp", l.Addr())
		require.NoError(t, l.Close())

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err = Connect(ctx, testOptions(), Server{URL: url})
		require.Error(t, err)
		require.Less(t, time.Since(start), 2*time.Second)
		require.ErrorContains(t, err, "error connecting to MCP server "+url+": ")
		require.ErrorContains(t, err, "connection refused")
	})

	t.Run("StreamableHangRespectsDeadline", func(t *testing.T) {
		t.Parallel()
		ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			// Only once the body is read does the server notice the client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}))
		t.Cleanup(ts.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Connect(ctx, testOptions(), Server{URL: ts.URL + "/mcp"})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "error connecting to MCP server "+ts.URL+"/mcp")
		require.Less(t, time.Since(start), 3*time.Second)
	})

	t.Run("SSEWithoutEndpointRespectsDeadline", func(t *testing.T) {
		t.Parallel()
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		t.Cleanup(ts.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Connect(ctx, testOptions(), Server{URL: ts.URL + "/sse"})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 3*time.Second)
	})

	t.Run("NeitherTransport", func(t *testing.T) {
		t.Parallel()
		ts := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(ts.Close)
		_, err := Connect(context.Background(), testOptions(), Server{URL: ts.URL + "/mcp"})
		require.ErrorContains(t, err, "error connecting to MCP server "+ts.URL+"/mcp")
		require.ErrorContains(t, err, "legacy SSE")
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		_, err := Connect(ctx, Options{}, Server{URL: "https://mcp.example.com/mcp"})
		require.ErrorContains(t, err, "http client is required")
		_, err = Connect(ctx, testOptions(), Server{URL: "ftp://mcp.example.com/mcp"})
		require.ErrorContains(t, err, "scheme must be http or https")
		_, err = Connect(ctx, testOptions(), Server{URL: "https://mcp.example.com/mcp", Headers: map[string]string{"Mcp-Session-Id": "x"}})
		require.ErrorContains(t, err, "cannot be overridden")
		_, err = Connect(ctx, testOptions(), Server{URL: "https://mcp.example.com/mcp", Headers: map[string]string{"X-Bad": "a\nb"}})
		require.ErrorContains(t, err, `invalid value for header "X-Bad"`)
	})
}

func TestSSESessionOutlivesConnectContext(t *testing.T) {
	t.Parallel()

	bundle := startSSE(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s, err := Connect(ctx, testOptions(), Server{URL: bundle.url})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	cancel() // the SSE stream must not die with Connect's ctx

	callCtx, callCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer callCancel()
	res, err := s.CallTool(callCtx, "echo", json.RawMessage(`{"message":"still here"}`))
	require.NoError(t, err)
	require.Equal(t, "echo: still here", res.Text)
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()

	s := connect(t, testOptions(), Server{URL: startStreamable(t, 0, nil).url})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			msg := fmt.Sprintf("m%d", i)
			res, err := s.CallTool(context.Background(), "echo", json.RawMessage(`{"message":"`+msg+`"}`))
			if err != nil {
				errs <- err
				return
			}
			if res.Text != "echo: "+msg {
				errs <- fmt.Errorf("call %d got %q", i, res.Text)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestRenderResult(t *testing.T) {
	t.Parallel()

	res, err := renderResult(json.RawMessage(`{"content":[
		{"type":"audio","data":"AAAA","mimeType":"audio/wav"},
		{"type":"resource","resource":{"uri":"file:///b.bin","mimeType":"application/octet-stream","blob":"AAE="}},
		{"type":"resource_link","uri":"file:///c.txt","name":"c","mimeType":"text/plain"},
		{"type":"future_thing"}],"isError":true}`))
	require.NoError(t, err)
	require.True(t, res.IsError)
	require.Equal(t, strings.Join([]string{
		"[audio audio/wav, 3 bytes — not shown]",
		"[resource file:///b.bin application/octet-stream, 2 bytes — not shown]",
		"[resource link c: file:///c.txt]",
		"[future_thing content]",
	}, "\n"), res.Text)
	require.Empty(t, res.Images, "audio is not an image")
	require.Len(t, res.Resources, 2)
	require.JSONEq(t, `{"type":"resource","resource":{"uri":"file:///b.bin","mimeType":"application/octet-stream","blob":"AAE="}}`, string(res.Resources[0]))
	require.JSONEq(t, `{"type":"resource_link","uri":"file:///c.txt","name":"c","mimeType":"text/plain"}`, string(res.Resources[1]))
}

func TestRenderResultStructuredContent(t *testing.T) {
	t.Parallel()

	res, err := renderResult(json.RawMessage(`{"content":[{"type":"text","text":"3 items"}],
		"structuredContent":{"items":[1, 2, 3]}}`))
	require.NoError(t, err)
	require.Equal(t, "3 items", res.Text, "the model reads the content; the structure is kept beside it")
	require.JSONEq(t, `{"items":[1,2,3]}`, string(res.StructuredContent))

	res, err = renderResult(json.RawMessage(`{"content":[{"type":"text","text":"x"}],"structuredContent":null}`))
	require.NoError(t, err)
	require.Nil(t, res.StructuredContent)
}

func TestRenderResultImages(t *testing.T) {
	t.Parallel()

	png := []byte("\x89PNG fake")
	b64 := base64.StdEncoding.EncodeToString(png)
	res, err := renderResult(json.RawMessage(`{"content":[
		{"type":"image","data":"` + b64 + `","mimeType":"Image/PNG; charset=x"},
		{"type":"image","data":"` + b64[:8] + `…[truncated 4 bytes]","mimeType":"image/png"},
		{"type":"image","data":"","mimeType":"image/png"},
		{"type":"image","data":"` + strings.TrimRight(b64, "=") + `","mimeType":"image/svg+xml"},
		{"type":"image","data":"` + b64 + `","mimeType":"not a type"}]}`))
	require.NoError(t, err)
	require.Equal(t, strings.Join([]string{
		"[image image/png, 9 bytes: attached below]",
		"[image image/png — invalid data, not shown]",
		"[image image/png — invalid data, not shown]",
		"[image image/svg+xml, 9 bytes — not shown]",
		"[image application/octet-stream, 9 bytes — not shown]",
	}, "\n"), res.Text)
	require.Equal(t, []Image{
		{MIMEType: "image/png", Data: png},
		{MIMEType: "image/svg+xml", Data: png},
		{MIMEType: "application/octet-stream", Data: png},
	}, res.Images, "only valid base64 makes an image; unpadded data is accepted")

	res.KeepImages(1)
	require.Len(t, res.Images, 1)
	require.Equal(t, strings.Join([]string{
		"[image image/png, 9 bytes: attached below]",
		"[image image/png — invalid data, not shown]",
		"[image image/png — invalid data, not shown]",
		"[image image/svg+xml, 9 bytes — over the image limit, not shown]",
		"[image application/octet-stream, 9 bytes — over the image limit, not shown]",
	}, "\n"), res.Text)
	res.KeepImages(0)
	require.Empty(t, res.Images)
	require.True(t, strings.HasPrefix(res.Text, "[image image/png, 9 bytes — over the image limit, not shown]\n"), res.Text)
}

func TestParseAnnotationsIsLenient(t *testing.T) {
	t.Parallel()
	require.Equal(t, ToolAnnotations{ReadOnlyHint: true}, parseAnnotations(json.RawMessage(`{"readOnlyHint":true,"title":"x"}`)))
	for _, raw := range []string{``, `null`, `"read-only"`, `{"readOnlyHint":"yes","idempotentHint":true}`} {
		require.Equal(t, ToolAnnotations{}, parseAnnotations(json.RawMessage(raw)), "malformed annotations %q read as no hints", raw)
	}
}
