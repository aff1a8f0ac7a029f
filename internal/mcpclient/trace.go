package mcpclient

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/telemetry"
)

// startSpan starts the client span of one MCP operation (method, and for
// tools/call the tool); end records its outcome. The span names the server
// by host only: an MCP server URL's path and query may hold its key. A tool
// that ran and reported isError is not a failed span: the call worked.
func (s *Session) startSpan(ctx context.Context, method, tool string) (context.Context, func(error)) {
	if s.tracer == nil {
		return ctx, func(error) {}
	}
	attrs := append(telemetry.ServerAttrs(s.serverURL), telemetry.AttrMCPMethod.String(method))
	name := method
	if tool != "" {
		attrs = append(attrs, telemetry.AttrToolName.String(tool))
		name += " " + tool
	}
	attrs = append(attrs, telemetry.TaskAttrs(ctx)...)
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			// The kind of failure, never its text: it may quote the server's URL or answer.
			desc := "MCP request failed"
			var challenge *AuthChallengeError
			if errors.As(err, &challenge) {
				desc = "MCP server asks for authorization"
			}
			span.SetStatus(codes.Error, desc)
		}
		span.End()
	}
}
