package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Error is an error answer in OpenAI's shape:
// {"error":{"type","code","message","param"}}, with the HTTP status it is
// answered with (Status, not serialized).
type Error = chatreq.Error

// upstreamHeaders are the upstream answer's headers a client may act on;
// they are copied to error answers (a 429's Retry-After above all).
var upstreamHeaders = []string{"Retry-After", "Retry-After-Ms", "X-Request-Id", "Openai-Processing-Ms"}

// errorBody renders err as an OpenAI error body with its status. An
// upstream error keeps the upstream's status and body when the body is
// already an OpenAI error object; otherwise its message is wrapped.
func errorBody(err error) (int, http.Header, []byte) {
	header := http.Header{"Content-Type": {"application/json"}}
	var apiErr *llm.APIError
	if errors.As(err, &apiErr) {
		for _, name := range upstreamHeaders {
			if v := apiErr.Header.Values(name); len(v) > 0 {
				header[name] = v
			}
		}
		for name, v := range apiErr.Header {
			if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Ratelimit-") {
				header[name] = v
			}
		}
		status := apiErr.StatusCode
		if status < 400 {
			// An error object inside a 2xx answer or stream.
			status = http.StatusBadGateway
		}
		var shape struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(apiErr.Body, &shape) == nil && bytes.HasPrefix(bytes.TrimSpace(shape.Error), []byte("{")) {
			return status, header, bytes.TrimSpace(apiErr.Body)
		}
		msg := apiErr.Message
		if msg == "" {
			msg = apiErr.Error()
		}
		e := &Error{Type: apiErr.Type, Code: apiErr.Code, Message: msg, Param: apiErr.Param}
		if e.Type == "" {
			e.Type = "upstream_error"
		}
		if e.Code == "" {
			e.Code = "upstream_error"
		}
		body, _ := json.Marshal(map[string]any{"error": e})
		return status, header, body
	}
	var e *Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &e):
	case store.DatabaseUnreachable(err):
		// The user's logins cannot be read while the database is down: as
		// the API answers, a 503 the client may retry.
		header.Set("Retry-After", "2")
		e = &Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "database_unavailable",
			Message: "the database cannot be reached right now; try again shortly"}
	case errors.Is(err, agentloop.ErrModel) && errors.As(err, &urlErr):
		// As the pass-through answers (Engine.Forward); the upstream's
		// address is the operator's and is not repeated.
		e = &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "upstream_unreachable", Message: "the upstream model API could not be reached"}
	case errors.Is(err, agentloop.ErrModel):
		e = &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "upstream_invalid_response",
			Message: "the upstream model API did not answer with a chat completion: " + err.Error()}
	}
	if e == nil {
		e = &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "internal error"}
	}
	body, _ := json.Marshal(map[string]any{"error": e})
	return e.Status, header, body
}

// WriteError answers err in OpenAI's error shape with its status: the
// chat engine's mapping of upstream, MCP and storage failures, which the
// Responses engine shares.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }

func writeError(w http.ResponseWriter, err error) {
	status, header, body := errorBody(err)
	for name, v := range header {
		w.Header()[name] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
