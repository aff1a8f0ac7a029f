package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
)

// endpoint is the logic of one route: a typed request in, a typed answer
// out, and no gin, so it is tested by calling it. handle adapts it to gin.
type endpoint[Req, Resp any] func(ctx context.Context, req *Req) (*Resp, error)

// binder fills a request type from the HTTP request (tenant, path, query,
// headers, body). Every request type of an endpoint implements it.
type binder interface {
	bind(c *gin.Context) error
}

// statusCoder lets an answer choose its HTTP status; the default is 200.
type statusCoder interface {
	statusCode() int
}

// headerSetter lets an answer add response headers.
type headerSetter interface {
	setHeaders(h http.Header)
}

// handle is the one gin adapter of endpoints: it binds the request, calls
// ep, and writes the answer as JSON or the error in the OpenAI shape.
func handle[Req, Resp any, PReq interface {
	*Req
	binder
}](a *API, ep endpoint[Req, Resp]) gin.HandlerFunc {
	return func(c *gin.Context) {
		req := PReq(new(Req))
		if err := req.bind(c); err != nil {
			a.writeError(c, err)
			return
		}
		resp, err := ep(c.Request.Context(), req)
		if err != nil {
			a.writeError(c, err)
			return
		}
		status := http.StatusOK
		if s, ok := any(resp).(statusCoder); ok {
			status = s.statusCode()
		}
		if h, ok := any(resp).(headerSetter); ok {
			h.setHeaders(c.Writer.Header())
		}
		c.JSON(status, resp)
	}
}
