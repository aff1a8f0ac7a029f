package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// A task that calls a tool, traced into an in-memory exporter: the HTTP
// request, the River job, the model calls and the MCP calls each give spans
// that name the task, the server's host and the tool, and no span carries a
// key, a header, a tool argument, a result token or the MCP URL's query.
func TestTracingOfATaskThatCallsATool(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		exporter := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
		t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
		env := startEnv(t, databaseURL, func(eo *envOpts) { eo.opts.TracerProvider = tp })
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		env.Model.Handle(func(req llmtest.Request) llmtest.Response {
			last := req.Messages[len(req.Messages)-1]
			if last.Role == "tool" {
				return llmtest.Response{Content: "done"}
			}
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"argument-secret-42"}`}}}
		})

		secrets := []string{
			"query-secret-17",           // the MCP URL's query
			"header-secret-99",          // a caller header to the MCP server
			"argument-secret-42",        // tool arguments (and so its output)
			"upstream-key",              // the model key
			"caller-upstream-secret-55", // X-Upstream-Authorization
			keyAcme,                     // the API key
		}
		tk := env.submit(t, keyAcme, map[string]any{
			"user": "alice", "model": "gpt-test", "input": "say it",
			"tools": []map[string]any{{"type": "mcp", "url": mcp.URL + "?key=query-secret-17",
				"headers": map[string]string{"X-Custom": "header-secret-99"}}},
		}, "X-Upstream-Authorization", "Bearer caller-upstream-secret-55")
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "%+v", done.Error)
		token := strings.TrimSuffix(tk.ResultURLs.JSON[strings.LastIndex(tk.ResultURLs.JSON, "/")+1:], ".json")
		secrets = append(secrets, token)

		find := func(spans tracetest.SpanStubs, match func(s tracetest.SpanStub) bool) []tracetest.SpanStub {
			var out []tracetest.SpanStub
			for _, s := range spans {
				if match(s) {
					out = append(out, s)
				}
			}
			return out
		}
		hasTask := func(s tracetest.SpanStub) bool { return attr(s, "mcpidp.task_id") == tk.ID }
		var spans tracetest.SpanStubs
		require.Eventually(t, func() bool {
			spans = exporter.GetSpans()
			return len(find(spans, func(s tracetest.SpanStub) bool { return s.Name == "river.work/task_run" && hasTask(s) })) == 1
		}, 10*time.Second, 20*time.Millisecond, "the job's span ends")

		t.Logf("spans: %v", names(spans))

		// HTTP: a server span per request, named by route.
		submit := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "POST /v1/tasks" })
		require.Len(t, submit, 1)
		require.Equal(t, trace.SpanKindServer, submit[0].SpanKind)
		require.Equal(t, "/v1/tasks", attr(submit[0], "http.route"))
		results := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "GET /r/:file" })
		require.NotEmpty(t, results, "result URL requests are traced by route: %v", names(spans))

		// The job: River's span, with the task id, linked to the request
		// that inserted it.
		job := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "river.work/task_run" })[0]
		require.Equal(t, "task_run", attr(job, "kind"))
		require.NotEmpty(t, job.Links, "the run links back to the insert")

		// Model calls: two (tool call, then the answer), under the job.
		model := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "chat gpt-test" })
		require.Len(t, model, 2)
		for _, s := range model {
			require.Equal(t, trace.SpanKindClient, s.SpanKind)
			require.True(t, hasTask(s))
			require.Equal(t, "127.0.0.1", attr(s, "server.address"))
			require.Equal(t, "gpt-test", attr(s, "gen_ai.request.model"))
			require.Equal(t, job.SpanContext.TraceID(), s.SpanContext.TraceID())
		}

		// MCP calls: tools/list and tools/call echo.
		list := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "tools/list" && hasTask(s) })
		require.Len(t, list, 1)
		toolCall := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "tools/call echo" })
		require.Len(t, toolCall, 1)
		require.True(t, hasTask(toolCall[0]))
		require.Equal(t, "echo", attr(toolCall[0], "gen_ai.tool.name"))
		require.Equal(t, "tools/call", attr(toolCall[0], "mcp.method.name"))
		require.Equal(t, "127.0.0.1", attr(toolCall[0], "server.address"))
		require.Equal(t, job.SpanContext.TraceID(), toolCall[0].SpanContext.TraceID())

		// A streamed chat with an MCP tool, traced: it streams through the
		// traced handler and gives its model and MCP spans, under the
		// request's span.
		body := map[string]any{"model": "gpt-test", "stream": true, "user": "alice",
			"messages": []map[string]any{{"role": "user", "content": "say it"}},
			"tools":    []map[string]any{{"type": "mcp", "url": mcp.URL + "?key=query-secret-17"}}}
		status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, body)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(raw), "data: [DONE]")
		require.Contains(t, string(raw), "done")
		var chatSpan tracetest.SpanStub
		require.Eventually(t, func() bool {
			spans = exporter.GetSpans()
			found := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "POST /v1/chat/completions" })
			if len(found) == 1 {
				chatSpan = found[0]
			}
			return len(found) == 1
		}, 10*time.Second, 20*time.Millisecond)
		inChat := func(s tracetest.SpanStub) bool { return s.SpanContext.TraceID() == chatSpan.SpanContext.TraceID() }
		require.Len(t, find(spans, func(s tracetest.SpanStub) bool { return inChat(s) && s.Name == "chat gpt-test" }), 2)
		require.Len(t, find(spans, func(s tracetest.SpanStub) bool { return inChat(s) && s.Name == "tools/call echo" }), 1)

		// No secret anywhere: names, attributes, events, status, resource.
		for _, s := range spans {
			text := s.Name + " " + s.Status.Description
			for _, kv := range s.Attributes {
				text += " " + string(kv.Key) + "=" + kv.Value.Emit()
			}
			for _, e := range s.Events {
				text += " " + e.Name
				for _, kv := range e.Attributes {
					text += " " + kv.Value.Emit()
				}
			}
			for _, secret := range secrets {
				require.NotContains(t, text, secret, "span %q", s.Name)
			}
		}
	})
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// otlpReceiver is an OTLP/HTTP trace collector: it keeps the names of the
// spans it receives and the service name they came from.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []string
	services []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var msg coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range msg.ResourceSpans {
		for _, kv := range rs.Resource.GetAttributes() {
			if kv.Key == "service.name" {
				r.services = append(r.services, kv.Value.GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, s.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func (r *otlpReceiver) got() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans), slices.Clone(r.services)
}

// `mcpidp serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over
// OTLP/HTTP (flushed when it stops); without it, nothing is sent.
func TestTracesReachAnOTLPCollector(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		for _, on := range []bool{true, false} {
			receiver := &otlpReceiver{}
			collector := httptest.NewServer(receiver)
			t.Cleanup(collector.Close)
			port := testenv.FreePort(t)
			vars := map[string]string{
				"MCPIDP_DATABASE_URL":   databaseURL,
				"MCPIDP_LISTEN":         "127.0.0.1:" + strconv.Itoa(port),
				"MCPIDP_API_KEYS":       "acme:" + keyAcme,
				"MCPIDP_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			}
			if on {
				vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.URL
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- app.Run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, io.Discard, io.Discard)
			}()
			require.Eventually(t, testenv.PortReady(port), 30*time.Second, 20*time.Millisecond)
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			status, _, _ := call(t, "GET", base+"/healthz", "", nil)
			require.Equal(t, http.StatusOK, status)
			status, _, _ = call(t, "GET", base+"/v1/tasks/task_nope", keyAcme, nil)
			require.Equal(t, http.StatusNotFound, status)
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop")
			}
			spans, services := receiver.got()
			if !on {
				require.Empty(t, spans, "tracing is off without an endpoint")
				continue
			}
			require.Contains(t, spans, "GET /healthz")
			require.Contains(t, spans, "GET /v1/tasks/:id")
			require.NotContains(t, strings.Join(spans, " "), "task_nope")
			require.Contains(t, services, "mcpidp")
		}
	})
}
