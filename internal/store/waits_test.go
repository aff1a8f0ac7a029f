package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestWaitsSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseWaits(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestWaitsPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseWaits(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
