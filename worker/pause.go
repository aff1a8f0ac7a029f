package worker

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// CompleteJobTxFunc completes the running job inside tx. It exists because
// river.JobCompleteTx needs the driver type, which only the composition root
// knows.
type CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx, job *river.Job[task.RunArgs]) error

// pause hands the challenges to task.Service.Pause, which parks the task
// until the user logs in, completing this job in the same transaction.
func (w *TaskRunner) pause(ctx context.Context, job *river.Job[task.RunArgs], t *store.Task, req *task.Request,
	challenges []*mcpclient.AuthChallengeError, challengedAfter time.Time,
) error {
	var complete func(ctx context.Context, tx *sql.Tx) error
	if w.cfg.CompleteJobTx != nil {
		complete = func(ctx context.Context, tx *sql.Tx) error { return w.cfg.CompleteJobTx(ctx, tx, job) }
	}
	return w.cfg.Tasks.Pause(ctx, task.PauseParams{Task: t, Request: req, Challenges: challenges,
		ChallengedAfter: challengedAfter, CompleteJobTxFunc: complete})
}

// pauseForApproval hands the held-back tool calls to
// task.Service.PauseForApproval, completing this job in its transaction.
func (w *TaskRunner) pauseForApproval(ctx context.Context, job *river.Job[task.RunArgs], t *store.Task, req *task.Request,
	calls []agentloop.ApprovalCall,
) error {
	var complete func(ctx context.Context, tx *sql.Tx) error
	if w.cfg.CompleteJobTx != nil {
		complete = func(ctx context.Context, tx *sql.Tx) error { return w.cfg.CompleteJobTx(ctx, tx, job) }
	}
	return w.cfg.Tasks.PauseForApproval(ctx, task.ApprovalPauseParams{Task: t, Request: req, Calls: calls, CompleteJobTxFunc: complete})
}

// ApprovalTimeouter is the worker for task.ApprovalTimeoutArgs.
type ApprovalTimeouter struct {
	river.WorkerDefaults[task.ApprovalTimeoutArgs]
	tasks *task.Service
}

// NewApprovalTimeouter returns the worker.
func NewApprovalTimeouter(tasks *task.Service) (*ApprovalTimeouter, error) {
	if tasks == nil {
		return nil, errors.New("approval timeouter: task service is required")
	}
	return &ApprovalTimeouter{tasks: tasks}, nil
}

// Work implements river.Worker: task.Service.TimeoutApproval, snoozing
// while the store's clock says the approval has not expired yet.
func (a *ApprovalTimeouter) Work(ctx context.Context, job *river.Job[task.ApprovalTimeoutArgs]) error {
	wait, err := a.tasks.TimeoutApproval(ctx, task.TimeoutParams{TaskID: job.Args.TaskID, Segment: job.Args.Segment})
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

// pauseForInput hands URL elicitations to task.Service.PauseForInput, which
// parks the task (task.Park) until the user is done at the URLs, completing
// this job in the same transaction. The inputs expire with login links
// (AuthorizationTimeout).
func (w *TaskRunner) pauseForInput(ctx context.Context, job *river.Job[task.RunArgs], t *store.Task, req *task.Request, asks []mcpclient.ElicitRequest) error {
	var complete func(ctx context.Context, tx *sql.Tx) error
	if w.cfg.CompleteJobTx != nil {
		complete = func(ctx context.Context, tx *sql.Tx) error { return w.cfg.CompleteJobTx(ctx, tx, job) }
	}
	return w.cfg.Tasks.PauseForInput(ctx, task.PauseInputParams{Task: t, Request: req, Asks: asks,
		ExpiresAt: w.cfg.Store.Now().Add(w.cfg.URLInputTimeout), CompleteJobTxFunc: complete})
}

// InputTimeouter is the worker for task.InputTimeoutArgs.
type InputTimeouter struct {
	river.WorkerDefaults[task.InputTimeoutArgs]
	tasks *task.Service
}

// NewInputTimeouter returns the worker.
func NewInputTimeouter(tasks *task.Service) (*InputTimeouter, error) {
	if tasks == nil {
		return nil, errors.New("input timeouter: task service is required")
	}
	return &InputTimeouter{tasks: tasks}, nil
}

// Work implements river.Worker: task.Service.TimeoutInput, snoozing
// while the store's clock says the inputs have not expired yet.
func (i *InputTimeouter) Work(ctx context.Context, job *river.Job[task.InputTimeoutArgs]) error {
	wait, err := i.tasks.TimeoutInput(ctx, task.TimeoutParams{TaskID: job.Args.TaskID, Segment: job.Args.Segment})
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

// AuthTimeouter is the worker for task.AuthTimeoutArgs.
type AuthTimeouter struct {
	river.WorkerDefaults[task.AuthTimeoutArgs]
	tasks *task.Service
}

// NewAuthTimeouter returns the worker.
func NewAuthTimeouter(tasks *task.Service) (*AuthTimeouter, error) {
	if tasks == nil {
		return nil, errors.New("authorization timeouter: task service is required")
	}
	return &AuthTimeouter{tasks: tasks}, nil
}

// Work implements river.Worker: task.Service.TimeoutAuthorization, snoozing
// when the store's clock says the links have not expired yet.
func (a *AuthTimeouter) Work(ctx context.Context, job *river.Job[task.AuthTimeoutArgs]) error {
	wait, err := a.tasks.TimeoutAuthorization(ctx, task.TimeoutParams{TaskID: job.Args.TaskID, Segment: job.Args.Segment})
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

// LoginRechecker is the worker for task.LoginRecheckArgs.
type LoginRechecker struct {
	river.WorkerDefaults[task.LoginRecheckArgs]
	tasks *task.Service
}

// NewLoginRechecker returns the worker.
func NewLoginRechecker(tasks *task.Service) (*LoginRechecker, error) {
	if tasks == nil {
		return nil, errors.New("login rechecker: task service is required")
	}
	return &LoginRechecker{tasks: tasks}, nil
}

// Work implements river.Worker.
func (l *LoginRechecker) Work(ctx context.Context, job *river.Job[task.LoginRecheckArgs]) error {
	return l.tasks.RecheckLogins(ctx, task.RecheckParams{TaskID: job.Args.TaskID, Segment: job.Args.Segment, Since: job.Args.Since})
}
