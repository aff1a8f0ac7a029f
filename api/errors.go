package api

import (
	"errors"
	"net/http"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Error is an API error in OpenAI's shape:
// {"error":{"type","code","message","param"}}.
type Error = chatreq.Error

func invalid(param, message string) *Error { return chatreq.Invalid(param, message) }

func missing(param string) *Error { return chatreq.Missing(param) }

func notFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Message: what + " not found"}
}

// toError maps every error to the one we answer with. Sentinel errors of
// the lower layers map to statuses here and nowhere else.
func toError(err error) *Error {
	var apiErr *Error
	var tooLarge *http.MaxBytesError
	err = store.Classify(err)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &tooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: "request body is larger than the limit of " + formatBytes(tooLarge.Limit)}
	case errors.Is(err, store.ErrNotFound):
		return notFound("resource")
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "conflict", Message: err.Error()}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "database_unavailable",
			Message: "the database cannot be reached right now; try again shortly"}
	case errors.Is(err, store.ErrInvalidText):
		return invalid("", "the request holds a NUL character or invalid UTF-8, which cannot be stored")
	}
	return &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "internal error"}
}

// retryAfterUnavailable is the Retry-After of a 503: the pool reconnects
// on the next request once the database is back.
const retryAfterUnavailable = "2"

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
