package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestWebhooksSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseWebhooks(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestWebhooksPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseWebhooks(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
