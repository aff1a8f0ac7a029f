// Package storetest holds the store conformance suite that every backend
// must pass (Exercise), and helpers that give each test its own real
// database: a temporary SQLite file, or a fresh PostgreSQL schema.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// DefaultPostgresURL is the development machines' PostgreSQL; override with
// MCPIDP_TEST_POSTGRES_URL.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Backend names a database kind under test.
type Backend string

const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// Backends runs fn once per backend as parallel subtests, each with its own
// fresh database URL.
func Backends(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	t.Helper()
	for _, b := range []Backend{SQLite, Postgres} {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fn(t, DatabaseURL(t, b))
		})
	}
}

// DatabaseURL returns a URL for a new, empty database of the backend that
// is removed when the test ends.
func DatabaseURL(t testing.TB, b Backend) string {
	t.Helper()
	if b == SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "mcpidp.db")
	}
	return PostgresURL(t)
}

// PostgresURL creates a schema of its own for the test and returns a URL
// whose search_path points at it. It fails (never skips) when PostgreSQL is
// not reachable: CI starts it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("MCPIDP_TEST_POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err, "PostgreSQL must be running for tests (see README); set MCPIDP_TEST_POSTGRES_URL to use another")
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("storetest: dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("storetest: dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenStore opens databaseURL, applies our migrations and returns a Store
// using now as its clock (time.Now when nil). Closed at test end.
func OpenStore(t testing.TB, databaseURL string, now func() time.Time) (*store.Store, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, databaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	s, err := store.New(store.Config{DB: db, Now: now})
	require.NoError(t, err)
	_, err = s.MigrateUp(ctx)
	require.NoError(t, err)
	return s, db
}

// Clock is a settable clock for tests: it starts at a real instant and
// moves with real time, plus whatever Add has skipped ahead. Safe for
// concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock that reads like time.Now until moved.
func NewClock() *Clock { return &Clock{} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
