package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// effectServer is an MCP server with one tool that is neither read-only nor
// idempotent: effect(key) performs a side effect, counted per key, then
// takes a while to answer, so that kills land in the middle of calls.
type effectServer struct {
	URL string

	mu      sync.Mutex
	effects map[string]int
	rng     *rand.Rand
}

func newEffectServer(t *testing.T, seed uint64) *effectServer {
	s := &effectServer{effects: map[string]int{}, rng: rand.New(rand.NewPCG(seed, 1))}
	m := server.NewMCPServer("effects", "1.0.0", server.WithToolCapabilities(false))
	m.AddTool(mcp.NewTool("effect", mcp.WithDescription("Does something that must not happen twice."),
		mcp.WithString("key", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			key := req.GetString("key", "")
			s.mu.Lock()
			s.effects[key]++
			delay := time.Duration(100+s.rng.IntN(500)) * time.Millisecond
			s.mu.Unlock()
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return mcp.NewToolResultText("did " + key), nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(m))
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	s.URL = ts.URL + "/mcp"
	return s
}

func (s *effectServer) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.effects[key]
}

// deliveryLog is a webhook receiver that keeps, per task and event type,
// the webhook-id of each delivery (a redelivery keeps its id).
type deliveryLog struct {
	URL string

	mu  sync.Mutex
	ids map[string]map[string][]string // task id → type → webhook-ids
}

func newDeliveryLog(t *testing.T) *deliveryLog {
	l := &deliveryLog{ids: map[string]map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Type string `json:"type"`
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body is not JSON: %s", body)
		}
		l.mu.Lock()
		if l.ids[ev.Data.ID] == nil {
			l.ids[ev.Data.ID] = map[string][]string{}
		}
		l.ids[ev.Data.ID][ev.Type] = append(l.ids[ev.Data.ID][ev.Type], r.Header.Get("webhook-id"))
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	l.URL = srv.URL
	return l
}

// ended returns, per task, the distinct ids of its task.completed and
// task.failed events, and how many deliveries repeated an id.
func (l *deliveryLog) ended(taskID string) (ids map[string]bool, repeats int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids = map[string]bool{}
	for _, typ := range []string{"task.completed", "task.failed"} {
		for _, id := range l.ids[taskID][typ] {
			if ids[id] {
				repeats++
			}
			ids[id] = true
		}
	}
	return ids, repeats
}

func (l *deliveryLog) count(taskID, typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids[taskID][typ])
}

// Many tasks, each making two calls to a tool that is neither read-only nor
// idempotent, while the serve process is killed with SIGKILL at random
// times and started again. Every task ends exactly once, no side effect
// happens twice, and each task's end is announced by exactly one webhook
// event (a redelivery after a kill carries the same webhook-id).
func TestChaosKillsNeverRepeatSideEffects(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills a real process many times")
	}
	bin := mcpidpBinary(t)
	backends(t, func(t *testing.T, databaseURL string) {
		const tasks = 60
		seed := uint64(time.Now().UnixNano())
		if s := os.Getenv("MCPIDP_CHAOS_SEED"); s != "" {
			seed, _ = strconv.ParseUint(s, 10, 64)
		}
		t.Logf("chaos seed %d (MCPIDP_CHAOS_SEED to replay the kill times)", seed)
		rng := rand.New(rand.NewPCG(seed, 2))
		tools := newEffectServer(t, seed)
		hooks := newDeliveryLog(t)
		model := llmtest.NewServer(t)
		model.Handle(func(req llmtest.Request) llmtest.Response {
			results := 0
			for _, m := range req.Messages {
				if m.Role == "tool" {
					results++
				}
			}
			input := req.Messages[0].Content
			if results < 2 {
				args, _ := json.Marshal(map[string]string{"key": fmt.Sprintf("%s/%d", input, results+1)})
				return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "effect"), Arguments: string(args)}},
					Delay: 30 * time.Millisecond}
			}
			return llmtest.Response{Content: "finished " + input, Delay: 30 * time.Millisecond}
		})

		port := testenv.FreePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		env := processEnv(databaseURL, port, model.URL(),
			"MCPIDP_WEBHOOK_SECRET="+testWebhookSecret,
			// Few workers, so that the tasks take a while and the kills
			// land at every stage of them.
			"MCPIDP_WORKERS=3",
			"MCPIDP_JOB_TIMEOUT=5s",
			"MCPIDP_RESCUE_STUCK_JOBS_AFTER=6s",
		)
		start := time.Now()
		proc := testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
		e := &testEnv{URL: base}
		submitted := make([]task, tasks)
		for i := range submitted {
			submitted[i] = e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": fmt.Sprintf("chaos-%02d", i),
				"tools": []map[string]any{{"type": "mcp", "url": tools.URL}}, "webhook": map[string]any{"url": hooks.URL}})
		}

		// Kill at random times while work is left, for at most 20 s.
		kills := 0
		var down time.Duration
		st, _ := storetest.OpenStore(t, databaseURL, nil)
		for time.Since(start) < 20*time.Second {
			time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond)
			var queued int
			require.NoError(t, st.DB().QueryRowContext(context.Background(),
				`SELECT COUNT(*) FROM mcpidp_task WHERE status = 'queued'`).Scan(&queued))
			if queued == 0 {
				break
			}
			kills++
			killedAt := time.Now()
			require.NoError(t, syscall.Kill(-proc.Process.Pid, syscall.SIGKILL))
			require.Eventually(t, func() bool { return !testenv.PortReady(port)() }, 10*time.Second, 10*time.Millisecond)
			proc = testenv.StartProcess(t, bin, []string{"serve"}, env, testenv.PortReady(port))
			down += time.Since(killedAt)
		}
		killsDone := time.Since(start)

		var interrupted, interruptedRan, effects int
		for _, tk := range submitted {
			done := waitDone(t, tk)
			require.Equal(t, "completed", done.Status, "task %s: %+v", tk.ID, done.Error)
			input := strings.TrimPrefix(done.Output.Content, "finished ")
			require.Len(t, done.Steps, 5, "model, effect, model, effect, model")
			for i, n := range []int{1, 2} {
				step := done.Steps[1+2*i]
				key := fmt.Sprintf("%s/%d", input, n)
				require.Equal(t, "effect", step.Tool)
				require.LessOrEqual(t, tools.count(key), 1, "side effect %s happened twice", key)
				effects += tools.count(key)
				if step.Interrupted {
					interrupted++
					interruptedRan += tools.count(key)
					continue
				}
				require.False(t, step.IsError, "%+v", step)
				require.Equal(t, "did "+key, step.Output)
				require.Equal(t, 1, tools.count(key), "a recorded result comes from exactly one call")
			}
		}
		allDone := time.Since(start)

		// Every end is announced once: one event id per task, whatever the
		// redeliveries.
		var repeats int
		for _, tk := range submitted {
			require.Eventually(t, func() bool { ids, _ := hooks.ended(tk.ID); return len(ids) > 0 }, 60*time.Second, 50*time.Millisecond,
				"no task.completed webhook for %s", tk.ID)
		}
		time.Sleep(time.Second) // a duplicate would come now
		for _, tk := range submitted {
			ids, r := hooks.ended(tk.ID)
			require.Len(t, ids, 1, "task %s ended with %d events", tk.ID, len(ids))
			require.Zero(t, hooks.count(tk.ID, "task.failed"))
			repeats += r
		}
		t.Logf("chaos on %s: %d tasks, %d kills in %s (down %s in all), all tasks ended after %s, webhooks after %s; "+
			"%d of %d tool calls interrupted (%d of them had run), %d side effects, %d webhook redeliveries",
			strings.SplitN(databaseURL, ":", 2)[0], tasks, kills, killsDone.Round(100*time.Millisecond), down.Round(100*time.Millisecond), allDone.Round(100*time.Millisecond),
			time.Since(start).Round(100*time.Millisecond), interrupted, 2*tasks, interruptedRan, effects, repeats)
		require.GreaterOrEqual(t, kills, 3, "the chaos test hardly killed anything")
	})
}
