// Package telemetry owns mcpidp's OpenTelemetry tracing: the provider the
// environment asks for (OTLP over HTTP, or none), the tracer name, the span
// attributes mcpidp sets, and the task id carried in a context so that the
// model and MCP spans of a task run name their task.
//
// Nothing here touches OpenTelemetry's globals: the composition root builds
// a provider and hands it to each component. Spans never carry tokens,
// headers, tool arguments or results, prompts or answers.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of mcpidp's own spans.
const ScopeName = "github.com/mcpidp/mcpidp"

// Span attributes set by mcpidp. Server and tool names follow the
// OpenTelemetry semantic conventions (server.address, mcp.method.name,
// gen_ai.tool.name, gen_ai.operation.name).
const (
	AttrTaskID        = attribute.Key("mcpidp.task_id")
	AttrServerAddress = attribute.Key("server.address")
	AttrServerPort    = attribute.Key("server.port")
	AttrMCPMethod     = attribute.Key("mcp.method.name")
	AttrToolName      = attribute.Key("gen_ai.tool.name")
	AttrOperation     = attribute.Key("gen_ai.operation.name")
	AttrModel         = attribute.Key("gen_ai.request.model")
)

// Tracer returns mcpidp's tracer from tp; a nil tp gives a no-op tracer.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// Config says where traces go.
type Config struct {
	// Endpoint is the full URL spans are POSTed to:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT
	// with /v1/traces added (see TracesURL). Empty turns tracing off.
	Endpoint string
	// ServiceVersion is recorded on the resource. Optional.
	ServiceVersion string
}

// Provider is a TracerProvider and the function that flushes and stops it.
type Provider struct {
	trace.TracerProvider
	// Enabled is false for the no-op provider: callers skip instrumentation
	// that would cost something even with no-op spans.
	Enabled  bool
	shutdown func(context.Context) error
}

// Shutdown flushes pending spans and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// NewProvider returns an OTLP/HTTP provider when cfg.Endpoint is set, else
// a no-op provider that costs nothing. The exporter reads the standard
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression …) itself,
// and the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func NewProvider(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Endpoint == "" {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("OTEL_EXPORTER_OTLP_ENDPOINT must be an http or https URL such as http://localhost:4318")
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("error creating OTLP trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{semconv.ServiceName("mcpidp")}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("error building trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, Enabled: true, shutdown: tp.Shutdown}, nil
}

// TracesURL returns where spans go given the two standard variables: the
// traces endpoint as is, else the base endpoint with /v1/traces (as the
// OTLP exporter specification says); empty when both are.
func TracesURL(tracesEndpoint, baseEndpoint string) string {
	if tracesEndpoint != "" {
		return tracesEndpoint
	}
	if baseEndpoint == "" {
		return ""
	}
	return strings.TrimRight(baseEndpoint, "/") + "/v1/traces"
}

type taskIDKey struct{}

// WithTaskID returns ctx carrying the id of the task being run, for the
// spans started below it.
func WithTaskID(ctx context.Context, taskID string) context.Context {
	return context.WithValue(ctx, taskIDKey{}, taskID)
}

// TaskAttrs returns the task id attribute when ctx carries one.
func TaskAttrs(ctx context.Context) []attribute.KeyValue {
	if id, ok := ctx.Value(taskIDKey{}).(string); ok && id != "" {
		return []attribute.KeyValue{AttrTaskID.String(id)}
	}
	return nil
}

// ServerAttrs returns server.address and server.port of rawURL: host and
// port only, never its path, query or userinfo (they may hold secrets).
func ServerAttrs(rawURL string) []attribute.KeyValue {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil
	}
	attrs := []attribute.KeyValue{AttrServerAddress.String(u.Hostname())}
	if p := u.Port(); p != "" {
		attrs = append(attrs, AttrServerPort.String(p))
	}
	return attrs
}
