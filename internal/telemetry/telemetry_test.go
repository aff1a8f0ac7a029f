package telemetry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
)

func TestTracesURL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", TracesURL("", ""))
	require.Equal(t, "http://collector:4318/v1/traces", TracesURL("", "http://collector:4318/"))
	require.Equal(t, "http://collector:4318/custom", TracesURL("http://collector:4318/custom", "http://other:4318"))
}

func TestServerAttrsNameTheHostOnly(t *testing.T) {
	t.Parallel()
	attrs := ServerAttrs("https://user:pw@mcp.example.com:8443/mcp/secret-path?key=secret")
	require.Equal(t, []attribute.KeyValue{AttrServerAddress.String("mcp.example.com"), AttrServerPort.String("8443")}, attrs)
	require.Equal(t, []attribute.KeyValue{AttrServerAddress.String("api.openai.com")}, ServerAttrs("https://api.openai.com/v1"))
	require.Nil(t, ServerAttrs("not a url"))
}

func TestNewProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	off, err := NewProvider(ctx, Config{})
	require.NoError(t, err)
	require.False(t, off.Enabled)
	_, span := off.Tracer(ScopeName).Start(ctx, "x")
	require.False(t, span.IsRecording(), "off is the no-op provider")
	require.NoError(t, off.Shutdown(ctx))

	_, err = NewProvider(ctx, Config{Endpoint: "localhost:4318"})
	require.ErrorContains(t, err, "must be an http or https URL")

	on, err := NewProvider(ctx, Config{Endpoint: "http://127.0.0.1:1/v1/traces"})
	require.NoError(t, err)
	require.True(t, on.Enabled)
	_, span = on.Tracer(ScopeName).Start(ctx, "x")
	require.True(t, span.IsRecording())
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_ = on.Shutdown(sctx) // nothing listens there: the export fails, the stop does not hang
}

func TestTaskAttrs(t *testing.T) {
	t.Parallel()
	require.Nil(t, TaskAttrs(context.Background()))
	require.Equal(t, []attribute.KeyValue{AttrTaskID.String("task_1")}, TaskAttrs(WithTaskID(context.Background(), "task_1")))
}
