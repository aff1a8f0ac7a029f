package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/mcpidp/mcpidp/migrations"
)

// Migration is one numbered schema change of ours.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Migrations lists our migrations for the dialect, oldest first.
func Migrations(dialect Dialect) ([]Migration, error) {
	dir := string(dialect)
	entries, err := fs.ReadDir(migrations.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("error reading embedded migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		var direction string
		switch {
		case strings.HasSuffix(name, ".up.sql"):
			direction = "up"
		case strings.HasSuffix(name, ".down.sql"):
			direction = "down"
		default:
			continue
		}
		num, rest, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.up.sql", name)
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration file %s: bad version number: %w", name, err)
		}
		body, err := fs.ReadFile(migrations.FS, dir+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("error reading migration %s: %w", name, err)
		}
		m := byVersion[version]
		if m == nil {
			m = &Migration{Version: version, Name: strings.TrimSuffix(strings.TrimSuffix(rest, ".up.sql"), ".down.sql")}
			byVersion[version] = m
		}
		if direction == "up" {
			m.Up = string(body)
		} else {
			m.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d_%s needs both .up.sql and .down.sql", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const migrationTable = `CREATE TABLE IF NOT EXISTS mcpidp_migration (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)`

// AppliedVersions returns the versions recorded as applied, ascending.
func (s *Store) AppliedVersions(ctx context.Context, q DBTX) ([]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT version FROM mcpidp_migration ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("error reading applied migrations: %w", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("error reading applied migrations: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// MigrateUp applies every pending migration, each in its own transaction, and
// returns the versions it applied. A PostgreSQL advisory lock keeps two
// processes starting at once from racing.
func (s *Store) MigrateUp(ctx context.Context) ([]int, error) {
	return s.migrate(ctx, func(all []Migration, applied map[int]bool) []Migration {
		var todo []Migration
		for _, m := range all {
			if !applied[m.Version] {
				todo = append(todo, m)
			}
		}
		return todo
	}, true)
}

// MigrateDown reverts the newest n applied migrations.
func (s *Store) MigrateDown(ctx context.Context, n int) ([]int, error) {
	if n < 1 {
		return nil, errors.New("migrate down: number of steps must be at least 1")
	}
	return s.migrate(ctx, func(all []Migration, applied map[int]bool) []Migration {
		var todo []Migration
		for i := len(all) - 1; i >= 0 && len(todo) < n; i-- {
			if applied[all[i].Version] {
				todo = append(todo, all[i])
			}
		}
		return todo
	}, false)
}

// MigrationsCurrent reports whether every known migration is applied.
func (s *Store) MigrationsCurrent(ctx context.Context) (bool, error) {
	all, err := Migrations(s.dialect)
	if err != nil {
		return false, err
	}
	applied, err := s.AppliedVersions(ctx, s.db)
	if err != nil {
		return false, err
	}
	return len(applied) >= len(all) && applied[len(applied)-1] == all[len(all)-1].Version, nil
}

func (s *Store) migrate(ctx context.Context, pick func([]Migration, map[int]bool) []Migration, up bool) ([]int, error) {
	all, err := Migrations(s.dialect)
	if err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("error getting connection for migrations: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, migrationTable); err != nil {
		return nil, fmt.Errorf("error creating migration table: %w", err)
	}
	if s.dialect == DialectPostgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(72170301)`); err != nil {
			return nil, fmt.Errorf("error taking migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(72170301)`) //nolint:errcheck
	}
	appliedList, err := s.AppliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	for _, v := range appliedList {
		applied[v] = true
	}
	var done []int
	for _, m := range pick(all, applied) {
		err := func() error {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck
			body := m.Down
			if up {
				body = m.Up
			}
			if _, err := tx.ExecContext(ctx, body); err != nil {
				return err
			}
			if up {
				_, err = tx.ExecContext(ctx, `INSERT INTO mcpidp_migration (version, name, applied_at) VALUES ($1, $2, $3)`, m.Version, m.Name, micros(s.now()))
			} else {
				_, err = tx.ExecContext(ctx, `DELETE FROM mcpidp_migration WHERE version = $1`, m.Version)
			}
			if err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return done, fmt.Errorf("error applying migration %04d_%s: %w", m.Version, m.Name, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}
