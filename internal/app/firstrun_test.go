package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

func TestFirstRunGuidance(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		start := func(t *testing.T, edit func(env map[string]string)) string {
			logs := &testenv.SyncBuffer{}
			env := startEnv(t, databaseURL, func(eo *envOpts) {
				edit(eo.env)
				eo.opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			})
			// Serve logs its guidance before it listens: once healthz
			// answers, it is written.
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "mcpidp listening") }, 10*time.Second, 20*time.Millisecond)
			status, _, _ := call(t, "GET", env.URL+"/healthz", "", nil)
			require.Equal(t, 200, status)
			return logs.String()
		}

		// A fresh machine: no key of any kind.
		out := start(t, func(env map[string]string) {
			delete(env, "MCPIDP_API_KEYS")
			delete(env, "MCPIDP_UPSTREAM_API_KEY")
		})
		require.Contains(t, out, "no API key yet")
		require.Contains(t, out, "mcpidp keys create --tenant NAME")
		require.Contains(t, out, "MCPIDP_API_KEYS=tenant:key")
		require.Equal(t, 1, strings.Count(out, "no upstream model key"), out)
		require.Contains(t, out, "MCPIDP_UPSTREAM_API_KEY")

		// Keys from the environment are keys.
		out = start(t, func(env map[string]string) { delete(env, "MCPIDP_UPSTREAM_API_KEY") })
		require.NotContains(t, out, "no API key yet")
		require.Contains(t, out, "no upstream model key")

		// A key made with `mcpidp keys create`, and an upstream key: nothing to say.
		var stdout bytes.Buffer
		err := app.Run(context.Background(), []string{"keys", "create", "--tenant", "acme"}, func(k string) string {
			return map[string]string{"MCPIDP_DATABASE_URL": databaseURL, "MCPIDP_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}[k]
		}, &stdout, io.Discard)
		require.NoError(t, err)
		require.Contains(t, stdout.String(), "api_key:")
		out = start(t, func(env map[string]string) { delete(env, "MCPIDP_API_KEYS") })
		require.NotContains(t, out, "no API key yet")
		require.NotContains(t, out, "no upstream model key")
	})
}
