package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/loginpage"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// OAuthPage is what the browser sees at the end of a login.
type OAuthPage = loginpage.Page

// StartLogin resolves a login link to the authorization server's URL.
func (a *API) StartLogin(ctx context.Context, loginID string) (string, *OAuthPage) {
	u, err := a.cfg.OAuth.Start(ctx, loginID)
	if err == nil {
		return u, nil
	}
	page, known := loginpage.StartFailed(err)
	if !known {
		a.cfg.Logger.WarnContext(ctx, "oauth start failed", "error", err.Error())
	}
	return "", page
}

// FinishLogin handles the authorization server's redirect: it exchanges the
// code and stores the token, then says what happened.
func (a *API) FinishLogin(ctx context.Context, query url.Values) (*mcpauth.CallbackResult, *OAuthPage) {
	res, err := a.cfg.OAuth.Callback(ctx, query)
	if err == nil {
		// The engine resumed the user's waiting tasks in the transaction
		// that stored the token (mcpauth.Config.LoginCompletedTxFunc).
		return res, loginpage.Authorized(res.ServerURL)
	}
	page, known := loginpage.CallbackFailed(err)
	if !known {
		a.cfg.Logger.ErrorContext(ctx, "oauth callback failed", "error", err.Error())
	}
	return nil, page
}

func (a *API) handleOAuthStart(c *gin.Context) {
	u, page := a.StartLogin(c.Request.Context(), c.Param("id"))
	if page != nil {
		loginpage.Write(c.Writer, page)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, u)
}

func (a *API) handleOAuthCallback(c *gin.Context) {
	_, page := a.FinishLogin(c.Request.Context(), c.Request.URL.Query())
	loginpage.Write(c.Writer, page)
}

func (a *API) handleClientMetadata(c *gin.Context) {
	doc, err := a.cfg.OAuth.ClientMetadataDocument()
	if err != nil {
		a.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", doc)
}
