package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// TestAPIKeyCacheBound checks the bound MCPIDP_API_KEY_CACHE_TTL promises:
// a new key works at once, and a key deleted from the database stops
// working within the TTL although it was just used (and cached).
func TestAPIKeyCacheBound(t *testing.T) {
	backends(t, func(t *testing.T, databaseURL string) {
		const ttl = 300 * time.Millisecond
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_API_KEY_CACHE_TTL"] = ttl.String() })
		ctx := context.Background()
		key, _, err := env.App.CreateKey(ctx, "keyed")
		require.NoError(t, err)
		status, body, _ := call(t, "GET", env.URL+"/v1/tasks", key, nil)
		require.Equal(t, http.StatusOK, status, string(body))

		st := env.App.Store()
		_, err = st.DB().ExecContext(ctx, `DELETE FROM mcpidp_api_key WHERE key_hash = $1`, store.HashKey(key))
		require.NoError(t, err)
		deleted := time.Now()
		for {
			status, _, _ = call(t, "GET", env.URL+"/v1/tasks", key, nil)
			if status == http.StatusUnauthorized {
				break
			}
			require.Equal(t, http.StatusOK, status)
			require.Less(t, time.Since(deleted), ttl+200*time.Millisecond, "a deleted key still works past the cache TTL")
			time.Sleep(20 * time.Millisecond)
		}
		// And it stays refused.
		status, _, _ = call(t, "GET", env.URL+"/v1/tasks", key, nil)
		require.Equal(t, http.StatusUnauthorized, status)
	})
}

// TestAPIKeyCacheOff checks that MCPIDP_API_KEY_CACHE_TTL=0 refuses a
// deleted key at once.
func TestAPIKeyCacheOff(t *testing.T) {
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_API_KEY_CACHE_TTL"] = "0" })
		ctx := context.Background()
		key, _, err := env.App.CreateKey(ctx, "keyed")
		require.NoError(t, err)
		status, _, _ := call(t, "GET", env.URL+"/v1/tasks", key, nil)
		require.Equal(t, http.StatusOK, status)
		_, err = env.App.Store().DB().ExecContext(ctx, `DELETE FROM mcpidp_api_key WHERE key_hash = $1`, store.HashKey(key))
		require.NoError(t, err)
		status, _, _ = call(t, "GET", env.URL+"/v1/tasks", key, nil)
		require.Equal(t, http.StatusUnauthorized, status)
	})
}
