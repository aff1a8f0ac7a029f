package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/store"
)

// openAPIDocument describes every route of Handler; a test keeps the two
// in step.
//
//go:embed openapi.json
var openAPIDocument []byte

// metrics are the service's Prometheus metrics, on a registry of its own.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(st *store.Store, logger *slog.Logger) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpidp_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mcpidp_http_request_duration_seconds", Help: "HTTP request latency by route (streams included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&countCollector{store: st, logger: logger})
	return m
}

func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		nameSpan(c)
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	}
}

// nameSpan names the request's server span (when tracing is on) after its
// route, and replaces the path it recorded by the route: paths hold result
// tokens, login ids and task ids, which must not leave in traces.
func nameSpan(c *gin.Context) {
	span := trace.SpanFromContext(c.Request.Context())
	if !span.IsRecording() {
		return
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	span.SetName(c.Request.Method + " " + route)
	span.SetAttributes(attribute.String("http.route", route), attribute.String("url.path", route))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

var (
	tasksDesc = prometheus.NewDesc("mcpidp_tasks", "Tasks in the database by status.", []string{"status"}, nil)
	jobsDesc  = prometheus.NewDesc("mcpidp_river_jobs", "River jobs by state.", []string{"state"}, nil)
)

// countCollector reads task and job counts at scrape time, so every
// process reports the shared database's numbers.
type countCollector struct {
	store  *store.Store
	logger *slog.Logger
}

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksDesc
	ch <- jobsDesc
}

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, q := range []struct {
		desc  *prometheus.Desc
		query string
	}{
		{tasksDesc, `SELECT status, COUNT(*) FROM mcpidp_task GROUP BY status`},
		{jobsDesc, `SELECT state, COUNT(*) FROM river_job GROUP BY state`},
	} {
		rows, err := c.store.DB().QueryContext(ctx, q.query)
		if err != nil {
			c.logger.WarnContext(ctx, "metrics: counting", slog.String("error", err.Error()))
			continue
		}
		for rows.Next() {
			var label string
			var n float64
			if rows.Scan(&label, &n) == nil {
				ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, n, label)
			}
		}
		rows.Close()
	}
}

// adminAuth guards the admin UI with HTTP Basic auth whose password is
// the admin key (any user name), so a browser can open it.
func (a *API) adminAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		_, pass, ok := c.Request.BasicAuth()
		if token, found := bearer.Token(c.GetHeader("Authorization")); found {
			pass, ok = token, true
		}
		if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(a.cfg.AdminKey)) != 1 {
			c.Header("WWW-Authenticate", `Basic realm="mcpidp admin"`)
			a.writeError(c, &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_admin_key",
				Message: "the admin UI needs the admin key (MCPIDP_ADMIN_KEY) as the HTTP Basic password"})
			return
		}
		c.Next()
	}
}

func (a *API) handleOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDocument)
}
