package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestOAuthSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseOAuth(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestOAuthPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseOAuth(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
