package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/resultpage"
	"github.com/mcpidp/mcpidp/internal/task"
)

const tenantKey = "mcpidp.tenant"

// gin's mode is process-wide; release mode only silences its debug prints
// of every route. Set once, at package init, so it never changes later.
func init() { gin.SetMode(gin.ReleaseMode) }

// Handler returns the whole HTTP API. This function is the one place that
// shows every route.
func (a *API) Handler() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(a.recoverer(), a.metrics.middleware(), a.checkText())
	r.NoRoute(func(c *gin.Context) { a.writeError(c, notFound("route "+c.Request.Method+" "+c.Request.URL.Path)) })
	r.NoMethod(func(c *gin.Context) {
		a.writeError(c, &Error{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed", Message: "method not allowed"})
	})

	r.GET("/healthz", a.handleHealthz)
	r.GET("/readyz", a.handleReadyz)
	r.GET("/metrics", gin.WrapH(a.metrics.handler()))
	r.GET("/openapi.json", a.handleOpenAPI)
	if a.cfg.Admin != nil && a.cfg.AdminKey != "" {
		r.Any(AdminPrefix+"/*path", a.adminAuth(), gin.WrapH(a.cfg.Admin))
	}
	r.GET("/r/:file", a.handleResult)
	r.GET("/r/:file/images/:step/:n", a.handleResultImage)
	r.GET(task.ApprovalPathPrefix+":token", a.handleApprovalPage)
	r.POST(task.ApprovalPathPrefix+":token", a.limitBody(), a.handleApprovalPage)
	r.GET("/r/:file/inputs/:input", a.handleInputForm)
	r.POST("/r/:file/inputs/:input", a.limitBody(), a.handleInputForm)
	r.GET(mcpauth.StartPathPrefix+":id", a.handleLogin)
	r.GET(mcpauth.CallbackPath, a.handleLogin)
	r.GET(mcpauth.ClientMetadataPath, a.handleLogin)

	v1 := r.Group("/v1", a.limitBody(), a.authenticate())
	v1.POST("/tasks", handle(a, a.CreateTask))
	v1.GET("/tasks", handle(a, a.ListTasks))
	v1.GET("/tasks/:id", handle(a, a.GetTask))
	v1.POST("/tasks/:id/cancel", handle(a, a.CancelTask))
	v1.POST("/tasks/:id/approvals/:approval_id", handle(a, a.DecideApproval))
	v1.DELETE("/tasks/:id", handle(a, a.DeleteTask))
	v1.POST("/tasks/:id/inputs/:input_id", handle(a, a.AnswerInput))
	v1.GET("/tasks/:id/deliveries", handle(a, a.ListDeliveries))
	v1.GET("/connections", handle(a, a.ListConnections))
	v1.POST("/connections", handle(a, a.Connect))
	v1.DELETE("/connections/:id", handle(a, a.Disconnect))
	v1.POST("/chat/completions", a.handleChatCompletions)
	v1.GET("/models", a.handleModels)
	v1.POST("/responses", a.handleCreateResponse)
	v1.GET("/responses/:id", handle(a, a.GetResponse))
	v1.GET("/responses/:id/input_items", handle(a, a.ListInputItems))
	v1.POST("/responses/:id/cancel", handle(a, a.CancelResponse))
	v1.DELETE("/responses/:id", handle(a, a.DeleteResponse))
	return r
}

func (a *API) writeError(c *gin.Context, err error) {
	e := toError(err)
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterUnavailable)
	}
	if e.Status >= 500 {
		a.cfg.Logger.ErrorContext(c.Request.Context(), "request failed",
			slog.String("method", c.Request.Method), slog.String("path", c.FullPath()), slog.String("error", err.Error()))
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e})
}

func (a *API) recoverer() gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, rec any) {
		a.cfg.Logger.ErrorContext(c.Request.Context(), "panic in handler", slog.Any("panic", rec), slog.String("path", c.FullPath()))
		a.writeError(c, &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "internal error"})
	})
}

func (a *API) limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > a.cfg.Limits.MaxBodyBytes {
			a.writeError(c, &http.MaxBytesError{Limit: a.cfg.Limits.MaxBodyBytes})
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.cfg.Limits.MaxBodyBytes)
		c.Next()
	}
}

func (a *API) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		tenant, err := a.Authenticate(c.Request.Context(), c.GetHeader("Authorization"))
		if err != nil {
			a.writeError(c, err)
			return
		}
		c.Set(tenantKey, tenant)
		c.Next()
	}
}

func tenantOf(c *gin.Context) string { return c.GetString(tenantKey) }

func (a *API) handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (a *API) handleReadyz(c *gin.Context) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(c.Request.Context()); err != nil {
			c.Header("Retry-After", retryAfterUnavailable)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// readBody reads a request's body (limitBody has bounded it). With a
// Content-Length, which net/http holds the body to, it is read into one
// buffer of that size rather than one grown by doubling.
func readBody(c *gin.Context) ([]byte, error) {
	if n := c.Request.ContentLength; n > 0 && n <= maxPresizedBody {
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.Request.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(c.Request.Body)
}

// maxPresizedBody bounds what readBody allocates before reading: larger
// bodies grow as they arrive, so a client that announces a body it never
// sends makes mcpidp hold little.
const maxPresizedBody = 1 << 20

// handleResult serves a task by its result token: <token>.json and
// <token>.md as named, the bare token as the HTML page unless Accept
// prefers JSON or markdown (see resultFormat).
func (a *API) handleResult(c *gin.Context) {
	file := c.Param("file")
	token, format := file, ""
	switch {
	case strings.HasSuffix(file, ".json"):
		token, format = strings.TrimSuffix(file, ".json"), formatJSON
	case strings.HasSuffix(file, ".md"):
		token, format = strings.TrimSuffix(file, ".md"), formatMarkdown
	case strings.Contains(file, "."):
		a.writeError(c, notFound("result"))
		return
	default:
		format = resultFormat(c.GetHeader("Accept"))
		c.Header("Vary", "Accept")
	}
	var wait time.Duration
	if w := c.Query("wait"); w != "" {
		secs, err := strconv.ParseFloat(w, 64)
		if err != nil || secs < 0 {
			a.writeError(c, invalid("wait", "wait must be a number of seconds (at most 60)"))
			return
		}
		wait = time.Duration(secs * float64(time.Second))
	}
	obj, err := a.Result(c.Request.Context(), token, wait)
	if err != nil && c.Request.Context().Err() != nil {
		// The client left during ?wait= (a result page's script when its
		// tab closes): nobody to answer, nothing went wrong.
		c.Abort()
		return
	}
	if format == formatHTML {
		a.writeResultPage(c, obj, err)
		return
	}
	if err != nil {
		a.writeError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Robots-Tag", "noindex")
	if format == formatMarkdown {
		c.Data(http.StatusOK, "text/markdown; charset=utf-8", []byte(task.Markdown(obj)))
		return
	}
	c.JSON(http.StatusOK, obj)
}

// writeResultPage answers a browser: the task's page, or a page saying
// the link leads nowhere (other errors keep the JSON error shape).
func (a *API) writeResultPage(c *gin.Context, obj *task.Object, err error) {
	var page *resultpage.Page
	switch {
	case err == nil:
		page, err = a.pages.Render(obj)
	case toError(err).Status == http.StatusNotFound:
		page, err = a.pages.NotFound()
	}
	if err != nil {
		a.writeError(c, err)
		return
	}
	page.Write(c.Writer)
}

// handleResultImage serves a tool's image under the task's result token.
// Headers keep a browser from reading it as anything but what
// servedImageType allows.
func (a *API) handleResultImage(c *gin.Context) {
	step, err := strconv.Atoi(c.Param("step"))
	n, nerr := strconv.Atoi(c.Param("n"))
	if err != nil || nerr != nil || step < 0 {
		a.writeError(c, notFound("image"))
		return
	}
	img, err := a.ResultImage(c.Request.Context(), c.Param("file"), step, n)
	if err != nil {
		a.writeError(c, err)
		return
	}
	contentType, inline := servedImageType(img.MIMEType)
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if !inline {
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="image-%d-%d"`, step, n))
	}
	c.Data(http.StatusOK, contentType, img.Data)
}
