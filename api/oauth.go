package api

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// OAuthPage is what the browser sees at the end of a login.
type OAuthPage struct {
	Status  int
	Title   string
	Message string
}

// StartLogin resolves a login link to the authorization server's URL.
func (a *API) StartLogin(ctx context.Context, loginID string) (string, *OAuthPage) {
	u, err := a.cfg.OAuth.Start(ctx, loginID)
	if err == nil {
		return u, nil
	}
	if errors.Is(err, mcpauth.ErrLoginLinkInvalid) {
		return "", &OAuthPage{Status: http.StatusNotFound, Title: "This login link has expired",
			Message: "The link is no longer valid. Go back to the application and ask for a new one."}
	}
	a.cfg.Logger.WarnContext(ctx, "oauth start failed", "error", err.Error())
	return "", &OAuthPage{Status: http.StatusBadGateway, Title: "The login could not be started",
		Message: "The service's authorization server could not be reached or refused the request. Try again later."}
}

// FinishLogin handles the authorization server's redirect: it exchanges the
// code and stores the token, then says what happened.
func (a *API) FinishLogin(ctx context.Context, query url.Values) (*mcpauth.CallbackResult, *OAuthPage) {
	res, err := a.cfg.OAuth.Callback(ctx, query)
	if err == nil {
		if a.cfg.OnAuthorized != nil {
			if err := a.cfg.OnAuthorized(ctx, res); err != nil {
				a.cfg.Logger.ErrorContext(ctx, "resuming tasks after login failed", "error", err.Error())
			}
		}
		return res, &OAuthPage{Status: http.StatusOK, Title: "You've authorized " + agentloop.Host(res.ServerURL),
			Message: "You can close this window and go back to the application."}
	}
	var authErr *mcpauth.AuthorizationError
	switch {
	case errors.As(err, &authErr) && authErr.Code == "access_denied":
		return nil, &OAuthPage{Status: http.StatusForbidden, Title: "Access was denied",
			Message: "The authorization was declined, so nothing was connected." + describe(authErr.Description)}
	case errors.As(err, &authErr):
		return nil, &OAuthPage{Status: http.StatusBadRequest, Title: "The authorization server reported an error",
			Message: authErr.Code + describe(authErr.Description)}
	case errors.Is(err, mcpauth.ErrStateInvalid):
		return nil, &OAuthPage{Status: http.StatusBadRequest, Title: "This login has expired or was already used",
			Message: "Open the login link again to start a fresh login."}
	case errors.Is(err, mcpauth.ErrIssuerMismatch):
		return nil, &OAuthPage{Status: http.StatusBadRequest, Title: "The login answer came from the wrong server",
			Message: "The response did not come from the expected authorization server, so it was refused."}
	case errors.Is(err, mcpauth.ErrExchangeFailed):
		return nil, &OAuthPage{Status: http.StatusBadGateway, Title: "The login could not be completed",
			Message: "The authorization server did not accept the login code. Open the login link again."}
	}
	a.cfg.Logger.ErrorContext(ctx, "oauth callback failed", "error", err.Error())
	return nil, &OAuthPage{Status: http.StatusInternalServerError, Title: "The login could not be completed", Message: "An internal error occurred."}
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

func writePage(c *gin.Context, p *OAuthPage) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	c.Status(p.Status)
	_ = pageTemplate.Execute(c.Writer, p)
}

func (a *API) handleOAuthStart(c *gin.Context) {
	u, page := a.StartLogin(c.Request.Context(), c.Param("id"))
	if page != nil {
		writePage(c, page)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, u)
}

func (a *API) handleOAuthCallback(c *gin.Context) {
	_, page := a.FinishLogin(c.Request.Context(), c.Request.URL.Query())
	writePage(c, page)
}

func (a *API) handleClientMetadata(c *gin.Context) {
	doc, err := a.cfg.OAuth.ClientMetadataDocument()
	if err != nil {
		a.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", doc)
}
