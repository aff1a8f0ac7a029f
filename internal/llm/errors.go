package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is an error answer of the upstream: a non-2xx status, or an error object sent with a 2xx
// status (in a body or in a stream). StatusCode, Header and Body are the upstream's, unchanged, so a
// proxy can return them as they came; Message, Type, Code and Param are read from the OpenAI error
// shape when the body has it.
type APIError struct {
	StatusCode int
	Header     http.Header
	Body       []byte

	Message string
	Type    string
	Code    string
	Param   string
}

// Error gives the status and the upstream's message (or the start of its body).
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream model returned HTTP %d", e.StatusCode)
	switch {
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(e.Message)
	case len(bytes.TrimSpace(e.Body)) > 0:
		b.WriteString(": ")
		b.WriteString(snippet(e.Body, 200))
	}
	var details []string
	if e.Type != "" {
		details = append(details, "type "+e.Type)
	}
	if e.Code != "" {
		details = append(details, "code "+e.Code)
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: rate limits, timeouts, conflicts
// and server errors.
func (e *APIError) Retryable() bool {
	switch {
	case e.StatusCode == http.StatusTooManyRequests,
		e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode == http.StatusConflict,
		e.StatusCode >= 500:
		return true
	}
	return false
}

// RetryAfter returns how long the upstream asked to wait, from "retry-after-ms" or "Retry-After"
// (seconds or an HTTP date, measured from now). ok is false when it gave no usable hint.
func (e *APIError) RetryAfter(now time.Time) (wait time.Duration, ok bool) {
	if e.Header == nil {
		return 0, false
	}
	if v := strings.TrimSpace(e.Header.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(e.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func newAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, Header: resp.Header.Clone(), Body: body}
	var shape errorShape
	if json.Unmarshal(body, &shape) == nil && shape.Error != nil {
		shape.Error.fill(e)
	}
	return e
}

// bodyError returns an *APIError when a 2xx body is an OpenAI error object, and nil otherwise.
func bodyError(resp *http.Response, body []byte) *APIError {
	var shape errorShape
	if json.Unmarshal(body, &shape) != nil || shape.Error == nil {
		return nil
	}
	e := &APIError{StatusCode: resp.StatusCode, Header: resp.Header.Clone(), Body: body}
	shape.Error.fill(e)
	return e
}

// streamError returns an *APIError when a stream event carries an error object instead of a chunk.
func streamError(resp *http.Response, data []byte) *APIError {
	if !bytes.Contains(data, []byte(`"error"`)) {
		return nil
	}
	return bodyError(resp, data)
}

type errorShape struct {
	Error *errorBody `json:"error"`
}

// errorBody accepts both the OpenAI object and the bare string some servers send.
type errorBody struct {
	Message string
	Type    string
	Code    string
	Param   string
}

func (b *errorBody) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &b.Message)
	}
	var aux struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
		Param   json.RawMessage `json:"param"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	b.Message, b.Type, b.Code, b.Param = aux.Message, aux.Type, scalarString(aux.Code), scalarString(aux.Param)
	return nil
}

func (b *errorBody) fill(e *APIError) {
	e.Message, e.Type, e.Code, e.Param = b.Message, b.Type, b.Code, b.Param
}

// scalarString renders a JSON string or number as text; null and anything else become "".
func scalarString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func snippet(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) <= n {
		return strings.ToValidUTF8(string(b), "?")
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return strings.ToValidUTF8(string(b[:cut]), "?") + "…"
}
