package api

import (
	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/chatreq"
)

// checkText answers 400 when a path parameter (a task or connection id, a
// result token) or a query parameter holds a NUL character or invalid
// UTF-8, before any handler looks it up: PostgreSQL would fail the query
// (a 500) where SQLite answers "not found", and the two backends must
// answer alike.
func (a *API) checkText() gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			if err := chatreq.CheckText(p.Key, p.Value); err != nil {
				a.writeError(c, err)
				return
			}
		}
		if c.Request.URL.RawQuery == "" {
			// Most requests have no query: do not parse (and allocate) one.
			c.Next()
			return
		}
		for name, values := range c.Request.URL.Query() {
			if err := chatreq.CheckText("query parameter", name); err != nil {
				a.writeError(c, err)
				return
			}
			for _, v := range values {
				if err := chatreq.CheckText(name, v); err != nil {
					a.writeError(c, err)
					return
				}
			}
		}
		c.Next()
	}
}
