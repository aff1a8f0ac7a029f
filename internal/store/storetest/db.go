// Package storetest holds the store conformance suite that every backend
// must pass (Exercise), and helpers that give each test its own real
// database: a temporary SQLite file, or a fresh PostgreSQL schema.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// DefaultPostgresURL is the development machines' PostgreSQL, tried when
// MCPIDP_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Environment variables that choose the tests' PostgreSQL.
const (
	// EnvPostgresURL names a server to use, with no fallback.
	EnvPostgresURL = "MCPIDP_TEST_POSTGRES_URL"
	// EnvRequirePostgres, when set, turns "no PostgreSQL to be had" from a
	// skip into a failure (CI sets it).
	EnvRequirePostgres = "MCPIDP_TEST_REQUIRE_POSTGRES"
	// EnvDefaultPostgresURL replaces DefaultPostgresURL as the server tried
	// before a throwaway cluster is started; tests of that fallback point it
	// at a closed port.
	EnvDefaultPostgresURL = "MCPIDP_TEST_POSTGRES_DEFAULT_URL"
	// EnvPostgresBin, when set, is the only directory searched for initdb
	// and postgres; tests point it at an empty one to act as a machine
	// without PostgreSQL.
	EnvPostgresBin = "MCPIDP_TEST_POSTGRES_BIN"
)

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
// whose search_path points at it. The server is MCPIDP_TEST_POSTGRES_URL
// when set; else the one at DefaultPostgresURL when it answers; else a
// throwaway cluster started from the installed initdb/postgres, shared by
// every test of this test binary and removed when it exits. Only when none
// of these can be had does the test skip, or fail when
// MCPIDP_TEST_REQUIRE_POSTGRES is set (as CI does).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := postgresBase(t)
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

// sharedServer is the PostgreSQL server of this test binary, chosen once.
// It is the one package-level variable here: a test binary starts at most
// one throwaway cluster, shared by all its tests, and that cannot be passed
// in by the many tests that need it.
var sharedServer struct {
	once sync.Once
	url  string
	err  error
	// cluster is kept reachable for the life of the process: the write end
	// of its supervisor's pipe would be closed by a finalizer, which stops it.
	cluster *Cluster
}

func postgresBase(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvPostgresURL); u != "" {
		return u
	}
	sharedServer.once.Do(func() {
		sharedServer.url, sharedServer.cluster, sharedServer.err = choosePostgres(context.Background())
	})
	err := sharedServer.err
	switch {
	case err == nil:
		return sharedServer.url
	case errors.Is(err, ErrNoPostgres) && os.Getenv(EnvRequirePostgres) == "":
		t.Skipf("storetest: skipping PostgreSQL: %v (install PostgreSQL, or set %s; %s makes this a failure)",
			err, EnvPostgresURL, EnvRequirePostgres)
	default:
		t.Fatalf("storetest: PostgreSQL: %v", err)
	}
	return ""
}

// choosePostgres answers the default server's URL when it accepts a
// connection, else starts a throwaway cluster, else ErrNoPostgres.
func choosePostgres(ctx context.Context) (string, *Cluster, error) {
	def := os.Getenv(EnvDefaultPostgresURL)
	if def == "" {
		def = DefaultPostgresURL
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	conn, err := pgx.Connect(cctx, def)
	cancel()
	if err == nil {
		_ = conn.Close(ctx)
		return def, nil, nil
	}
	bins, ok := FindBinaries(os.Getenv(EnvPostgresBin))
	if !ok {
		return "", nil, fmt.Errorf("%w: nothing at %s and no initdb and postgres on PATH or under /usr/lib/postgresql/*/bin",
			ErrNoPostgres, redactURL(def))
	}
	c, err := StartCluster(ctx, bins)
	if err != nil {
		return "", nil, fmt.Errorf("nothing at %s, and no throwaway cluster: %w", redactURL(def), err)
	}
	// Never stopped here: the supervisor stops it when this process exits.
	fmt.Fprintf(os.Stderr, "storetest: nothing at %s; started a throwaway PostgreSQL cluster at %s (from %s)\n",
		redactURL(def), c.URL, bins.Postgres)
	return c.URL, c, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the default PostgreSQL URL"
	}
	return u.Redacted()
}
