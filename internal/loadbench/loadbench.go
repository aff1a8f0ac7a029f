// Package loadbench measures what mcpidp adds to a chat request and how
// fast it accepts tasks, under load, side by side with calling the model
// directly: a zero-latency fake OpenAI upstream and a fake MCP server on
// loopback, and a whole mcpidp (`serve`, real HTTP listener, an API key made
// with `keys create`'s code) in this process. Runs of the direct path and
// of mcpidp alternate, round after round, so a machine that is busier in
// one moment than in another weighs on both alike. cmd/mcpidp-load is its
// command; BENCHMARKS.md shows a table it printed.
package loadbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// Config says what to run.
type Config struct {
	// Duration of one run of one scenario against one target.
	Duration time.Duration
	// Rounds is how many times each scenario runs against each target,
	// alternating which goes first.
	Rounds int
	// Scenarios to run, by name (see Scenarios); empty runs all.
	Scenarios []string
	// Targets to run: "direct", "mcpidp"; empty runs both. Profiling
	// mcpidp alone gives a profile without the direct runs in it.
	Targets []string
	// PostgresURL is the server for the task-submission scenario; a
	// schema of its own is created in it and dropped at the end.
	PostgresURL string
	// Quick shortens every run (a smoke test that the benchmark works).
	Quick bool
	// Logger receives mcpidp's own logs. Optional: discarded. Its level
	// is MCPIDP_LOG_LEVEL's default (info), as in production.
	Logger *slog.Logger
}

// Scenarios are the scenario names, in the order they run.
var Scenarios = []string{"c1", "open500", "open1000", "ceiling16", "ceiling64", "stream_ttfb", "one_tool", "tasks_pg"}

const (
	targetDirect = "direct"
	targetMCPIDP = "mcpidp"
)

// Run starts the fakes and mcpidp, runs the scenarios and writes the table
// to out. It fails when any request failed.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Quick {
		cfg.Duration, cfg.Rounds = 200*time.Millisecond, 1
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = Scenarios
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = []string{targetDirect, targetMCPIDP}
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q, want one of %s", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, t := range cfg.Targets {
		if t != targetDirect && t != targetMCPIDP {
			return fmt.Errorf("unknown target %q, want direct or mcpidp", t)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	b, err := newBench(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	results := map[string]map[string]*sample{}
	for round := range cfg.Rounds {
		for _, name := range cfg.Scenarios {
			sc := b.scenario(name)
			if sc == nil {
				continue
			}
			targets := slices.Clone(cfg.Targets)
			if round%2 == 1 {
				slices.Reverse(targets)
			}
			for _, t := range targets {
				shot := sc.shots[t]
				if shot == nil {
					continue
				}
				var s sample
				if sc.rate > 0 {
					s = openLoop(ctx, sc.rate, cfg.Duration, shot)
				} else {
					s = closedLoop(ctx, sc.conc, cfg.Duration, shot)
				}
				if results[name] == nil {
					results[name] = map[string]*sample{}
				}
				if results[name][t] == nil {
					results[name][t] = &sample{}
				}
				results[name][t].add(s)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	writeTable(out, cfg, b, results)
	var errs []error
	for _, name := range cfg.Scenarios {
		for _, t := range cfg.Targets {
			if s := results[name][t]; s != nil && s.errors > 0 {
				errs = append(errs, fmt.Errorf("%s %s: %d of %d requests failed, the first: %w", name, t, s.errors, s.requests(), s.firstErr))
			}
		}
	}
	return errors.Join(errs...)
}

// bench holds the running servers and the clients of both targets.
type bench struct {
	cfg     Config
	model   *loopback
	mcp     *loopback
	stopApp []func()
	tmp     string

	// direct and proxied have connection pools of their own.
	direct, proxied *http.Client
	mcpidpURL       string
	apiKey          string

	// tasks is the PostgreSQL mcpidp of the tasks scenario.
	tasksURL, tasksKey string
	dropSchema         func()
}

const upstreamKey = "sk-load-upstream"

func newBench(ctx context.Context, cfg Config) (_ *bench, err error) {
	b := &bench{cfg: cfg, direct: newClient(), proxied: newClient()}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.model, err = listen(fakeModel()); err != nil {
		return nil, err
	}
	if b.mcp, err = listen(fakeMCP()); err != nil {
		return nil, err
	}
	if b.tmp, err = os.MkdirTemp("", "mcpidp-load-"); err != nil {
		return nil, err
	}
	needChat := slices.ContainsFunc(cfg.Scenarios, func(s string) bool { return s != "tasks_pg" })
	if needChat {
		if b.mcpidpURL, b.apiKey, err = b.startMCPIDP(ctx, "sqlite:"+filepath.Join(b.tmp, "mcpidp.db"), app.ModeServe); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cfg.Scenarios, "tasks_pg") && slices.Contains(cfg.Targets, targetMCPIDP) {
		pgURL, drop, err := newSchema(ctx, cfg.PostgresURL)
		if err != nil {
			return nil, err
		}
		b.dropSchema = drop
		// The API alone, as `mcpidp api` runs it: accepting a task is its
		// work; workers run elsewhere.
		if b.tasksURL, b.tasksKey, err = b.startMCPIDP(ctx, pgURL, app.ModeAPI); err != nil {
			return nil, err
		}
	}
	// Warm both paths up: connection pools, SQLite's page cache.
	for _, name := range cfg.Scenarios {
		if sc := b.scenario(name); sc != nil {
			for t, shot := range sc.shots {
				if slices.Contains(cfg.Targets, t) {
					if s := closedLoop(ctx, 4, 100*time.Millisecond, shot); s.errors > 0 {
						return nil, fmt.Errorf("warming up %s %s: %w", name, t, s.firstErr)
					}
				}
			}
		}
	}
	return b, nil
}

// startMCPIDP runs mcpidp on loopback with the fake model as its upstream
// and returns its URL and a new API key of tenant "load".
func (b *bench) startMCPIDP(ctx context.Context, databaseURL string, mode app.Mode) (string, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	base := "http://" + ln.Addr().String()
	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	env := map[string]string{
		"MCPIDP_DATABASE_URL":           databaseURL,
		"MCPIDP_PUBLIC_URL":             base,
		"MCPIDP_UPSTREAM_BASE_URL":      b.model.URL + "/v1",
		"MCPIDP_UPSTREAM_API_KEY":       upstreamKey,
		"MCPIDP_ALLOW_PRIVATE_NETWORKS": "true", // the fake MCP server is on loopback
		"MCPIDP_ENCRYPTION_KEY":         base64.StdEncoding.EncodeToString(keyBytes),
	}
	appCfg, err := app.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		ln.Close()
		return "", "", err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a, err := app.New(runCtx, appCfg, mode, app.Options{Logger: b.cfg.Logger, Migrate: true})
	if err != nil {
		cancel()
		ln.Close()
		return "", "", err
	}
	key, _, err := a.CreateKey(ctx, "load")
	if err != nil {
		cancel()
		ln.Close()
		a.Close()
		return "", "", err
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(runCtx, ln) }()
	b.stopApp = append(b.stopApp, func() {
		cancel()
		<-done
		a.Close()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := b.proxied.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			return "", "", fmt.Errorf("mcpidp stopped while starting: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return "", "", errors.New("mcpidp did not answer /healthz within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return base, key, nil
}

func (b *bench) close() {
	for i := len(b.stopApp) - 1; i >= 0; i-- {
		b.stopApp[i]()
	}
	if b.dropSchema != nil {
		b.dropSchema()
	}
	if b.model != nil {
		b.model.Close()
	}
	if b.mcp != nil {
		b.mcp.Close()
	}
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
	t.DisableCompression = true
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// scenario is one row of the table.
type scenario struct {
	label string
	conc  int // closed loop: workers
	rate  int // open loop: requests per second
	// metric is what the latency columns show.
	metric string
	shots  map[string]shotFunc
}

const (
	chatBody   = `{"model":"gpt-load","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}]}`
	streamBody = `{"model":"gpt-load","stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}]}`
	taskBody   = `{"user":"load","model":"gpt-load","input":"hello","metadata":{"k":"v"}}`
)

func (b *bench) scenario(name string) *scenario {
	chat := func(body string) map[string]shotFunc {
		return map[string]shotFunc{
			targetDirect: b.post(b.direct, b.model.URL+"/v1/chat/completions", upstreamKey, body, http.StatusOK, false),
			targetMCPIDP: b.post(b.proxied, b.mcpidpURL+"/v1/chat/completions", b.apiKey, body, http.StatusOK, false),
		}
	}
	switch name {
	case "c1":
		return &scenario{label: "chat, 1 connection (closed loop)", conc: 1, metric: "latency", shots: chat(chatBody)}
	case "open500":
		return &scenario{label: "chat, 500 req/s (open loop)", rate: 500, metric: "latency", shots: chat(chatBody)}
	case "open1000":
		return &scenario{label: "chat, 1000 req/s (open loop)", rate: 1000, metric: "latency", shots: chat(chatBody)}
	case "ceiling16":
		return &scenario{label: "chat, ceiling: 16 connections flat out", conc: 16, metric: "latency", shots: chat(chatBody)}
	case "ceiling64":
		return &scenario{label: "chat, ceiling: 64 connections flat out", conc: 64, metric: "latency", shots: chat(chatBody)}
	case "stream_ttfb":
		return &scenario{label: "chat stream, 1 connection", conc: 1, metric: "time to first byte", shots: map[string]shotFunc{
			targetDirect: b.post(b.direct, b.model.URL+"/v1/chat/completions", upstreamKey, streamBody, http.StatusOK, true),
			targetMCPIDP: b.post(b.proxied, b.mcpidpURL+"/v1/chat/completions", b.apiKey, streamBody, http.StatusOK, true),
		}}
	case "one_tool":
		mcpURL := b.mcp.URL + "/mcp"
		oneTool := `{"model":"gpt-load","user":"load","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"` + mcpURL + `","allowed_tools":["echo"]}]}`
		return &scenario{label: "one MCP tool call, 1 connection", conc: 1, metric: "latency", shots: map[string]shotFunc{
			targetDirect: b.oneToolDirect(mcpURL),
			targetMCPIDP: b.post(b.proxied, b.mcpidpURL+"/v1/chat/completions", b.apiKey, oneTool, http.StatusOK, false),
		}}
	case "tasks_pg":
		if b.tasksURL == "" {
			return nil
		}
		return &scenario{label: "task submission, PostgreSQL, 16 connections", conc: 16, metric: "latency", shots: map[string]shotFunc{
			targetMCPIDP: b.post(b.proxied, b.tasksURL+"/v1/tasks", b.tasksKey, taskBody, http.StatusAccepted, false),
		}}
	}
	return nil
}

// post is a shot that POSTs body and reads the whole answer; with ttfb the
// latency is the time to the first byte of the body.
func (b *bench) post(client *http.Client, url, key, body string, want int, ttfb bool) shotFunc {
	return func(ctx context.Context, start time.Time) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var first time.Duration
		if ttfb {
			var one [1]byte
			if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
				return 0, err
			}
			first = time.Since(start)
		}
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != want {
			return 0, fmt.Errorf("%w %d from %s: %s", errStatus, resp.StatusCode, url, raw)
		}
		if ttfb {
			return first, nil
		}
		return time.Since(start), nil
	}
}

// oneToolDirect is what a client does itself for one MCP tool call: ask
// the model, run the tool over its own MCP session (initialize, tools/list,
// tools/call, close), ask the model again.
func (b *bench) oneToolDirect(mcpURL string) shotFunc {
	first := `{"model":"gpt-load","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"load__echo","parameters":{"type":"object"}}}]}`
	turn, _ := json.Marshal(map[string]any{"model": "gpt-load", "tools": json.RawMessage(`[{"type":"function","function":{"name":"load__echo","parameters":{"type":"object"}}}]`),
		"messages": []any{
			map[string]any{"role": "user", "content": "hi"},
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function",
				"function": map[string]any{"name": "load__echo", "arguments": `{"message":"hi"}`}}}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": "echo: hi"},
		}})
	modelURL := b.model.URL + "/v1/chat/completions"
	ask1 := b.post(b.direct, modelURL, upstreamKey, first, http.StatusOK, false)
	ask2 := b.post(b.direct, modelURL, upstreamKey, string(turn), http.StatusOK, false)
	return func(ctx context.Context, start time.Time) (time.Duration, error) {
		if _, err := ask1(ctx, start); err != nil {
			return 0, err
		}
		s, err := mcpclient.Connect(ctx, mcpclient.Options{HTTPClient: b.direct}, mcpclient.Server{URL: mcpURL})
		if err != nil {
			return 0, err
		}
		if _, err := s.Tools(ctx); err != nil {
			s.Close()
			return 0, err
		}
		res, err := s.CallTool(ctx, "echo", json.RawMessage(`{"message":"hi"}`))
		s.Close()
		if err != nil {
			return 0, err
		}
		if !bytes.Contains([]byte(fmt.Sprint(res)), []byte("echo: hi")) {
			return 0, fmt.Errorf("unexpected tool result %v", res)
		}
		return ask2(ctx, start)
	}
}

// newSchema creates a schema of its own on the PostgreSQL server and
// returns a URL whose search_path is it, and a func that drops it.
func newSchema(ctx context.Context, base string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("error connecting to PostgreSQL for the task scenario (-postgres): %w", err)
	}
	defer conn.Close(ctx)
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	schema := "load_" + hex.EncodeToString(rb[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("error creating schema: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func writeTable(out io.Writer, cfg Config, b *bench, results map[string]map[string]*sample) {
	fmt.Fprintf(out, "%d round(s) of %s per scenario and target, interleaved\n\n", cfg.Rounds, cfg.Duration)
	tw := tabwriter.NewWriter(out, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\tmetric\treq/s direct\treq/s mcpidp\tp50 direct\tp50 mcpidp\tp50 added\tp99 direct\tp99 mcpidp\tp99 added\tCPU/req direct\tCPU/req mcpidp\tCPU/req added\t")
	for _, name := range cfg.Scenarios {
		sc := b.scenario(name)
		if sc == nil || results[name] == nil {
			continue
		}
		d, m := results[name][targetDirect], results[name][targetMCPIDP]
		col := func(s *sample, f func(*sample) string) string {
			if s == nil {
				return "–"
			}
			return f(s)
		}
		added := func(f func(*sample) time.Duration) string {
			if d == nil || m == nil {
				return "–"
			}
			return fmtSigned(f(m) - f(d))
		}
		p50 := func(s *sample) time.Duration { return s.quantile(0.50) }
		p99 := func(s *sample) time.Duration { return s.quantile(0.99) }
		cpu := func(s *sample) time.Duration { return s.cpuPerRequest() }
		rate := func(s *sample) string { return fmt.Sprintf("%.0f", s.rate()) }
		dur := func(f func(*sample) time.Duration) func(*sample) string {
			return func(s *sample) string { return fmtDur(f(s)) }
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.label, sc.metric,
			col(d, rate), col(m, rate),
			col(d, dur(p50)), col(m, dur(p50)), added(p50),
			col(d, dur(p99)), col(m, dur(p99)), added(p99),
			col(d, dur(cpu)), col(m, dur(cpu)), added(cpu))
	}
	tw.Flush()
	fmt.Fprintln(out, "\nCPU/req is the whole process's CPU time (load generator, fake servers and, for mcpidp, mcpidp) per request;")
	fmt.Fprintln(out, "\"added\" is mcpidp's share. Open-loop latencies count from when a request was due to leave.")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}

func fmtSigned(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}
