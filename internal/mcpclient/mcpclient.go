// Package mcpclient owns the MCP sessions the agent loop talks to: connecting to a remote MCP
// server over Streamable HTTP (falling back to the legacy HTTP+SSE transport), listing and calling
// its tools, recognising when the server wants the user to log in (*AuthChallengeError), and naming
// the tools of several servers as OpenAI function tools (Toolset).
//
// Sessions are built on github.com/mark3labs/mcp-go. Every HTTP request, including the legacy
// transport's long-lived SSE stream, goes through the caller's http.Client (the SSRF guard), wrapped
// by a RoundTripper that adds caller headers and credentials (Options.AuthorizeFunc) and records
// 401/403 challenges from the wire, because mcp-go flattens most HTTP statuses into plain errors.
//
// The handshake is the initialize/initialized one of protocol revisions up to 2025-11-25; the
// stateless 2026-07-28 core (server/discover) is not negotiated, which spares every connection a
// probe that today's servers answer with an error.
package mcpclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/telemetry"
)

const (
	// TransportStreamableHTTP names the Streamable HTTP transport (MCP 2025-03-26 and later).
	TransportStreamableHTTP = "streamable-http"
	// TransportSSE names the legacy HTTP+SSE transport (MCP 2024-11-05).
	TransportSSE = "sse"

	// maxToolPages and maxTools bound what one tools/list may bring in.
	maxToolPages = 100
	maxTools     = 1000
)

// Server is one MCP server as a task or request names it.
type Server struct {
	// URL is the http(s) URL of the MCP server's endpoint. It names the server everywhere (errors,
	// logs, challenges, AuthorizeFunc) and is dialed unless ConnectURL is set.
	URL string
	// ConnectURL, when set, is dialed instead of URL: the same endpoint with what URL leaves out
	// because it must not be shown (a query string carrying a key). Same origin as URL.
	ConnectURL string
	// AllowedTools, when non-empty, is the only tools offered (Tools) and callable (CallTool).
	AllowedTools []string
	// Headers are sent on every request to the server. Transport headers (Accept, Content-Type,
	// Mcp-Session-Id, Mcp-Protocol-Version, …) cannot be overridden; Authorization may be set here
	// for servers using a static key, and is replaced by AuthorizeFunc's when that sets one.
	Headers map[string]string
}

// Options configures how sessions reach servers.
type Options struct {
	// HTTPClient carries every request, including the legacy SSE stream. Required: in production it
	// is the SSRF-guarded client from internal/netguard. Its Transport, CheckRedirect and Jar are
	// kept; its Timeout bounds each Streamable HTTP request but is dropped for the legacy SSE stream,
	// which lives as long as the session. Bound calls with their ctx.
	HTTPClient *http.Client
	// ClientName and ClientVersion identify mcpidp in the initialize handshake. Defaults: "mcpidp",
	// "0.1.0".
	ClientName    string
	ClientVersion string
	// AuthorizeFunc, when set, adds credentials to every request (see AuthorizeFunc).
	AuthorizeFunc AuthorizeFunc
	// UnauthorizedFunc, when set, decides whether a request the server answered with 401 is sent
	// once more (see UnauthorizedFunc).
	UnauthorizedFunc UnauthorizedFunc
	// Logger receives the transports' diagnostics. Default: discard.
	Logger *slog.Logger
	// Limits bound what is kept of the server's answers; zero fields take the defaults.
	Limits Limits
	// TracerProvider traces tools/list and tools/call (client spans with the server's host and the
	// tool's name; never arguments, results, headers or tokens). Optional: no tracing when nil.
	TracerProvider trace.TracerProvider
	// ElicitFunc, when set, answers the server's elicitation/create requests, and the session
	// declares the elicitation capability (form and URL modes). Streamable HTTP only: the legacy
	// SSE transport declares neither capability.
	ElicitFunc ElicitFunc
	// SampleFunc, when set, answers the server's sampling/createMessage requests, and the session
	// declares the sampling capability. Streamable HTTP only.
	SampleFunc SampleFunc
}

func (o *Options) validate() error {
	if o.HTTPClient == nil {
		return errors.New("http client is required")
	}
	return nil
}

// Tool is one tool an MCP server offers.
type Tool struct {
	Name        string
	Description string
	// InputSchema is the tool's JSON Schema exactly as the server sent it.
	InputSchema json.RawMessage
	// Annotations are the server's hints about the tool's behaviour.
	Annotations ToolAnnotations
}

// ToolAnnotations are the MCP tool annotations that mcpidp acts on. A hint
// the server did not give is false, the safe reading.
type ToolAnnotations struct {
	// ReadOnlyHint: the tool does not change its environment.
	ReadOnlyHint bool `json:"readOnlyHint"`
	// IdempotentHint: calling it again with the same arguments has no
	// further effect.
	IdempotentHint bool `json:"idempotentHint"`
}

// SafeToRepeat reports whether the server says a second call with the same
// arguments changes nothing more than the first: the tool is read-only or
// idempotent.
func (a ToolAnnotations) SafeToRepeat() bool { return a.ReadOnlyHint || a.IdempotentHint }

// parseAnnotations reads the hints leniently: malformed annotations are no
// reason to refuse a server's tools, and read as no hints at all.
func parseAnnotations(raw json.RawMessage) ToolAnnotations {
	var a ToolAnnotations
	if json.Unmarshal(raw, &a) != nil {
		return ToolAnnotations{}
	}
	return a
}

// CallResult is the outcome of a tools/call that the server answered.
type CallResult struct {
	// Text is the result's content for a model to read: text blocks and embedded text resources as
	// they are, other blocks as a short bracketed note, joined by newlines. It is written for a
	// caller that attaches Images to the conversation after the tool result: a displayable image is
	// "[image image/png, 1234 bytes: attached below]"; an image that cannot be shown (invalid data, a
	// type vision models do not take, or dropped by KeepImages), audio and binary resources are noted
	// as "not shown" ("[audio audio/wav, 12345 bytes — not shown]"). With no content blocks it is
	// the structuredContent as JSON.
	Text string
	// IsError is the server's isError flag: the tool ran and failed (a result for the model, not a
	// Go error).
	IsError bool
	// Images are the image blocks whose data is valid base64, decoded, in order (any MIME type:
	// ViewableImageType tells which ones a model may be shown).
	Images []Image
	// StructuredContent is the result's structuredContent as the server sent it, if any.
	StructuredContent json.RawMessage
	// Resources are the "resource" (embedded resource) and "resource_link" content blocks, each as
	// the server sent it, in order.
	Resources []json.RawMessage
	// Raw is the whole result object as the server sent it.
	Raw json.RawMessage

	parts []resultPart // Text before joining, so that KeepImages can note images again
}

// Image is one image of a tool result.
type Image struct {
	// MIMEType is the block's mimeType, lowercased and without parameters, or
	// application/octet-stream when it is not a media type.
	MIMEType string
	// Data is the decoded image.
	Data []byte
}

// ViewableImageType reports whether mimeType is one that vision models accept (PNG, JPEG, GIF,
// WebP): the images worth attaching to a model conversation and showing inline.
func ViewableImageType(mimeType string) bool {
	switch mediaType(mimeType) {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// KeepImages keeps the first n Images and drops the rest, whose notes in Text then say they are
// over the image limit. Callers bound how much image data a run stores and sends with it.
func (r *CallResult) KeepImages(n int) {
	if n >= len(r.Images) {
		return
	}
	n = max(n, 0)
	r.Images = r.Images[:n]
	kept := 0
	for i := range r.parts {
		if r.parts[i].image != nil {
			r.parts[i].dropped = kept >= n
			kept++
		}
	}
	r.Text = joinParts(r.parts)
}

// Session is an initialized connection to one MCP server. Its methods are safe for concurrent use.
//
// A session outlives the server's memory of it: when the server answers 404 for the session (it
// restarted) or the legacy SSE stream is lost, the session opens a new one, with the same
// credentials, and sends the request again once (see request).
type Session struct {
	serverURL     string
	dialURL       string // serverURL, or the Server's ConnectURL
	transportName string
	allowed       map[string]bool // nil allows every tool
	httpClient    *http.Client    // the client of the transport in use
	info          mcp.Implementation
	unauthorized  UnauthorizedFunc
	logger        *slog.Logger
	limits        Limits
	tracer        trace.Tracer // nil: no tracing
	nextID        atomic.Int64

	// reconnectMu makes one request at a time open a new link; linkMu guards link and closed.
	reconnectMu sync.Mutex
	linkMu      sync.Mutex
	link        *link
	closed      bool

	toolsMu sync.Mutex
	tools   []Tool // nil until listed

	// elicit and sample answer the server's requests; lifeCtx bounds those answers and ends with
	// the session.
	elicit     ElicitFunc
	sample     SampleFunc
	lifeCtx    context.Context
	cancelLife context.CancelFunc
	closeOnce  sync.Once
	// listen tells when the standalone GET stream is answered (see listen.go); nil when the
	// session answers no server requests or listens on legacy SSE.
	listen *listenReady
}

// Connect opens a session to srv: Streamable HTTP first; when the server answers the initialize
// POST with a 4xx other than an authorization challenge (servers that predate it answer 400, 404 or
// 405), the legacy HTTP+SSE transport at the same URL. A 401, or a 403 with error="insufficient_scope",
// is returned as *AuthChallengeError. Other failures wrap the cause as "error connecting to MCP
// server <url>: …". ctx bounds the connection attempt, not the session's life.
func Connect(ctx context.Context, opts Options, srv Server) (*Session, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("invalid mcpclient options: %w", err)
	}
	if err := validateServerURL(srv.URL); err != nil {
		return nil, err
	}
	dialURL := srv.URL
	if srv.ConnectURL != "" {
		if err := validateServerURL(srv.ConnectURL); err != nil {
			return nil, fmt.Errorf("invalid connect URL of MCP server %s", srv.URL) // its text is secret
		}
		dialURL = srv.ConnectURL
	}
	headers, err := validateHeaders(srv.Headers)
	if err != nil {
		return nil, fmt.Errorf("invalid headers for MCP server %s: %w", srv.URL, err)
	}
	if opts.ClientName == "" {
		opts.ClientName = "mcpidp"
	}
	if opts.ClientVersion == "" {
		opts.ClientVersion = "0.1.0"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := opts.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	httpClient := &http.Client{
		Transport: &authTransport{
			base:      base,
			serverURL: srv.URL,
			headers:   headers,
			authorize: opts.AuthorizeFunc,
			limits:    opts.Limits.withDefaults(),
		},
		CheckRedirect: opts.HTTPClient.CheckRedirect,
		Jar:           opts.HTTPClient.Jar,
		Timeout:       opts.HTTPClient.Timeout,
	}

	s := &Session{serverURL: srv.URL, dialURL: dialURL, logger: logger, info: mcp.Implementation{Name: opts.ClientName, Version: opts.ClientVersion},
		unauthorized: opts.UnauthorizedFunc, limits: opts.Limits.withDefaults(), elicit: opts.ElicitFunc, sample: opts.SampleFunc}
	if opts.TracerProvider != nil {
		s.tracer = telemetry.Tracer(opts.TracerProvider)
	}
	// Server requests are answered on behalf of the session, not of the request that opened it.
	s.lifeCtx, s.cancelLife = context.WithCancel(context.WithoutCancel(ctx))
	if s.elicit != nil || s.sample != nil {
		s.listen = newListenReady()
	}
	if len(srv.AllowedTools) > 0 {
		s.allowed = make(map[string]bool, len(srv.AllowedTools))
		for _, name := range srv.AllowedTools {
			s.allowed[name] = true
		}
	}
	l, err := s.authorized(ctx, func(ctx context.Context, rec *challengeRecorder) (*link, error) {
		return s.open(ctx, rec, httpClient)
	})
	if err != nil {
		s.cancelLife()
		return nil, err
	}
	s.link = l
	if s.transportName != TransportStreamableHTTP {
		// Legacy SSE listens on its one stream from the start: nothing to wait for.
		s.listen = nil
	}
	return s, nil
}

// open makes the first link of a session: Streamable HTTP, else legacy SSE.
func (s *Session) open(ctx context.Context, rec *challengeRecorder, httpClient *http.Client) (*link, error) {
	l, streamErr := s.connectStreamable(ctx, httpClient, s.info)
	if streamErr == nil {
		s.httpClient, s.transportName = httpClient, TransportStreamableHTTP
		return l, nil
	}
	if challenge := authChallenge(rec, streamErr); challenge != nil {
		return nil, challenge
	}
	if !errors.Is(streamErr, transport.ErrLegacySSEServer) {
		return nil, connectError(ctx, s.serverURL, streamErr)
	}

	s.logger.DebugContext(ctx, "mcpclient: streamable HTTP initialize rejected, trying legacy SSE", slog.String("server_url", s.serverURL))
	sseClient := *httpClient
	sseClient.Timeout = 0
	l, sseErr := s.connectSSE(ctx, &sseClient, s.info)
	if sseErr == nil {
		s.httpClient, s.transportName = &sseClient, TransportSSE
		return l, nil
	}
	if challenge := authChallenge(rec, sseErr); challenge != nil {
		return nil, challenge
	}
	return nil, connectError(ctx, s.serverURL, fmt.Errorf("streamable HTTP: %w; legacy SSE: %w", streamErr, sseErr))
}

func (s *Session) connectStreamable(ctx context.Context, httpClient *http.Client, info mcp.Implementation) (*link, error) {
	trOpts := []transport.StreamableHTTPCOption{transport.WithHTTPBasicClient(httpClient), transport.WithHTTPLogger(libraryLogger(s.logger))}
	startCtx := ctx
	if s.elicit != nil || s.sample != nil {
		// A server may send its requests on the standalone GET stream rather than on the
		// stream answering the tools/call; that stream lives as long as the session, and
		// a call waits until it is answered (see listen.go).
		trOpts = append(trOpts, transport.WithContinuousListening())
		startCtx = withListenReady(s.lifeCtx, s.listen)
	}
	tr, err := transport.NewStreamableHTTP(s.dialURL, trOpts...)
	if err != nil {
		return nil, err
	}
	opts := []client.ClientOption{client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION)}
	if s.elicit != nil || s.sample != nil {
		caps := (&Options{ElicitFunc: s.elicit, SampleFunc: s.sample}).capabilities()
		opts = append(opts, client.WithClientCapabilities(caps))
	}
	c := client.NewClient(tr, opts...)
	if err := c.Start(startCtx); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := initialize(ctx, c, info); err != nil {
		_ = c.Close()
		return nil, err
	}
	if s.elicit != nil || s.sample != nil {
		// Replaces the handler c.Start set (see serverRequests).
		h := &serverRequests{s: s, elicit: s.elicit, sample: s.sample, tr: tr, httpClient: httpClient, version: c.ProtocolVersion}
		tr.SetRequestHandler(h.handle)
	}
	s.logger.DebugContext(ctx, "mcpclient: connected", slog.String("server_url", s.serverURL),
		slog.String("transport", TransportStreamableHTTP), slog.String("protocol_version", c.ProtocolVersion()))
	return &link{client: c, transport: tr}, nil
}

func (s *Session) connectSSE(ctx context.Context, httpClient *http.Client, info mcp.Implementation) (*link, error) {
	tr, err := transport.NewSSE(s.dialURL,
		transport.WithHTTPClient(httpClient),
		transport.WithSSELogger(libraryLogger(s.logger)),
		// A tool may take as long as the caller's ctx allows (a task's job timeout); mcp-go's
		// own default would cut every call at 60 s.
		transport.WithResponseTimeout(24*time.Hour),
	)
	if err != nil {
		return nil, err
	}
	// mcp-go ties the SSE stream to the context given to Start, so the stream gets one of its own
	// that ctx cancels only until the handshake is done.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancelStream)
	c := client.NewClient(tr, client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION))
	l := &link{client: c, transport: tr, cancelStream: cancelStream, lostCh: make(chan struct{})}
	c.OnConnectionLost(func(err error) {
		l.markLost(fmt.Errorf("SSE stream of MCP server %s was lost: %w", s.serverURL, err))
	})
	fail := func(err error) (*link, error) {
		stop()
		cancelStream()
		_ = c.Close()
		return nil, err
	}
	if err := c.Start(streamCtx); err != nil {
		return fail(err)
	}
	if err := initialize(ctx, c, info); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	s.logger.DebugContext(ctx, "mcpclient: connected", slog.String("server_url", s.serverURL),
		slog.String("transport", TransportSSE), slog.String("protocol_version", c.ProtocolVersion()))
	return l, nil
}

// initialize runs the handshake on a started client.
func initialize(ctx context.Context, c *client.Client, info mcp.Implementation) error {
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = info
	_, err := c.Initialize(ctx, req)
	return err
}

// ServerURL returns the Server.URL the session was opened for.
func (s *Session) ServerURL() string { return s.serverURL }

// Transport returns TransportStreamableHTTP or TransportSSE.
func (s *Session) Transport() string { return s.transportName }

// Tools lists the server's tools (following pagination), keeps the allowed ones in the server's
// order, and caches them for the session's life.
func (s *Session) Tools(ctx context.Context) (_ []Tool, err error) {
	s.toolsMu.Lock()
	defer s.toolsMu.Unlock()
	if s.tools != nil {
		return slices.Clone(s.tools), nil
	}
	ctx, end := s.startSpan(ctx, string(mcp.MethodToolsList), "")
	defer func() { end(err) }()

	tools := []Tool{}
	seenCursors := map[string]bool{}
	var listed int
	var listedBytes int64
	var cursor string
	for page := 0; ; page++ {
		if page == maxToolPages {
			return nil, fmt.Errorf("error listing tools of MCP server %s: more than %d pages", s.serverURL, maxToolPages)
		}
		var params any
		if cursor != "" {
			params = map[string]string{"cursor": cursor}
		}
		raw, err := s.request(ctx, string(mcp.MethodToolsList), params)
		if err != nil {
			return nil, fmt.Errorf("error listing tools of MCP server %s: %w", s.serverURL, err)
		}
		if listedBytes += int64(len(raw)); listedBytes > s.limits.MaxToolsListBytes {
			return nil, fmt.Errorf("error listing tools of MCP server %s: the tool list is larger than %d bytes", s.serverURL, s.limits.MaxToolsListBytes)
		}
		var result struct {
			Tools []struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				InputSchema json.RawMessage `json:"inputSchema"`
				Annotations json.RawMessage `json:"annotations"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &result); err != nil {
			return nil, fmt.Errorf("error decoding tools of MCP server %s: %w", s.serverURL, err)
		}
		listed += len(result.Tools)
		if listed > maxTools {
			return nil, fmt.Errorf("error listing tools of MCP server %s: more than %d tools", s.serverURL, maxTools)
		}
		for _, t := range result.Tools {
			if t.Name == "" || !s.isAllowed(t.Name) {
				continue
			}
			tools = append(tools, Tool{Name: t.Name, Description: t.Description, InputSchema: t.InputSchema, Annotations: parseAnnotations(t.Annotations)})
		}
		if result.NextCursor == "" {
			break
		}
		if seenCursors[result.NextCursor] {
			return nil, fmt.Errorf("error listing tools of MCP server %s: cursor %q repeated", s.serverURL, result.NextCursor)
		}
		seenCursors[result.NextCursor] = true
		cursor = result.NextCursor
	}
	s.tools = tools
	return slices.Clone(tools), nil
}

// CallTool calls the named tool with arguments (a JSON object; empty means {}). A tool that ran and
// failed is a CallResult with IsError, not an error; errors are for tools that are not allowed,
// transport and protocol failures, and authorization challenges (*AuthChallengeError).
func (s *Session) CallTool(ctx context.Context, name string, arguments json.RawMessage) (_ *CallResult, err error) {
	ctx, end := s.startSpan(ctx, string(mcp.MethodToolsCall), name)
	defer func() { end(err) }()
	if !s.isAllowed(name) {
		return nil, fmt.Errorf("tool %q of MCP server %s is not in allowed_tools", name, s.serverURL)
	}
	arguments = bytes.TrimSpace(arguments)
	if len(arguments) == 0 || bytes.Equal(arguments, []byte("null")) {
		arguments = json.RawMessage("{}")
	}
	var object map[string]json.RawMessage
	if err := json.Unmarshal(arguments, &object); err != nil {
		return nil, fmt.Errorf("arguments for tool %q must be a JSON object: %w", name, err)
	}
	params := struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{Name: name, Arguments: arguments}
	s.listen.waitForCall(ctx)
	raw, err := s.request(ctx, string(mcp.MethodToolsCall), params)
	if err != nil {
		return nil, fmt.Errorf("error calling tool %q of MCP server %s: %w", name, s.serverURL, err)
	}
	result, err := renderResult(s.boundResult(raw))
	if err != nil {
		return nil, fmt.Errorf("error decoding result of tool %q of MCP server %s: %w", name, s.serverURL, err)
	}
	return result, nil
}

// Close ends the session (a DELETE for Streamable HTTP sessions, closing the SSE stream otherwise).
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.listen.mark() // a call racing Close does not wait for a GET that will not come
		s.cancelLife()
		s.linkMu.Lock()
		l := s.link
		s.closed = true
		s.linkMu.Unlock()
		err = l.close()
	})
	return err
}

func (s *Session) isAllowed(name string) bool {
	return s.allowed == nil || s.allowed[name]
}

// send sends one JSON-RPC request on the link's transport and returns its raw result.
// tools/list and tools/call go to the transport directly rather than through mcp-go's typed
// client, whose decoding keeps only the schema keywords it models and re-encodes results: the model
// must see each schema and result exactly as the server sent it. The string ids cannot collide with
// the integer ids mcp-go's client uses on the same transport.
func (s *Session) send(ctx context.Context, rec *challengeRecorder, l *link, method string, params any) (json.RawMessage, error) {
	parent := ctx
	if l.lostCh != nil {
		// The answer comes on the legacy SSE stream: once the stream has ended, stop waiting for
		// it. A POST still in flight is let finish first: a refusal (400, 404) means the session
		// is gone and the request may go out on a new one; only an accepted request waits for
		// an answer that cannot come.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-l.lostCh:
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for !rec.wasAccepted() {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
			cancel()
		}()
	}
	ctx, bound := s.withBound(ctx, method)
	resp, err := l.transport.SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId("mcpidp-" + strconv.FormatInt(s.nextID.Add(1), 10)),
		Method:  method,
		Params:  params,
	})
	if err != nil && rec.wasAccepted() && parent.Err() == nil {
		// The server took the request; its answer was lost on the way back (for instance a 404
		// or 401 on the GET that resumes the answer's stream). That is neither a refusal to
		// retry on a new session nor a login to ask for: the call may have run. The cause is
		// kept as text only, so that no challenge in it makes the caller pause and send the
		// call again after a login.
		if cut := bound.failure(err); cut != err {
			return nil, cut // refused as too large, not lost
		}
		cause := err.Error()
		if lost := l.lost.Load(); lost != nil {
			cause = (*lost).Error() // the stream's end says why (an answer too large, a cut connection)
		}
		return nil, &AnswerLostError{ServerURL: s.serverURL, Method: method, Cause: cause}
	}
	if challenge := authChallenge(rec, err); challenge != nil {
		return nil, challenge
	}
	err = bound.failure(err)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("%w: %w", ctxErr, err)
		}
		return nil, err
	}
	if resp.Error != nil {
		// mcp-go hands back an HTTP error whose body parses as JSON (an OAuth error object such as
		// {"error":"insufficient_scope"}) as if it were a JSON-RPC error; the challenge on the wire
		// is what it means.
		if challenge := rec.get(); challenge != nil {
			return nil, challenge
		}
		if resp.Error.Code == mcp.URL_ELICITATION_REQUIRED {
			return nil, urlElicitationRequired(s.serverURL, resp.Error.Data)
		}
		return nil, fmt.Errorf("JSON-RPC error %d: %w", resp.Error.Code, resp.Error.AsError())
	}
	if len(resp.Result) == 0 {
		return nil, errors.New("empty result")
	}
	return resp.Result, nil
}

// AnswerLostError reports a request the server accepted (its POST was answered 2xx) whose answer
// never arrived. A tools/call that fails this way may or may not have run, so it is neither
// retried nor treated as an authorization challenge.
type AnswerLostError struct {
	ServerURL string
	Method    string
	Cause     string
}

func (e *AnswerLostError) Error() string {
	return fmt.Sprintf("MCP server %s accepted the %s request but its answer was lost (it may or may not have run): %s", e.ServerURL, e.Method, e.Cause)
}

// authChallenge returns the challenge behind err: one returned by an AuthorizeFunc, else one
// recorded on the wire, else one mcp-go recognised (a 401 it answered without headers we saw).
func authChallenge(rec *challengeRecorder, err error) *AuthChallengeError {
	var challenge *AuthChallengeError
	if errors.As(err, &challenge) {
		return challenge
	}
	if err == nil {
		return nil
	}
	return rec.get()
}

func connectError(ctx context.Context, serverURL string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	return fmt.Errorf("error connecting to MCP server %s: %w", serverURL, err)
}

func validateServerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid MCP server URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid MCP server URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid MCP server URL %q: host is missing", raw)
	}
	return nil
}

// renderResult turns a raw tools/call result into a CallResult.
func renderResult(raw json.RawMessage) (*CallResult, error) {
	var result struct {
		Content           []json.RawMessage `json:"content"`
		StructuredContent json.RawMessage   `json:"structuredContent"`
		IsError           bool              `json:"isError"`
	}
	if err := json.Unmarshal(raw, &result); err != nil {
		return nil, err
	}
	out := &CallResult{IsError: result.IsError, Raw: raw}
	if len(result.StructuredContent) > 0 && !bytes.Equal(result.StructuredContent, []byte("null")) {
		out.StructuredContent = result.StructuredContent
	}
	out.parts = make([]resultPart, 0, len(result.Content))
	for _, block := range result.Content {
		var c struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Data     string `json:"data"`
			MIMEType string `json:"mimeType"`
			URI      string `json:"uri"`
			Name     string `json:"name"`
			Resource *struct {
				URI      string  `json:"uri"`
				MIMEType string  `json:"mimeType"`
				Text     *string `json:"text"`
				Blob     string  `json:"blob"`
			} `json:"resource"`
		}
		if err := json.Unmarshal(block, &c); err != nil {
			return nil, err
		}
		var text string
		switch c.Type {
		case "text":
			text = c.Text
		case "image":
			data, ok := decodeBase64(c.Data)
			if !ok {
				text = fmt.Sprintf("[image %s — invalid data, not shown]", mediaType(c.MIMEType))
				break
			}
			img := Image{MIMEType: mediaType(c.MIMEType), Data: data}
			out.Images = append(out.Images, img)
			out.parts = append(out.parts, resultPart{image: &img})
			continue
		case "audio":
			text = fmt.Sprintf("[audio %s, %d bytes — not shown]", mediaType(c.MIMEType), base64Len(c.Data))
		case "resource":
			out.Resources = append(out.Resources, block)
			switch {
			case c.Resource == nil:
				text = "[resource]"
			case c.Resource.Text != nil:
				text = *c.Resource.Text
			default:
				text = fmt.Sprintf("[resource %s %s, %d bytes — not shown]", c.Resource.URI, c.Resource.MIMEType, base64Len(c.Resource.Blob))
			}
		case "resource_link":
			out.Resources = append(out.Resources, block)
			text = fmt.Sprintf("[resource link %s: %s]", c.Name, c.URI)
		default:
			text = fmt.Sprintf("[%s content]", c.Type)
		}
		out.parts = append(out.parts, resultPart{text: text})
	}
	out.Text = joinParts(out.parts)
	if len(result.Content) == 0 && out.StructuredContent != nil {
		var compact bytes.Buffer
		if err := json.Compact(&compact, out.StructuredContent); err == nil {
			out.Text = compact.String()
		}
	}
	return out, nil
}

// resultPart is one content block of a result as Text shows it: text, or an image whose note
// depends on whether it is kept.
type resultPart struct {
	text    string
	image   *Image
	dropped bool
}

func joinParts(parts []resultPart) string {
	lines := make([]string, len(parts))
	for i, p := range parts {
		switch {
		case p.image == nil:
			lines[i] = p.text
		case p.dropped:
			lines[i] = fmt.Sprintf("[image %s, %d bytes — over the image limit, not shown]", p.image.MIMEType, len(p.image.Data))
		case ViewableImageType(p.image.MIMEType):
			lines[i] = fmt.Sprintf("[image %s, %d bytes: attached below]", p.image.MIMEType, len(p.image.Data))
		default:
			lines[i] = fmt.Sprintf("[image %s, %d bytes — not shown]", p.image.MIMEType, len(p.image.Data))
		}
	}
	return strings.Join(lines, "\n")
}

// decodeBase64 decodes data padded or not. Empty data, and data cut short by a size bound (which
// leaves a marker that is not base64), are not an image.
func decodeBase64(data string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(data); err == nil && len(b) > 0 {
			return b, true
		}
	}
	return nil, false
}

// mediaType returns a MIME type lowercased and without parameters, or application/octet-stream
// when it is not one, so that notes and Content-Types never carry what a server made up.
func mediaType(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	return mt
}

// base64Len returns the decoded size of base64 data without decoding it.
func base64Len(data string) int {
	data = strings.TrimRight(data, "=")
	return base64.RawStdEncoding.DecodedLen(len(data))
}
