package mcpproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mcpidp/mcpidp/internal/llm"
)

// Error is an error answer in OpenAI's shape:
// {"error":{"type","code","message","param"}}.
type Error struct {
	Status  int    `json:"-"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func invalid(param, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_value", Param: param, Message: message}
}

func missing(param string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_required_parameter", Param: param, Message: "missing required parameter: " + param}
}

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
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "internal error"}
	}
	body, _ := json.Marshal(map[string]any{"error": e})
	return e.Status, header, body
}

func writeError(w http.ResponseWriter, err error) {
	status, header, body := errorBody(err)
	for name, v := range header {
		w.Header()[name] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
