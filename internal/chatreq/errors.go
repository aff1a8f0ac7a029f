package chatreq

import "net/http"

// Error is an error answer in OpenAI's shape:
// {"error":{"type","code","message","param"}}. Status is the HTTP status
// it is answered with.
type Error struct {
	Status  int    `json:"-"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Invalid is a 400 "invalid_value" error about param.
func Invalid(param, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_value", Param: param, Message: message}
}

// Missing is a 400 "missing_required_parameter" error about param.
func Missing(param string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_required_parameter", Param: param, Message: "missing required parameter: " + param}
}

// InvalidJSON is a 400 "invalid_json" error: the body is not the JSON
// object a request must be.
func InvalidJSON(message string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json", Message: message}
}
