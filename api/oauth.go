package api

import (
	"github.com/gin-gonic/gin"
)

// handleLogin serves the login paths (the login link, the OAuth callback,
// the client metadata document) with the handler the in-process chat proxy
// mounts too (loginpage.NewHandler): it binds each login to the browser
// that opened the link and renders the pages.
func (a *API) handleLogin(c *gin.Context) { a.logins.ServeHTTP(c.Writer, c.Request) }
