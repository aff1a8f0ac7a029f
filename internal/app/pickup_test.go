package app_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// Tasks submitted in bursts on PostgreSQL (written in groups, one after
// another) start at once, not at the workers' next poll (1 s): each group
// notifies the workers when it commits, not only the first of a few
// milliseconds.
func TestGroupedTasksStartPromptly(t *testing.T) {
	t.Parallel()
	env := startEnv(t, storetest.DatabaseURL(t, storetest.Postgres))
	var mu sync.Mutex
	started := map[string]time.Time{}
	env.Model.Handle(func(req llmtest.Request) llmtest.Response {
		mu.Lock()
		started[req.Messages[0].Content] = time.Now()
		mu.Unlock()
		return llmtest.Response{Content: "ok"}
	})
	const waves, burst = 4, 16
	var worst time.Duration
	for wave := range waves {
		accepted := make([]time.Time, burst)
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": fmt.Sprintf("w%d-%d", wave, i)})
				accepted[i] = time.Now()
			})
		}
		wg.Wait()
		for i := range burst {
			input := fmt.Sprintf("w%d-%d", wave, i)
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				_, ok := started[input]
				return ok
			}, 5*time.Second, 5*time.Millisecond, input)
			mu.Lock()
			worst = max(worst, started[input].Sub(accepted[i]))
			mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Less(t, worst, 400*time.Millisecond, "a task waited for the workers' poll")
}
