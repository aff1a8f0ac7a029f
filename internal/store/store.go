// Package store owns mcpidp's persistence: one database/sql code path for
// embedded SQLite and PostgreSQL. Queries use $N placeholders, which both
// drivers accept; the few places where the dialects differ ask Dialect.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the database behind a Store.
type Dialect string

const (
	DialectSQLite   Dialect = "sqlite"
	DialectPostgres Dialect = "postgres"
)

// Sentinel errors, mapped to HTTP statuses in exactly one place (package api).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// DBTX is what every query method runs on: the *sql.DB or a *sql.Tx, so that
// callers can group our writes with River inserts in one transaction.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// DB is an open database: the database/sql handle used by us and River, and
// for PostgreSQL the pgx pool River listens on.
type DB struct {
	SQL     *sql.DB
	Pool    *pgxpool.Pool // nil for SQLite
	Dialect Dialect
	// Path is the SQLite file (empty for PostgreSQL).
	Path string
}

// DefaultSQLitePath is where the embedded database lives when
// MCPIDP_DATABASE_URL is unset.
const DefaultSQLitePath = "mcpidp.db"

// Open opens the database named by databaseURL: empty or sqlite:PATH for
// embedded SQLite, postgres:// or postgresql:// for PostgreSQL.
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		pool, err := pgxpool.New(ctx, databaseURL)
		if err != nil {
			return nil, fmt.Errorf("error opening PostgreSQL: %w", err)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("error connecting to PostgreSQL: %w", err)
		}
		return &DB{SQL: stdlib.OpenDBFromPool(pool), Pool: pool, Dialect: DialectPostgres}, nil
	case databaseURL == "" || strings.HasPrefix(databaseURL, "sqlite:") || strings.HasPrefix(databaseURL, "file:"):
		path := sqlitePath(databaseURL)
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("error creating directory for SQLite database: %w", err)
			}
		}
		// WAL lets readers in other processes (mcpidp keys create) work beside
		// a running server; busy_timeout makes short lock waits invisible.
		dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("error opening SQLite database %s: %w", path, err)
		}
		// One connection: SQLite has one writer anyway, and River's SQLite
		// driver expects it.
		db.SetMaxOpenConns(1)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("error opening SQLite database %s: %w", path, err)
		}
		return &DB{SQL: db, Dialect: DialectSQLite, Path: path}, nil
	default:
		return nil, fmt.Errorf("unsupported MCPIDP_DATABASE_URL %q: want postgres://… or sqlite:PATH (or unset for ./%s)", redactURL(databaseURL), DefaultSQLitePath)
	}
}

func sqlitePath(databaseURL string) string {
	if databaseURL == "" {
		return DefaultSQLitePath
	}
	p := strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite:"), "file:")
	p = strings.TrimPrefix(p, "//")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// Close closes the database handle and, for PostgreSQL, the pool.
func (db *DB) Close() error {
	err := db.SQL.Close()
	if db.Pool != nil {
		db.Pool.Close()
	}
	return err
}

// Store runs mcpidp's queries. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	dialect  Dialect
	now      func() time.Time
	prepared *stmtCache // SQLite only; see Prepared
	// pool is the pgx pool under db (PostgreSQL only): for the writes
	// that go faster on pgx's own protocol (COPY) than through
	// database/sql.
	pool *pgxpool.Pool
}

// Config configures a Store.
type Config struct {
	// DB is the open database. Required.
	DB *DB
	// Now returns the current time; defaults to time.Now. Tests inject a
	// clock to exercise expiry.
	Now func() time.Time
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil || cfg.DB.SQL == nil {
		return nil, errors.New("store: DB is required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	st := &Store{db: cfg.DB.SQL, dialect: cfg.DB.Dialect, now: now, pool: cfg.DB.Pool}
	if st.dialect == DialectSQLite {
		st.prepared = newStmtCache(st.db)
	}
	return st, nil
}

// DB returns the database handle, usable as a DBTX outside a transaction.
func (s *Store) DB() *sql.DB { return s.db }

// Pool returns the pgx pool under a PostgreSQL store, nil under SQLite.
// It is for writes in a pgx transaction (InPgxTx).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Dialect tells which database this store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// InTx runs fn in a transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// InPgxTx runs fn in a transaction on the pgx pool (PostgreSQL only),
// committing when it returns nil. It is InTx for writes that use pgx
// itself: COPY (CopyTasks) and River's pgx driver.
func (s *Store) InPgxTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if s.pool == nil {
		return errors.New("store: pgx transactions need PostgreSQL")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// forUpdate is the row-lock suffix: PostgreSQL locks the row, SQLite's
// immediate transactions already hold the write lock.
func (s *Store) forUpdate() string {
	if s.dialect == DialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// execCount runs a statement and returns how many rows it changed: the
// guard of every "only if still in that state" update.
func execCount(ctx context.Context, q DBTX, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
