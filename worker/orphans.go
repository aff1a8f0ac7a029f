package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/taskview"
)

// OrphanSweepArgs fails running tasks whose job River will never run again.
// A worker that dies during a segment's last attempt leaves the task
// running with a discarded job and nobody to end it; so does an operator
// cancelling the job in the River UI. Run periodically.
type OrphanSweepArgs struct{}

// Kind implements river.JobArgs.
func (OrphanSweepArgs) Kind() string { return "task_orphan_sweep" }

// OrphanSweeper is the worker for OrphanSweepArgs.
type OrphanSweeper struct {
	river.WorkerDefaults[OrphanSweepArgs]
	store     *store.Store
	publicURL string
	retention time.Duration
	logger    *slog.Logger
}

// NewOrphanSweeper returns an OrphanSweeper; publicURL and retention are as
// for the task runner.
func NewOrphanSweeper(st *store.Store, publicURL string, retention time.Duration, logger *slog.Logger) (*OrphanSweeper, error) {
	if st == nil {
		return nil, errors.New("orphan sweeper: store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OrphanSweeper{store: st, publicURL: publicURL, retention: retention, logger: logger}, nil
}

// Work implements river.Worker.
func (o *OrphanSweeper) Work(ctx context.Context, _ *river.Job[OrphanSweepArgs]) error {
	rc, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	st := o.store
	ids, err := st.OrphanedTasks(ctx, st.DB(), 100)
	if err != nil {
		return err
	}
	errJSON, _ := json.Marshal(taskview.TaskError{Code: CodeInternal,
		Message: "the task's run was abandoned: its worker stopped during every attempt, or its job was cancelled"})
	for _, id := range ids {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			ok, err := st.FinishTask(ctx, tx, id, store.FinishParams{Status: store.TaskFailed, Error: errJSON,
				Retention: o.retention, OnlyFrom: store.TaskRunning})
			if err != nil || !ok {
				return err
			}
			return endTx(ctx, tx, rc, st, o.publicURL, id, EventFailed)
		})
		if err != nil {
			return err
		}
		o.logger.WarnContext(ctx, "failed a task whose job will not run again", slog.String("task_id", id))
	}
	return nil
}
