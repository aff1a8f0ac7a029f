package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestDurableSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseDurable(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestDurablePostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseDurable(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
