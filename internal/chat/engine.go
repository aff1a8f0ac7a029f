package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/redact"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// EngineConfig configures an Engine. mcpidp's server builds one from its
// own parts; Go programs use New instead.
type EngineConfig struct {
	// Model calls the upstream OpenAI-compatible API. Required.
	Model *llm.Client
	// OAuth holds each user's MCP logins and makes login links. Required.
	OAuth *mcpauth.Engine
	// HTTPClient reaches MCP servers; in production the SSRF guard's
	// client. Required.
	HTTPClient *http.Client
	// Limits bound one request.
	Limits Limits
	// Logger receives failures (never keys, tokens or bodies). Optional.
	Logger *slog.Logger
	// MCPLimits bound what is kept of MCP servers' answers. Optional: zero fields take
	// mcpclient's defaults.
	MCPLimits mcpclient.Limits
	// Keyring seals the ids of approval requests (require_approval).
	// Without it a request with require_approval is refused.
	Keyring *secretbox.Keyring
	// ApprovalTTL is how long an approval request id stays valid; default
	// 24 hours.
	ApprovalTTL time.Duration
	// TracerProvider traces the MCP calls of chat requests. Optional: no tracing when nil.
	TracerProvider trace.TracerProvider
}

// Engine answers OpenAI chat completion requests, running MCP tools for
// the request's user on the way. It is safe for concurrent
// use.
type Engine struct {
	cfg EngineConfig
	// bufs are Forward's copy buffers, reused across requests.
	bufs sync.Pool
}

// NewEngine validates cfg and returns an Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	switch {
	case cfg.Model == nil:
		return nil, errors.New("mcpproxy: model client is required")
	case cfg.OAuth == nil:
		return nil, errors.New("mcpproxy: OAuth engine is required")
	case cfg.HTTPClient == nil:
		return nil, errors.New("mcpproxy: HTTP client is required")
	}
	cfg.Limits.ApplyDefaults()
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// MCP server URLs may carry keys in their query, and the HTTP client's
	// errors that get logged repeat them.
	cfg.Logger = slog.New(redact.NewHandler(cfg.Logger.Handler()))
	e := &Engine{cfg: cfg}
	e.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	return e, nil
}

// Call is one chat completion request.
type Call struct {
	// Tenant owns the request; with the request's "user" it names whose
	// MCP logins are used.
	Tenant string
	// Body is the request body as the client sent it.
	Body []byte
	// UpstreamKey, when set, replaces the configured upstream API key for
	// this request. It is never logged or stored.
	UpstreamKey string
	// DefaultUser is the user of a request that names none (in-process
	// proxies serving one person). Empty means "user" is required with
	// MCP tools.
	DefaultUser string
}

// AuthorizationRequest is one entry of a message's
// "mcp_authorization_required": a server the user must log in to.
type AuthorizationRequest struct {
	ServerURL        string `json:"server_url"`
	AuthorizationURL string `json:"authorization_url"`
}

// ServeChat answers one POST /chat/completions on w: the upstream's answer
// as it is when the request has no MCP tools, otherwise the result of the
// tool loop, as one completion or (with "stream": true) as server-sent
// events. It returns when the answer is complete or ctx is done; the
// caller's client going away should cancel ctx, which stops the upstream
// call and the loop.
func (e *Engine) ServeChat(ctx context.Context, w http.ResponseWriter, call Call) {
	req, err := parseChat(call.Body, e.cfg.Limits, call.DefaultUser)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(req.servers) == 0 {
		e.Forward(ctx, w, http.MethodPost, "/chat/completions", bytes.NewReader(req.body), call.UpstreamKey,
			http.Header{"Content-Type": {"application/json"}})
		return
	}

	if (len(req.approvals) > 0 || len(req.responses) > 0) && e.cfg.Keyring == nil {
		writeError(w, errNoKeyring)
		return
	}
	if len(req.responses) > 0 && req.replay != nil {
		writeError(w, chatreq.Invalid("mcp_elicitation_responses", "send mcp_approval_responses and mcp_elicitation_responses in separate requests"))
		return
	}
	r := newResponder(w, req)
	opts := llm.CallOptions{APIKey: call.UpstreamKey}
	run := &agentloop.Run{
		Body:        req.body,
		Messages:    req.messages,
		ClientTools: req.functionTools,
		MaxSteps:    req.maxSteps,
		StopWhen:    req.stopWhen,
		Complete:    r.completeFunc(e.cfg.Model, opts),
		// A server's sampling request is answered with the request's
		// model and key, not streamed to the caller.
		SampleComplete: func(ctx context.Context, body []byte) (*llm.Completion, error) {
			return e.cfg.Model.Complete(ctx, body, opts)
		},
		Record: r.record,
		ErrorIsFatal: func(err error) bool {
			var asked *errElicitation
			return agentloop.IsChallenge(err) || errors.As(err, &asked)
		},
		Approvals: req.approvals,
	}
	elicit := &elicitations{replay: req.replay}
	if req.replay != nil {
		run.Steps = []agentloop.Step{req.replay.replayStep()}
	}
	connect := agentloop.UserConnect(e.cfg.OAuth, mcpclient.Options{HTTPClient: e.cfg.HTTPClient, Logger: e.cfg.Logger, Limits: e.cfg.MCPLimits,
		TracerProvider: e.cfg.TracerProvider, SampleFunc: run.Sample, ElicitFunc: elicit.elicit}, call.Tenant, req.user)
	tools, err := agentloop.ConnectMCP(ctx, connect, req.servers)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if chs := agentloop.Challenges(err); chs != nil {
			e.login(ctx, r, call.Tenant, req.user, chs, llm.Usage{})
			return
		}
		e.fail(ctx, r, mcpError(err))
		return
	}
	defer tools.Close()

	run.Tools = elicit.tools(tools)
	if req.replay != nil {
		if _, _, ok := tools.Resolve(req.replay.Function); !ok {
			e.fail(ctx, r, chatreq.Invalid("mcp_elicitation_responses[0].elicitation_request_id",
				fmt.Sprintf("the call it answers, to %q, is not one of this request's MCP tools", req.replay.Function)))
			return
		}
	}
	if e.cfg.Keyring != nil {
		ap := newApprovals(e.cfg.Keyring, call.Tenant, req.user, e.cfg.ApprovalTTL)
		answers, err := ap.open(req.responses, tools, req.approvals)
		if err != nil {
			writeError(w, err)
			return
		}
		if req.replay != nil && req.replay.Approval != "" && len(req.approvals) > 0 {
			// The replayed call ran on an approval: it runs on it again.
			if answers, err = replayApproval(ap, req.replay, tools, req.approvals); err != nil {
				writeError(w, err)
				return
			}
		}
		if len(answers) > 0 {
			run.Steps = resumeStep(answers)
		}
		run.Approve = ap.approveFunc(answers)
		elicit.approved = answers
	}
	out, err := run.Execute(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away: nobody to answer
		}
		var asked *errElicitation
		if errors.As(err, &asked) {
			r.elicit(asked.req, out.Usage)
			return
		}
		if chs := agentloop.Challenges(err); chs != nil {
			var usage llm.Usage
			if out != nil {
				usage = out.Usage
			}
			e.login(ctx, r, call.Tenant, req.user, chs, usage)
			return
		}
		var held *agentloop.ApprovalRequiredError
		if errors.As(err, &held) {
			r.approvals(held.Calls, out.Usage)
			return
		}
		e.fail(ctx, r, err)
		return
	}
	r.finish(out)
}

// login answers with a login link per server that asked for one.
func (e *Engine) login(ctx context.Context, r *responder, tenant, user string, chs []*mcpclient.AuthChallengeError, usage llm.Usage) {
	links := agentloop.BeginLogins(ctx, e.cfg.OAuth, tenant, user, chs)
	var reqs []AuthorizationRequest
	var failures []string
	for _, l := range links {
		if l.Err != nil {
			e.cfg.Logger.WarnContext(ctx, "mcpproxy: login cannot be started", slog.String("server_url", l.ServerURL), slog.String("error", l.Err.Error()))
			failures = append(failures, fmt.Sprintf("%s needs a login, but it cannot be started: %v", l.ServerURL, l.Err))
			continue
		}
		reqs = append(reqs, AuthorizationRequest{ServerURL: l.ServerURL, AuthorizationURL: l.AuthorizationURL})
	}
	if len(reqs) == 0 {
		e.fail(ctx, r, &Error{Status: http.StatusFailedDependency, Type: "mcp_error", Code: "mcp_authorization_error", Message: strings.Join(failures, "; ")})
		return
	}
	r.login(reqs, failures, usage)
}

func (e *Engine) fail(ctx context.Context, r *responder, err error) {
	status, _, _ := errorBody(err)
	if status >= 500 {
		e.cfg.Logger.ErrorContext(ctx, "mcpproxy: chat completion failed", slog.String("error", err.Error()))
	}
	r.fail(err)
}

// MCPError is mcpError, for the Responses engine.
func MCPError(err error) error { return mcpError(err) }

// mcpError is the answer when an MCP server cannot be used: 400 for an
// address the SSRF guard refuses, else 424 as OpenAI answers when a remote
// MCP server fails.
func mcpError(err error) error {
	if errors.Is(err, netguard.ErrBlocked) {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "mcp_server_blocked", Param: "tools", Message: err.Error()}
	}
	if store.DatabaseUnreachable(err) {
		return err // our database, not the server, failed: errorBody answers 503
	}
	return &Error{Status: http.StatusFailedDependency, Type: "mcp_error", Code: "mcp_server_error", Message: err.Error()}
}

// hopHeaders are not copied from an upstream answer.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Set-Cookie": true,
}

// Forward sends a request to the upstream at path (relative to its base
// URL, with any query) and copies the answer to w as it arrives, whatever
// its status: GET /models, and chat requests without MCP tools.
func (e *Engine) Forward(ctx context.Context, w http.ResponseWriter, method, path string, body io.Reader, upstreamKey string, header http.Header) {
	resp, err := e.cfg.Model.Forward(ctx, method, path, body, llm.CallOptions{APIKey: upstreamKey, Header: header})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		e.cfg.Logger.WarnContext(ctx, "mcpproxy: upstream unreachable", slog.String("error", err.Error()))
		writeError(w, &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "upstream_unreachable", Message: "the upstream model API could not be reached"})
		return
	}
	defer resp.Body.Close()
	for name, values := range resp.Header {
		if !hopHeaders[http.CanonicalHeaderKey(name)] {
			w.Header()[name] = values
		}
	}
	w.WriteHeader(resp.StatusCode)
	// A JSON answer is copied whole and net/http frames it as it sees fit;
	// anything else (a stream) goes out piece by piece as it arrives.
	var rc *http.ResponseController
	if ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		rc = http.NewResponseController(w)
	}
	bp := e.bufs.Get().(*[]byte)
	defer e.bufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
