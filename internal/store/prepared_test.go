package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// TestPrepared checks that the statement-keeping DBTX reads what the plain
// handle reads, again and again and from many goroutines at once, and sees
// writes made through the plain handle.
func TestPrepared(t *testing.T) {
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		s, _ := storetest.OpenStore(t, databaseURL, nil)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		_, err := s.TenantForKeyHash(ctx, s.Prepared(), store.HashKey("nope"))
		require.ErrorIs(t, err, store.ErrNotFound)

		_, err = s.CreateAPIKey(ctx, s.DB(), "acme", store.HashKey("k1"))
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 20 {
					tenant, err := s.TenantForKeyHash(ctx, s.Prepared(), store.HashKey("k1"))
					if err != nil || tenant != "acme" {
						t.Errorf("got %q, %v", tenant, err)
						return
					}
				}
			})
		}
		wg.Wait()
		_, err = s.DB().ExecContext(ctx, `DELETE FROM mcpidp_api_key WHERE key_hash = $1`, store.HashKey("k1"))
		require.NoError(t, err)
		_, err = s.TenantForKeyHash(ctx, s.Prepared(), store.HashKey("k1"))
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
