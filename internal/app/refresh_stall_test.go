package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// REVIEW: mcpauth refreshes a token while holding a database transaction
// for the whole token request (up to 30 s). With SQLite there is one
// database connection, so a slow (or hostile) authorization server stalls
// every other request of the service meanwhile: here a plain
// GET /v1/tasks of another tenant.
func TestSlowRefreshDoesNotStallTheService(t *testing.T) {
	t.Parallel()
	env := startEnv(t, storetest.DatabaseURL(t, storetest.SQLite))
	mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{Now: env.Clock.Now, RefreshDelay: 4 * time.Second})
	env.Model.Handle(echoOnce(t))
	connectWithScopes(t, env, "gina", mcp.URL, nil)
	env.Clock.Add(2 * time.Hour) // the access token has expired: the next task refreshes it

	env.submit(t, keyAcme, map[string]any{"user": "gina", "model": "m", "input": "x",
		"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})
	time.Sleep(time.Second) // the refresh is under way
	start := time.Now()
	status, raw, _ := call(t, "GET", env.URL+"/v1/tasks", keyGlobex, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Less(t, time.Since(start), time.Second, "another tenant's list waited for the refresh")
}
