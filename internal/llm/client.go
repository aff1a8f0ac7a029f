// Package llm is mcpidp's client for OpenAI-compatible chat completion APIs (OpenAI, Anthropic's
// compatible endpoint, Groq, OpenRouter, vLLM, Ollama…).
//
// Requests are raw JSON objects: callers change only the fields they own with SetFields, and every
// other field reaches the upstream byte for byte. Answers are decoded into Completion, or streamed
// chunk by chunk (raw bytes and decoded form) and assembled into a Completion. Non-2xx answers
// become *APIError, which keeps the upstream's status, headers and body so a proxy can return them
// unchanged.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/telemetry"
)

// DefaultMaxResponseBytes bounds the size of an upstream answer (and of one stream event, and of
// the text assembled from a stream) when Config.MaxResponseBytes is zero.
const DefaultMaxResponseBytes = 4 << 20

// DefaultMaxIdleConns is how many idle connections to the upstream the default HTTP client keeps.
const DefaultMaxIdleConns = 256

// ErrResponseTooLarge is wrapped by the error of a call whose answer exceeds the response limit:
// reading more of it is refused rather than held in memory, and asking again would not help.
var ErrResponseTooLarge = errors.New("the model's answer is too large")

// Config configures a Client.
type Config struct {
	// BaseURL is the upstream API root, e.g. https://api.openai.com/v1; requests go to
	// BaseURL + "/chat/completions". A trailing slash is ignored. Required.
	BaseURL string

	// APIKey is sent as "Authorization: Bearer <APIKey>" unless a call brings its own key. Optional:
	// local servers (Ollama, vLLM) often need none.
	APIKey string

	// HTTPClient makes the requests. Optional: the default has connect, TLS and response-header
	// timeouts but no overall timeout, so long streams are not cut off.
	HTTPClient *http.Client

	// Logger receives debug logs of upstream calls (never keys or bodies). Optional: defaults to a
	// logger that discards everything.
	Logger *slog.Logger

	// MaxResponseBytes bounds an upstream answer. Optional: defaults to DefaultMaxResponseBytes.
	MaxResponseBytes int64

	// TracerProvider traces each chat completion call (a client span with the upstream's host and
	// the model name; never keys, headers, prompts or answers). Optional: no tracing when nil.
	TracerProvider trace.TracerProvider
}

func (c *Config) validate() (*url.URL, error) {
	if c.BaseURL == "" {
		return nil, errors.New("upstream base URL is required")
	}
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("invalid upstream base URL %q: %w", c.BaseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid upstream base URL %q: scheme must be http or https", c.BaseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid upstream base URL %q: host is missing", c.BaseURL)
	}
	if c.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("invalid max response bytes: %d", c.MaxResponseBytes)
	}
	return u, nil
}

// Client calls one OpenAI-compatible upstream. It is safe for concurrent use.
type Client struct {
	baseURL    string
	base       *url.URL // baseURL, parsed once
	apiKey     string
	httpClient *http.Client
	// forward sends pass-through requests (Forward): the client's
	// transport itself when the client adds nothing to it (no timeout, no
	// cookie jar, default redirect policy, no userinfo in the base URL),
	// as a reverse proxy does. That skips http.Client's per-request
	// redirect bookkeeping (header copies, body rewinding) and leaves a
	// redirect for the caller to follow.
	forward  func(*http.Request) (*http.Response, error)
	clientDo func(*http.Request) (*http.Response, error) // httpClient.Do, bound once
	logger   *slog.Logger
	maxBytes int64
	tracer   trace.Tracer // nil: no tracing
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Client{
		baseURL:    u.String(),
		base:       u,
		apiKey:     cfg.APIKey,
		httpClient: cfg.HTTPClient,
		logger:     cfg.Logger,
		maxBytes:   cfg.MaxResponseBytes,
	}
	if cfg.TracerProvider != nil {
		c.tracer = telemetry.Tracer(cfg.TracerProvider)
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient()
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.clientDo = c.httpClient.Do
	c.forward = c.clientDo
	// A base URL with userinfo needs http.Client, which sends it as Basic
	// auth when no key is set; a bare transport would drop it.
	if hc := c.httpClient; hc.Timeout == 0 && hc.Jar == nil && hc.CheckRedirect == nil && u.User == nil {
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		c.forward = rt.RoundTrip
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = 10 * time.Second
	// Reasoning models may think for minutes before the first byte of a non-streaming answer.
	transport.ResponseHeaderTimeout = 10 * time.Minute
	// All calls go to one host: keep enough idle connections to it for a
	// busy server (the default keeps 2, and every call past them dials a
	// new connection and throws it away).
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = DefaultMaxIdleConns, DefaultMaxIdleConns
	return &http.Client{Transport: transport}
}

// CallOptions adjusts one call.
type CallOptions struct {
	// APIKey overrides Config.APIKey for this call (from a request's X-Upstream-Authorization). A
	// leading "Bearer " is accepted. Never logged.
	APIKey string

	// Header holds extra request headers (e.g. OpenAI-Organization, or Content-Type for Forward).
	// Authorization is always set from the key. Never logged.
	Header http.Header
}

// Complete POSTs body, a JSON object, to {BaseURL}/chat/completions with "stream" forced to false
// (and "stream_options" removed, which upstreams reject without streaming) and returns the decoded
// answer. Tool calls without an id get a generated one so tool results can refer to them.
func (c *Client) Complete(ctx context.Context, body []byte, opts CallOptions) (_ *Completion, err error) {
	ctx, end := c.startSpan(ctx, body)
	defer func() { end(err) }()
	body, err = SetFields(body, map[string]any{"stream": false, "stream_options": nil})
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, body, opts, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	raw, err := c.readAll(ctx, resp.Body)
	if err != nil {
		return nil, err
	}
	return c.decodeCompletion(resp, raw)
}

// Stream POSTs body with "stream": true and calls onChunk for every chunk as it arrives, with the
// chunk's raw JSON and its decoded form. It returns the completion assembled from all chunks:
// content concatenated, tool calls joined by index from their fragments, the last finish reason,
// and usage if the upstream sent it (ask for it with "stream_options": {"include_usage": true}).
//
// It stops at "data: [DONE]" or at the end of the body. An error returned by onChunk, or the
// cancellation of ctx, aborts the upstream request and is returned wrapped. An error event in the
// stream becomes an *APIError with the stream's status code. An upstream that ignores "stream" and
// answers with a plain JSON completion is accepted: onChunk then gets one chunk built from it.
func (c *Client) Stream(ctx context.Context, body []byte, opts CallOptions, onChunk func(raw []byte, chunk *Chunk) error) (_ *Completion, err error) {
	ctx, end := c.startSpan(ctx, body)
	defer func() { end(err) }()
	body, err = SetFields(body, map[string]any{"stream": true})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the upstream connection when we stop early

	resp, err := c.post(ctx, body, opts, "text/event-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	if mediaType(resp.Header) == "application/json" {
		return c.streamFromJSON(ctx, resp, onChunk)
	}

	acc := newAccumulator(c.maxBytes)
	events := newEventReader(resp.Body, c.maxBytes)
	for {
		data, err := events.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctxErr := context.Cause(ctx); ctxErr != nil {
				return nil, fmt.Errorf("error reading upstream stream: %w", ctxErr)
			}
			return nil, fmt.Errorf("error reading upstream stream: %w", err)
		}
		if bytes.Equal(data, []byte("[DONE]")) {
			break
		}
		if apiErr := streamError(resp, data); apiErr != nil {
			return nil, apiErr
		}
		var chunk Chunk
		if err := json.Unmarshal(data, &chunk); err != nil {
			return nil, fmt.Errorf("error decoding upstream stream chunk: %w", err)
		}
		if err := acc.add(&chunk); err != nil {
			return nil, err
		}
		if onChunk != nil {
			if err := onChunk(data, &chunk); err != nil {
				return nil, fmt.Errorf("error handling stream chunk: %w", err)
			}
		}
	}
	return acc.completion()
}

// Forward sends an arbitrary request to {BaseURL}{path} (path may carry a query) with the upstream
// key, and returns the upstream's response unchanged, whatever its status. The caller closes the
// response body. Used to pass requests such as GET /models through.
func (c *Client) Forward(ctx context.Context, method, path string, body io.Reader, opts CallOptions) (*http.Response, error) {
	var req *http.Request
	var err error
	if strings.ContainsAny(path, "?%#") || c.base.RawPath != "" || c.base.RawQuery != "" {
		req, err = http.NewRequestWithContext(ctx, method, c.url(path), body)
	} else {
		// A plain path (the usual /chat/completions): the base URL was
		// parsed once and only the path is added, with no URL parsing.
		req, err = http.NewRequestWithContext(ctx, method, "", body)
		if err == nil {
			u := *c.base
			if path != "" {
				u.Path = c.base.Path + "/" + strings.TrimLeft(path, "/")
			}
			req.URL, req.Host = &u, u.Host
		}
	}
	if err != nil {
		return nil, fmt.Errorf("error building upstream request: %w", err)
	}
	c.setHeaders(req, opts)
	return c.send(c.forward, req)
}

// startSpan starts the client span of one chat completion call; end records its outcome. Only the
// model name is read from the body. Without a TracerProvider it does nothing.
func (c *Client) startSpan(ctx context.Context, body []byte) (context.Context, func(error)) {
	if c.tracer == nil {
		return ctx, func(error) {}
	}
	var head struct {
		Model any `json:"model"`
	}
	_ = json.Unmarshal(body, &head)
	model, _ := head.Model.(string)
	attrs := append([]attribute.KeyValue{telemetry.AttrOperation.String("chat"), telemetry.AttrModel.String(model)},
		telemetry.ServerAttrs(c.baseURL)...)
	attrs = append(attrs, telemetry.TaskAttrs(ctx)...)
	ctx, span := c.tracer.Start(ctx, strings.TrimSpace("chat "+model), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			// The error's kind, not its text: an upstream's message may quote the request.
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				span.SetAttributes(attribute.Int("http.response.status_code", apiErr.StatusCode))
			}
			span.SetStatus(codes.Error, "model call failed")
		}
		span.End()
	}
}

func (c *Client) post(ctx context.Context, body []byte, opts CallOptions, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/chat/completions"), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("error building upstream request: %w", err)
	}
	c.setHeaders(req, opts)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)

	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		raw, err := c.readAll(ctx, resp.Body)
		if err != nil {
			return nil, err
		}
		return nil, newAPIError(resp, raw)
	}
	return resp, nil
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	return c.send(c.clientDo, req)
}

// send sends req with do (an http.Client's Do or a transport's RoundTrip) and logs the call.
func (c *Client) send(do func(*http.Request) (*http.Response, error), req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := do(req)
	// Checked first: the attributes would be built (and allocated) even when debug is off.
	debug := c.logger.Enabled(req.Context(), slog.LevelDebug)
	if err != nil {
		if debug {
			c.logger.DebugContext(req.Context(), "llm: upstream call failed",
				slog.String("method", req.Method), slog.String("path", req.URL.Path),
				slog.Duration("duration", time.Since(start)), slog.String("error", err.Error()))
		}
		if ctxErr := context.Cause(req.Context()); ctxErr != nil {
			return nil, fmt.Errorf("error calling upstream model: %w", ctxErr)
		}
		return nil, fmt.Errorf("error calling upstream model: %w", err)
	}
	if debug {
		c.logger.DebugContext(req.Context(), "llm: upstream call",
			slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.Int("status", resp.StatusCode), slog.Duration("duration", time.Since(start)))
	}
	return resp, nil
}

func (c *Client) url(path string) string {
	if path == "" {
		return c.baseURL
	}
	return c.baseURL + "/" + strings.TrimLeft(path, "/")
}

func (c *Client) setHeaders(req *http.Request, opts CallOptions) {
	for name, values := range opts.Header {
		req.Header[http.CanonicalHeaderKey(name)] = append([]string(nil), values...)
	}
	key := c.apiKey
	if opts.APIKey != "" {
		key = opts.APIKey
	}
	key = bearer.Key(key)
	req.Header.Del("Authorization")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
}

// readAll reads a whole answer, refusing one larger than the limit.
func (c *Client) readAll(ctx context.Context, r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, c.maxBytes+1))
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return nil, fmt.Errorf("error reading upstream response: %w", ctxErr)
		}
		return nil, fmt.Errorf("error reading upstream response: %w", err)
	}
	if int64(len(raw)) > c.maxBytes {
		return nil, fmt.Errorf("%w: upstream response is larger than %d bytes", ErrResponseTooLarge, c.maxBytes)
	}
	return raw, nil
}

func (c *Client) decodeCompletion(resp *http.Response, raw []byte) (*Completion, error) {
	var completion Completion
	if err := json.Unmarshal(raw, &completion); err != nil {
		return nil, fmt.Errorf("error decoding upstream completion: %w", err)
	}
	// Some upstreams (OpenRouter among them) report failures with a 200 and an error object.
	if len(completion.Choices) == 0 {
		if apiErr := bodyError(resp, raw); apiErr != nil {
			return nil, apiErr
		}
	}
	for i := range completion.Choices {
		fillToolCalls(completion.Choices[i].Message.ToolCalls)
	}
	completion.Raw = raw
	return &completion, nil
}

// streamFromJSON handles an upstream that answered a streaming request with a plain completion.
func (c *Client) streamFromJSON(ctx context.Context, resp *http.Response, onChunk func([]byte, *Chunk) error) (*Completion, error) {
	raw, err := c.readAll(ctx, resp.Body)
	if err != nil {
		return nil, err
	}
	completion, err := c.decodeCompletion(resp, raw)
	if err != nil {
		return nil, err
	}
	if onChunk == nil {
		return completion, nil
	}
	chunk := chunkFromCompletion(completion)
	chunkRaw, err := json.Marshal(chunk)
	if err != nil {
		return nil, fmt.Errorf("error encoding stream chunk: %w", err)
	}
	if err := onChunk(chunkRaw, chunk); err != nil {
		return nil, fmt.Errorf("error handling stream chunk: %w", err)
	}
	return completion, nil
}

func chunkFromCompletion(c *Completion) *Chunk {
	chunk := &Chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model, Usage: c.Usage}
	for _, choice := range c.Choices {
		cc := ChunkChoice{
			Index: choice.Index,
			Delta: ChunkDelta{Role: choice.Message.Role, Content: choice.Message.Content},
		}
		for i, tc := range choice.Message.ToolCalls {
			cc.Delta.ToolCalls = append(cc.Delta.ToolCalls, ToolCallDelta{
				Index:    i,
				ID:       tc.ID,
				Type:     tc.Type,
				Function: FunctionCallDelta(tc.Function),
			})
		}
		if choice.FinishReason != "" {
			reason := choice.FinishReason
			cc.FinishReason = &reason
		}
		chunk.Choices = append(chunk.Choices, cc)
	}
	return chunk
}

func mediaType(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(ct))
}
