package mcpclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Elicitation modes (MCP 2025-06-18 form mode, 2025-11-25 URL mode).
const (
	ElicitModeForm = "form"
	ElicitModeURL  = "url"
)

// Elicitation actions.
const (
	ElicitAccept  = "accept"
	ElicitDecline = "decline"
	ElicitCancel  = "cancel"
)

// ElicitRequest is a server's elicitation/create request.
type ElicitRequest struct {
	// ServerURL is the Server.URL of the session the request came on.
	ServerURL string
	// Mode is ElicitModeForm or ElicitModeURL.
	Mode    string
	Message string
	// RequestedSchema is the form's JSON Schema as the server sent it (form mode).
	RequestedSchema json.RawMessage
	// ElicitationID and URL are the URL mode's.
	ElicitationID string
	URL           string
}

// ElicitResult is the answer to an elicitation.
type ElicitResult struct {
	// Action is ElicitAccept, ElicitDecline or ElicitCancel.
	Action string `json:"action"`
	// Content is the accepted form's values (a JSON object), nil otherwise.
	Content json.RawMessage `json:"content,omitempty"`
}

// ElicitFunc answers a server's elicitation. It may take as long as it needs (a person filling a
// form): the answer is sent when it returns, whatever mcp-go's own handler deadline. An error is
// sent to the server as a JSON-RPC error.
type ElicitFunc func(ctx context.Context, req ElicitRequest) (*ElicitResult, error)

// SampleRequest is a server's sampling/createMessage request.
type SampleRequest struct {
	// ServerURL is the Server.URL of the session the request came on.
	ServerURL string
	// Params are the request's params as the server sent them.
	Params json.RawMessage
}

// SampleFunc answers a server's sampling/createMessage request with a CreateMessageResult (raw
// JSON). An error is sent to the server as a JSON-RPC error.
type SampleFunc func(ctx context.Context, req SampleRequest) (json.RawMessage, error)

// capabilities are what the session declares in initialize: elicitation and sampling only when a
// handler answers them, and only on Streamable HTTP, the transport mcp-go takes server requests on.
func (o *Options) capabilities() mcp.ClientCapabilities {
	var c mcp.ClientCapabilities
	if o.ElicitFunc != nil {
		c.Elicitation = &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}}
	}
	if o.SampleFunc != nil {
		c.Sampling = &mcp.SamplingCapability{}
	}
	return c
}

// serverRequests answers the requests a server sends on a link: mcp-go's client would answer them
// too, but within a 30 s deadline that also bounds sending the answer, while a person may take
// minutes to fill a form. So the link's transport gets this handler instead; it answers in its own
// goroutine and POSTs the answer itself, bounded by the session's life.
type serverRequests struct {
	s          *Session
	elicit     ElicitFunc
	sample     SampleFunc
	tr         *transport.StreamableHTTP
	httpClient *http.Client
	version    func() string
}

func (h *serverRequests) handle(_ context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	if req.Method == string(mcp.MethodPing) {
		return transport.NewJSONRPCResultResponse(req.ID, json.RawMessage(`{}`)), nil
	}
	go h.answer(req)
	return nil, nil // answered by answer, not by mcp-go
}

func (h *serverRequests) answer(req transport.JSONRPCRequest) {
	ctx := h.s.lifeCtx
	params, _ := json.Marshal(req.Params)
	result, err := h.dispatch(ctx, req.Method, params)
	var resp *transport.JSONRPCResponse
	if err != nil {
		h.s.logger.WarnContext(ctx, "mcpclient: answering a server request failed", slog.String("server_url", h.s.serverURL),
			slog.String("method", req.Method), slog.String("error", err.Error()))
		code := mcp.INTERNAL_ERROR
		var mnf *methodNotFoundError
		if errors.As(err, &mnf) {
			code = mcp.METHOD_NOT_FOUND
		}
		resp = transport.NewJSONRPCErrorResponse(req.ID, code, err.Error(), nil)
	} else {
		resp = transport.NewJSONRPCResultResponse(req.ID, result)
	}
	if err := h.send(ctx, resp); err != nil && ctx.Err() == nil {
		h.s.logger.WarnContext(ctx, "mcpclient: sending an answer to a server request failed", slog.String("server_url", h.s.serverURL),
			slog.String("method", req.Method), slog.String("error", err.Error()))
	}
}

type methodNotFoundError struct{ method string }

func (e *methodNotFoundError) Error() string {
	return "method not supported by this client: " + e.method
}

func (h *serverRequests) dispatch(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	switch {
	case method == string(mcp.MethodElicitationCreate) && h.elicit != nil:
		var p struct {
			Mode            string          `json:"mode"`
			Message         string          `json:"message"`
			RequestedSchema json.RawMessage `json:"requestedSchema"`
			ElicitationID   string          `json:"elicitationId"`
			URL             string          `json:"url"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("invalid elicitation params: %w", err)
		}
		if p.Mode == "" {
			p.Mode = ElicitModeForm
		}
		switch p.Mode {
		case ElicitModeForm:
			if len(p.RequestedSchema) == 0 || string(p.RequestedSchema) == "null" {
				return nil, errors.New("invalid elicitation params: requestedSchema is required in form mode")
			}
		case ElicitModeURL:
			if p.URL == "" || p.ElicitationID == "" {
				return nil, errors.New("invalid elicitation params: url and elicitationId are required in url mode")
			}
		default:
			return nil, fmt.Errorf("invalid elicitation params: unknown mode %q", p.Mode)
		}
		res, err := h.elicit(ctx, ElicitRequest{ServerURL: h.s.serverURL, Mode: p.Mode, Message: p.Message,
			RequestedSchema: p.RequestedSchema, ElicitationID: p.ElicitationID, URL: p.URL})
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	case method == string(mcp.MethodSamplingCreateMessage) && h.sample != nil:
		return h.sample(ctx, SampleRequest{ServerURL: h.s.serverURL, Params: params})
	}
	return nil, &methodNotFoundError{method: method}
}

// send POSTs resp to the server the way mcp-go would, on the session's HTTP client (so with the
// caller's headers and the user's token).
func (h *serverRequests) send(ctx context.Context, resp *transport.JSONRPCResponse) error {
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("error encoding answer: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.s.dialURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if id := h.tr.GetSessionId(); id != "" {
		req.Header.Set("Mcp-Session-Id", id)
	}
	if v := h.version(); v != "" {
		req.Header.Set("Mcp-Protocol-Version", v)
	}
	res, err := h.httpClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxOtherBody))
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the server answered %s", res.Status)
	}
	return nil
}

// URLElicitationRequiredError is a request the server refused until the user completes the URL
// elicitations it names (JSON-RPC error -32042, MCP 2025-11-25): the request did not run, and may
// be sent again once the user is done.
type URLElicitationRequiredError struct {
	ServerURL    string
	Elicitations []ElicitRequest
}

func (e *URLElicitationRequiredError) Error() string {
	return fmt.Sprintf("MCP server %s asks the user to open %d URL(s) first", e.ServerURL, len(e.Elicitations))
}

func urlElicitationRequired(serverURL string, data any) *URLElicitationRequiredError {
	raw, _ := json.Marshal(data)
	var d struct {
		Elicitations []struct {
			Message       string `json:"message"`
			URL           string `json:"url"`
			ElicitationID string `json:"elicitationId"`
		} `json:"elicitations"`
	}
	_ = json.Unmarshal(raw, &d)
	e := &URLElicitationRequiredError{ServerURL: serverURL}
	for _, el := range d.Elicitations {
		if el.URL == "" {
			continue
		}
		e.Elicitations = append(e.Elicitations, ElicitRequest{ServerURL: serverURL, Mode: ElicitModeURL, Message: el.Message, URL: el.URL, ElicitationID: el.ElicitationID})
	}
	return e
}
