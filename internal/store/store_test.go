package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
