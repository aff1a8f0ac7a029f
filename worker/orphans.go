package worker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
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
	store  *store.Store
	tasks  *task.Service
	logger *slog.Logger
}

// NewOrphanSweeper returns an OrphanSweeper.
func NewOrphanSweeper(st *store.Store, tasks *task.Service, logger *slog.Logger) (*OrphanSweeper, error) {
	switch {
	case st == nil:
		return nil, errors.New("orphan sweeper: store is required")
	case tasks == nil:
		return nil, errors.New("orphan sweeper: task service is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OrphanSweeper{store: st, tasks: tasks, logger: logger}, nil
}

// Work implements river.Worker.
func (o *OrphanSweeper) Work(ctx context.Context, _ *river.Job[OrphanSweepArgs]) error {
	st := o.store
	ids, err := st.OrphanedTasks(ctx, st.DB(), 100)
	if err != nil {
		return err
	}
	for _, id := range ids {
		var ok bool
		// A job that died holding a call open for an input left the task awaiting_input.
		for _, from := range []task.Status{task.StatusRunning, task.StatusAwaitingInput} {
			ended, err := o.tasks.Finish(ctx, task.FinishParams{TaskID: id, Status: task.StatusFailed, OnlyFrom: from,
				Error: &task.Error{Code: task.CodeInternal, Message: "the task's run was abandoned: its worker stopped during every attempt, or its job was cancelled"}})
			if err != nil {
				return err
			}
			ok = ok || ended
		}
		if ok {
			o.logger.WarnContext(ctx, "failed a task whose job will not run again", slog.String("task_id", id))
		}
	}
	return nil
}
