package store

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared returns a DBTX, outside any transaction, that prepares each
// query once and reuses the statement: for the few reads of the request
// path (an API key's tenant, a user's token), which modernc SQLite
// otherwise parses and plans again on every call, at several times the
// cost of running them. On PostgreSQL it is DB(): pgx already keeps its
// prepared statements per connection. Use it only with fixed query
// strings: each one keeps a statement for the life of the database.
func (s *Store) Prepared() DBTX {
	if s.prepared == nil {
		return s.db
	}
	return s.prepared
}

// stmtCache is a DBTX over a *sql.DB that keeps one prepared statement per
// query string. database/sql re-prepares a statement on whichever
// connection runs it, so it is safe beside the pool's other users.
type stmtCache struct {
	db    *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, ok := c.stmts[query]
	c.mu.RUnlock()
	if ok {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	// Prepared without the caller's context: the statement outlives it.
	st, err := c.db.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return c.db.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return c.db.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return c.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
