package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestInputsSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseInputs(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestInputsPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseInputs(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
