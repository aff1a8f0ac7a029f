// Package loginpage serves the browser's side of an MCP login: the login
// link, the OAuth callback (NewHandler, which binds each login to the
// browser that opened the link with a cookie), which page each outcome of
// the OAuth engine's Start and Callback gets, and the HTML it is rendered
// as. mcpidp's server and the in-process chat proxy mount the same handler.
package loginpage

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// Page is what the browser sees.
type Page struct {
	Status  int
	Title   string
	Message string
}

// StartFailed is the page for an error of mcpauth.Engine.Start. known is
// false when err is none of the engine's expected outcomes, so that the
// caller logs it.
func StartFailed(err error) (page *Page, known bool) {
	if errors.Is(err, mcpauth.ErrLoginLinkInvalid) {
		return &Page{Status: http.StatusNotFound, Title: "This login link has expired",
			Message: "The link is no longer valid. Go back to the application and ask for a new one."}, true
	}
	return &Page{Status: http.StatusBadGateway, Title: "The login could not be started",
		Message: "The service's authorization server could not be reached or refused the request. Try again later."}, false
}

// Authorized is the page for a login that stored a token for serverURL.
func Authorized(serverURL string) *Page {
	return &Page{Status: http.StatusOK, Title: "You've authorized " + agentloop.Host(serverURL),
		Message: "You can close this window and go back to the application."}
}

// CallbackFailed is the page for an error of mcpauth.Engine.Callback.
// known is false when err is none of the engine's expected outcomes, so
// that the caller logs it.
func CallbackFailed(err error) (page *Page, known bool) {
	var (
		authErr     *mcpauth.AuthorizationError
		exchangeErr *mcpauth.ExchangeError
	)
	switch {
	case errors.Is(err, mcpauth.ErrOtherBrowser):
		return &Page{Status: http.StatusBadRequest, Title: "This login was started in another browser",
			Message: "For your safety nothing was connected. Open the login link again in this browser to log in here. " +
				"If you did not start a login, close this page."}, true
	case errors.As(err, &authErr) && authErr.Code == "access_denied":
		return &Page{Status: http.StatusForbidden, Title: "Access was denied",
			Message: "The authorization was declined, so nothing was connected." + describe(authErr.Description)}, true
	case errors.As(err, &authErr):
		return &Page{Status: http.StatusBadRequest, Title: "The authorization server reported an error",
			Message: authErr.Code + describe(authErr.Description)}, true
	case errors.Is(err, mcpauth.ErrStateInvalid):
		return &Page{Status: http.StatusBadRequest, Title: "This login has expired or was already used",
			Message: "Open the login link again to start a fresh login."}, true
	case errors.Is(err, mcpauth.ErrIssuerMismatch):
		return &Page{Status: http.StatusBadRequest, Title: "The login answer came from the wrong server",
			Message: "The response did not come from the expected authorization server, so it was refused."}, true
	case errors.As(err, &exchangeErr) && exchangeErr.Code != "":
		return &Page{Status: http.StatusBadGateway, Title: "The login could not be completed",
			Message: "The authorization server did not accept the login code: " + exchangeErr.Code + describe(exchangeErr.Description) +
				". Open the login link again."}, true
	case errors.As(err, &exchangeErr) && exchangeErr.Status != 0:
		return &Page{Status: http.StatusBadGateway, Title: "The login could not be completed",
			Message: fmt.Sprintf("The authorization server answered HTTP %d when the login code was exchanged. Open the login link again.", exchangeErr.Status)}, true
	case errors.As(err, &exchangeErr):
		return &Page{Status: http.StatusBadGateway, Title: "The login could not be completed",
			Message: "The authorization server could not be reached to exchange the login code. Open the login link again."}, true
	case errors.Is(err, mcpauth.ErrExchangeFailed):
		return &Page{Status: http.StatusBadGateway, Title: "The login could not be completed",
			Message: "The authorization server did not accept the login code. Open the login link again."}, true
	}
	return &Page{Status: http.StatusInternalServerError, Title: "The login could not be completed", Message: "An internal error occurred."}, false
}

func describe(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// Write renders p on w as an uncached HTML page that sends no referrer
// (the callback URL carries the authorization code).
func Write(w http.ResponseWriter, p *Page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(p.Status)
	_ = pageTemplate.Execute(w, p)
}
