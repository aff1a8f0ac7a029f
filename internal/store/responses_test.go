package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestResponsesSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseResponses(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestResponsesPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseResponses(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
