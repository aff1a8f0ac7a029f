package task

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/store"
)

// Concurrent task submissions are committed in groups: a submission that
// arrives while a group is being written, or while createFlushers
// transactions are under way, waits for the next group, which inserts
// every waiting task in one statement (COPY on PostgreSQL) and their
// first jobs in one River InsertManyFastTx (nothing read back), then
// commits once (so the database flushes its log once for all of them). A
// caller is answered only after the transaction holding its task
// committed, as with one transaction per task.
const (
	// createFlushers is how many group transactions may be under way at
	// once, of which one at most is being written: the next group forms
	// while one is written, and is written while that one commits. Letting
	// a second transaction start as soon as a submission arrives instead
	// (two writers) halves the groups under load and costs, measured on
	// PostgreSQL with 16 connections flat out, about a quarter more CPU a
	// task in mcpidp and about half more in PostgreSQL, for no more
	// throughput: most of a transaction's cost is per statement and per
	// commit, not per row.
	createFlushers = 2
	// createBatchTimeout bounds one group transaction. It does not use a
	// caller's context: one caller going away must not fail the others.
	createBatchTimeout = 30 * time.Second
)

// createBatcher groups submissions; see createFlushers.
type createBatcher struct {
	s *Service

	// writing is held by the flusher that is writing a group, from taking
	// it until its statements have run; it is released before the commit.
	writing sync.Mutex

	mu       sync.Mutex
	pending  []*pendingCreate
	flushing int
}

// pendingCreate is a task waiting for its group transaction.
type pendingCreate struct {
	ctx  context.Context
	t    *store.Task
	done chan error
}

// create commits t and its first run job, with whatever other submissions
// are waiting, and returns when they are committed (nil) or not (an error).
func (b *createBatcher) create(ctx context.Context, t *store.Task) error {
	p := &pendingCreate{ctx: ctx, t: t, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, p)
	start := b.flushing < createFlushers
	if start {
		b.flushing++
	}
	b.mu.Unlock()
	if start {
		go b.flushLoop()
	}
	// Wait for the answer even if ctx ends: the transaction may be
	// committing, and the answer must say what happened.
	return <-p.done
}

// flushLoop commits groups until none is waiting. A group is taken only
// once the previous one is written, so it holds everything that arrived
// meanwhile.
func (b *createBatcher) flushLoop() {
	for {
		b.writing.Lock()
		b.mu.Lock()
		n := min(len(b.pending), store.MaxCreateTasks)
		if n == 0 {
			b.flushing--
			b.mu.Unlock()
			b.writing.Unlock()
			return
		}
		group := b.pending[:n:n]
		if n == len(b.pending) {
			b.pending = nil
		} else {
			b.pending = append([]*pendingCreate(nil), b.pending[n:]...)
		}
		b.mu.Unlock()
		b.flush(group, sync.OnceFunc(b.writing.Unlock))
	}
}

// flush commits one group. If its transaction fails, each task is tried
// again alone, so one bad submission does not fail the others. written
// is called once the group's statements have run (before its commit), or
// at the latest when flush returns.
func (b *createBatcher) flush(group []*pendingCreate, written func()) {
	defer written()
	live := group[:0:0]
	for _, p := range group {
		if err := p.ctx.Err(); err != nil {
			p.done <- err
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	rc := b.s.cfg.RiverFunc()
	if rc == nil {
		for _, p := range live {
			p.done <- errors.New("task service: no River client")
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), createBatchTimeout)
	defer cancel()
	err := b.insert(ctx, rc, live, written)
	if err == nil || len(live) == 1 {
		for _, p := range live {
			p.done <- err
		}
		return
	}
	b.s.cfg.Logger.Warn("grouped task submission failed, submitting each alone", "tasks", len(live), "error", err)
	for _, p := range live {
		p.done <- b.insert(ctx, rc, []*pendingCreate{p}, written)
	}
}

// insert writes the group's tasks and jobs in one transaction: on pgx
// with COPY when the service has a pgx River client, else on
// database/sql. It calls written when they are written, before the
// commit.
func (b *createBatcher) insert(ctx context.Context, rc *river.Client[*sql.Tx], group []*pendingCreate, written func()) error {
	st := b.s.cfg.Store
	tasks := make([]*store.Task, len(group))
	jobs := make([]river.InsertManyParams, len(group))
	for i, p := range group {
		tasks[i] = p.t
		jobs[i] = river.InsertManyParams{Args: RunArgs{TaskID: p.t.ID}}
	}
	if b.s.cfg.PgxRiverFunc != nil {
		if prc := b.s.cfg.PgxRiverFunc(); prc != nil {
			return st.InPgxTx(ctx, func(tx pgx.Tx) error {
				if err := st.CopyTasks(ctx, tx, tasks); err != nil {
					return err
				}
				if _, err := prc.InsertManyFastTx(ctx, tx, jobs); err != nil {
					return fmt.Errorf("error queueing tasks: %w", err)
				}
				written()
				return nil
			})
		}
	}
	return st.InTx(ctx, func(tx *sql.Tx) error {
		if err := st.CreateTasks(ctx, tx, tasks); err != nil {
			return err
		}
		if _, err := rc.InsertManyFastTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("error queueing tasks: %w", err)
		}
		written()
		return nil
	})
}
