package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

const (
	testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	keyAcme           = "acme-key-0123456789abcdef"
	keyGlobex         = "globex-key-0123456789abcdef"
)

// testEnv is a running mcpidp (API + workers in this process) with a
// scripted model, on a real database.
type testEnv struct {
	URL         string
	DatabaseURL string
	Model       *llmtest.Server
	Clock       *storetest.Clock
	App         *app.App
}

type envOpts struct {
	env  map[string]string
	opts app.Options
}

func startEnv(t testing.TB, databaseURL string, configure ...func(*envOpts)) *testEnv {
	t.Helper()
	model := llmtest.NewServer(t)
	clock := storetest.NewClock()
	eo := &envOpts{env: map[string]string{
		"MCPIDP_DATABASE_URL":           databaseURL,
		"MCPIDP_API_KEYS":               "acme:" + keyAcme + ",globex:" + keyGlobex,
		"MCPIDP_UPSTREAM_BASE_URL":      model.URL(),
		"MCPIDP_UPSTREAM_API_KEY":       "upstream-key",
		"MCPIDP_ALLOW_PRIVATE_NETWORKS": "true",
		"MCPIDP_ENCRYPTION_KEY":         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"MCPIDP_WEBHOOK_SECRET":         testWebhookSecret,
		"MCPIDP_SHUTDOWN_TIMEOUT":       "1s", // a test's end cuts what still runs
	}, opts: app.Options{Now: clock.Now, Migrate: true, Logger: testLogger(t),
		WebhookBackoffFunc: func(int) time.Duration { return 50 * time.Millisecond }}}
	for _, c := range configure {
		c(eo)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	eo.env["MCPIDP_PUBLIC_URL"] = url
	cfg, err := app.LoadConfig(func(k string) string { return eo.env[k] })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.ModeServe, eo.opts)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("mcpidp did not stop within 20s")
		}
		a.Close()
	})
	return &testEnv{URL: url, DatabaseURL: databaseURL, Model: model, Clock: clock, App: a}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// call does one HTTP request and returns status and body. body may be a
// string (sent as is) or any value (sent as JSON).
func call(t testing.TB, method, url, key string, body any, header ...string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw, resp.Header
}

// task is the part of the task object the tests read.
type task struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	User       string `json:"user"`
	Store      bool   `json:"store"`
	ResultURLs struct {
		Markdown string `json:"markdown"`
		JSON     string `json:"json"`
	} `json:"result_urls"`
	Steps []struct {
		Type      string          `json:"type"`
		Content   string          `json:"content"`
		ServerURL string          `json:"server_url"`
		Tool      string          `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
		Output    string          `json:"output"`
		IsError   bool            `json:"is_error"`
		// Interrupted: in flight at a crash and not sent again.
		Interrupted bool `json:"interrupted"`
	} `json:"steps"`
	Output *struct {
		Content  string `json:"content"`
		Markdown string `json:"markdown"`
	} `json:"output"`
	Usage struct {
		TotalTokens int `json:"total_tokens"`
	} `json:"usage"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ExpiresAt             *time.Time `json:"expires_at"`
	RetryingAt            *time.Time `json:"retrying_at"`
	AuthorizationRequired []struct {
		ServerURL        string    `json:"server_url"`
		AuthorizationURL string    `json:"authorization_url"`
		ExpiresAt        time.Time `json:"expires_at"`
	} `json:"authorization_required"`
}

func (e *testEnv) submit(t testing.TB, key string, body any, header ...string) task {
	t.Helper()
	status, raw, _ := call(t, "POST", e.URL+"/v1/tasks", key, body, header...)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var tk task
	require.NoError(t, json.Unmarshal(raw, &tk))
	return tk
}

// waitDone long-polls the public JSON result URL until the task ends.
func waitDone(t testing.TB, tk task) task {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		status, raw, _ := call(t, "GET", tk.ResultURLs.JSON+"?wait=10", "", nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		var got task
		require.NoError(t, json.Unmarshal(raw, &got))
		switch got.Status {
		case "completed", "failed", "canceled":
			return got
		}
	}
	t.Fatalf("task %s did not finish within 60s", tk.ID)
	return task{}
}

// waitStatus long-polls the public JSON result URL until the task has the
// status.
func waitStatus(t testing.TB, tk task, status string) task {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for wait := "0"; time.Now().Before(deadline); wait = "5" {
		// Look first: a long-poll returns only when the status changes.
		code, raw, _ := call(t, "GET", tk.ResultURLs.JSON+"?wait="+wait, "", nil)
		require.Equal(t, http.StatusOK, code, string(raw))
		var got task
		require.NoError(t, json.Unmarshal(raw, &got))
		if got.Status == status {
			return got
		}
		if status != "completed" && status != "failed" && status != "canceled" {
			require.NotContains(t, []string{"completed", "failed", "canceled"}, got.Status, "task ended (%+v) while waiting for %s", got.Error, status)
		}
	}
	t.Fatalf("task %s did not reach %s within 60s", tk.ID, status)
	return task{}
}

func toolCallsThenAnswer(calls []llmtest.ToolCall) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return llmtest.Response{Content: "The tool said: " + last.Content}
		}
		return llmtest.Response{ToolCalls: calls}
	}
}

func backends(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	storetest.Backends(t, fn)
}

// processEnv is the environment of a `mcpidp serve` process a test starts
// (testenv.StartProcess): its database, loopback port and model, the acme
// key, a fixed encryption key and private networks allowed; extra entries
// ("NAME=value") come last.
func processEnv(databaseURL string, port int, modelURL string, extra ...string) []string {
	return append([]string{
		"MCPIDP_DATABASE_URL=" + databaseURL,
		"MCPIDP_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"MCPIDP_PUBLIC_URL=http://127.0.0.1:" + strconv.Itoa(port),
		"MCPIDP_API_KEYS=acme:" + keyAcme,
		"MCPIDP_UPSTREAM_BASE_URL=" + modelURL,
		"MCPIDP_ALLOW_PRIVATE_NETWORKS=true",
		"MCPIDP_ENCRYPTION_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	}, extra...)
}
