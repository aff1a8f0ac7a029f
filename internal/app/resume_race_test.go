package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	// Aliased: this package has a test type named task.
	tasksvc "github.com/mcpidp/mcpidp/internal/task"
)

// REVIEW: a task waiting on two servers whose two logins complete at the
// same time. On PostgreSQL (READ COMMITTED) each Resume transaction
// deletes its own wait, then still sees the other wait (deleted by the
// other, uncommitted transaction) and concludes "still waiting on another
// server". Both commit: no wait is left, the task stays
// awaiting_authorization, nothing will ever resume it, and the
// authorization timeout job treats "no waits" as "resumed meanwhile".
func TestConcurrentLoginsForTwoServersResume(t *testing.T) {
	t.Parallel()
	env := startEnv(t, storetest.DatabaseURL(t, storetest.Postgres))
	mcpA, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	mcpB, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	env.Model.Handle(echoOnce(t))
	canonA, err := mcpauth.CanonicalServerURL(mcpA.URL)
	require.NoError(t, err)
	canonB, err := mcpauth.CanonicalServerURL(mcpB.URL)
	require.NoError(t, err)

	const n = 20
	tasks := make([]task, n)
	for i := range tasks {
		tasks[i] = env.submit(t, keyAcme, map[string]any{"user": fmt.Sprintf("twin-%d", i), "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": mcpA.URL}, {"type": "mcp", "url": mcpB.URL}}})
	}
	for i := range tasks {
		tasks[i] = waitStatus(t, tasks[i], "awaiting_authorization")
		require.Len(t, tasks[i].AuthorizationRequired, 2)
	}

	ctx := context.Background()
	st, svc := env.App.Store(), env.App.Tasks()
	stuck, stuckSequential := 0, 0
	for i, tk := range tasks {
		before, err := st.GetTaskByID(ctx, st.DB(), tk.ID)
		require.NoError(t, err)
		user := fmt.Sprintf("twin-%d", i)
		var wg sync.WaitGroup
		start := make(chan struct{})
		sequential := i%4 == 0 // control: one login after the other
		for _, server := range []string{canonA, canonB} {
			if sequential {
				_, err := svc.Resume(ctx, tasksvc.ResumeParams{Tenant: "acme", User: user, ServerURL: server})
				require.NoError(t, err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := svc.Resume(ctx, tasksvc.ResumeParams{Tenant: "acme", User: user, ServerURL: server})
				require.NoError(t, err)
			}()
		}
		close(start)
		wg.Wait()
		after, err := st.GetTaskByID(ctx, st.DB(), tk.ID)
		require.NoError(t, err)
		waits, err := st.TaskWaits(ctx, st.DB(), tk.ID)
		require.NoError(t, err)
		if after.Status == store.TaskAwaitingAuthorization && after.Segment == before.Segment && len(waits) == 0 {
			if sequential {
				stuckSequential++
			} else {
				stuck++
			}
		}
	}
	require.Zero(t, stuckSequential, "logins one after the other must resume the task")
	require.Zero(t, stuck, "%d of %d tasks whose two logins completed together wait on nothing and will never resume", stuck, n-n/4)
}
