package api

import (
	"github.com/gin-gonic/gin"
)

// The login paths are served by the handler the in-process chat proxy
// mounts too (loginpage.NewHandler): it binds each login to the browser
// that opened the link and renders the pages.

func (a *API) handleOAuthStart(c *gin.Context) { a.logins.ServeHTTP(c.Writer, c.Request) }

func (a *API) handleOAuthCallback(c *gin.Context) { a.logins.ServeHTTP(c.Writer, c.Request) }

func (a *API) handleClientMetadata(c *gin.Context) { a.logins.ServeHTTP(c.Writer, c.Request) }
