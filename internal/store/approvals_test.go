package store_test

import (
	"testing"

	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

func TestApprovalsSQLite(t *testing.T) {
	t.Parallel()
	storetest.ExerciseApprovals(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.SQLite) })
}

func TestApprovalsPostgres(t *testing.T) {
	t.Parallel()
	storetest.ExerciseApprovals(t, func(t testing.TB) string { return storetest.DatabaseURL(t, storetest.Postgres) })
}
