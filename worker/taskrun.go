// Package worker holds mcpidp's River jobs: task run segments, the pause
// for a login and the resume after it, authorization timeouts, and periodic
// cleanup. Jobs carry ids only; state lives in our tables, so a job that runs
// twice finds the work already recorded.
package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/taskview"
)

// TaskRunArgs runs one segment of a task: from wherever its recorded steps
// end until it finishes (or, later, pauses for a login).
type TaskRunArgs struct {
	TaskID string `json:"task_id"`
	// Segment must equal the task's segment; a job of an older segment is
	// stale and does nothing.
	Segment int `json:"segment"`
}

// Kind implements river.JobArgs.
func (TaskRunArgs) Kind() string { return "task_run" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (TaskRunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// TaskRunnerConfig configures a TaskRunner.
type TaskRunnerConfig struct {
	Store   *store.Store
	Keyring *secretbox.Keyring
	// Model calls the upstream model.
	Model *llm.Client
	// HTTPClient reaches MCP servers; in production the netguard client.
	HTTPClient *http.Client
	// OAuth gives MCP requests the user's tokens and makes login links.
	OAuth *mcpauth.Engine
	// PublicURL builds result URLs for webhooks and callbacks.
	PublicURL string
	// CompleteJobTx completes the running job in the pause transaction.
	CompleteJobTx CompleteJobTxFunc
	// Retention is how long store=false tasks are kept after they end.
	Retention time.Duration
	// CancelPollInterval is how often a running task checks whether it was
	// canceled; default 250ms.
	CancelPollInterval time.Duration
	// JobTimeout bounds one segment; default 15 minutes.
	JobTimeout time.Duration
	Logger     *slog.Logger

	// ModelRetryFor is how long a task keeps trying a model that fails
	// with transient errors, from the first failure of a streak; default
	// DefaultModelRetryFor.
	ModelRetryFor time.Duration
	// ModelBackoffFunc is the wait before model retry number retry when
	// the upstream sent no Retry-After; default ModelBackoff.
	ModelBackoffFunc func(retry int) time.Duration
	// MCPLimits bound what is kept of MCP servers' answers; zero fields take mcpclient's defaults.
	MCPLimits mcpclient.Limits
}

// TaskRunner executes task segments.
type TaskRunner struct {
	river.WorkerDefaults[TaskRunArgs]
	cfg TaskRunnerConfig
}

// NewTaskRunner validates cfg and returns a worker.
func NewTaskRunner(cfg TaskRunnerConfig) (*TaskRunner, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("task runner: store is required")
	case cfg.Keyring == nil:
		return nil, errors.New("task runner: keyring is required")
	case cfg.Model == nil:
		return nil, errors.New("task runner: model client is required")
	case cfg.HTTPClient == nil:
		return nil, errors.New("task runner: HTTP client is required")
	case cfg.OAuth == nil:
		return nil, errors.New("task runner: OAuth engine is required")
	case cfg.Retention <= 0:
		return nil, fmt.Errorf("task runner: retention must be positive, got %s", cfg.Retention)
	}
	if cfg.CancelPollInterval <= 0 {
		cfg.CancelPollInterval = 250 * time.Millisecond
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 15 * time.Minute
	}
	if cfg.ModelRetryFor <= 0 {
		cfg.ModelRetryFor = DefaultModelRetryFor
	}
	if cfg.ModelBackoffFunc == nil {
		cfg.ModelBackoffFunc = ModelBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &TaskRunner{cfg: cfg}, nil
}

// Timeout implements river.Worker.
func (w *TaskRunner) Timeout(*river.Job[TaskRunArgs]) time.Duration { return w.cfg.JobTimeout }

// NextRetry implements river.Worker. A segment is retried after its worker
// died (and was rescued once MCPIDP_RESCUE_STUCK_JOBS_AFTER had passed) or a
// passing storage error; River's default of attempt⁴ seconds would add
// minutes to a task that was killed twice, so wait attempt² seconds.
func (w *TaskRunner) NextRetry(job *river.Job[TaskRunArgs]) time.Time {
	return time.Now().Add(time.Duration(job.Attempt*job.Attempt) * time.Second)
}

var errTaskCanceled = errors.New("task was canceled")

// Error codes of failed tasks.
const (
	CodeModelError            = "model_error"
	CodeMCPServerError        = "mcp_server_error"
	CodeAuthorizationRequired = "authorization_required"
	CodeInternal              = "internal_error"
	CodeAuthorizationFailed   = "authorization_failed"
	CodeAuthorizationTimeout  = "authorization_timeout"
	CodeTimeout               = "timeout"
	CodeBadRequest            = "invalid_task"
)

// Work implements river.Worker.
func (w *TaskRunner) Work(ctx context.Context, job *river.Job[TaskRunArgs]) error {
	st := w.cfg.Store
	task, err := st.GetTaskByID(ctx, st.DB(), job.Args.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted or expired: nothing to do
	}
	if err != nil {
		return err
	}
	if task.Status.Terminal() || task.Segment != job.Args.Segment {
		return nil
	}
	ok, err := st.ClaimTask(ctx, st.DB(), task.ID, job.Args.Segment, job.ID)
	if err != nil {
		return err
	}
	if !ok {
		return nil // another job runs this segment, or the task moved on
	}
	log := w.cfg.Logger.With(slog.String("task_id", task.ID), slog.Int("segment", task.Segment), slog.Int("attempt", job.Attempt))

	err = w.run(ctx, job, task)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errTaskCanceled), errors.Is(err, store.ErrNotFound):
		log.InfoContext(ctx, "task run stopped: task canceled or deleted")
		return nil
	case errors.Is(err, store.ErrConflict):
		// Another runner recorded the same step: it owns the task now.
		log.WarnContext(ctx, "task run stopped: step already recorded by another run")
		return nil
	case ctx.Err() != nil:
		if job.Attempt < job.MaxAttempts {
			return err // shutting down or timed out: River retries, recorded steps stay
		}
		// River gives up after this attempt; end the task rather than
		// leave it running with no job.
		return w.finish(context.WithoutCancel(ctx), task.ID, store.TaskFailed, nil, nil,
			&taskview.TaskError{Code: CodeTimeout, Message: redactQueries(fmt.Sprintf("the task did not finish within %d attempts of %s each: %v", job.MaxAttempts, w.cfg.JobTimeout, err))})
	}
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		return err // waiting for the model: River runs the job again later
	}
	var fail *taskFailure
	if !errors.As(err, &fail) {
		if job.Attempt < job.MaxAttempts {
			log.ErrorContext(ctx, "task run failed, will retry", slog.String("error", err.Error()))
			return err
		}
		fail = &taskFailure{code: CodeInternal, message: err.Error()}
	}
	log.InfoContext(ctx, "task failed", slog.String("code", fail.code))
	return w.finish(context.WithoutCancel(ctx), task.ID, store.TaskFailed, nil, nil,
		&taskview.TaskError{Code: fail.code, Message: redactQueries(fail.message)})
}

type taskFailure struct{ code, message string }

func (f *taskFailure) Error() string { return f.code + ": " + f.message }

func (w *TaskRunner) run(ctx context.Context, job *river.Job[TaskRunArgs], task *store.Task) error {
	// Any token stored from here on may answer a challenge met below.
	segmentStart := w.cfg.Store.Now()
	st := w.cfg.Store
	var req taskview.TaskRequest
	if err := json.Unmarshal(task.Request, &req); err != nil {
		return &taskFailure{code: CodeBadRequest, message: "stored task request is unreadable: " + err.Error()}
	}
	secrets, err := w.openSecrets(task)
	if err != nil {
		return err
	}
	if task.RetryingAt != nil {
		// This is the retry it waited for.
		if err := st.ClearRetryingAt(ctx, st.DB(), task.ID); err != nil {
			return err
		}
	}
	recorded, err := st.ListSteps(ctx, st.DB(), task.ID)
	if err != nil {
		return err
	}
	steps := make([]agentloop.Step, len(recorded))
	for i, r := range recorded {
		if err := json.Unmarshal(r.Data, &steps[i]); err != nil {
			return fmt.Errorf("error reading step %d: %w", i, err)
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go w.watchCancel(ctx, task.ID, cancel)

	var tools agentloop.Tools
	if len(req.Servers) > 0 {
		servers := make([]mcpclient.Server, len(req.Servers))
		for i, s := range req.Servers {
			servers[i] = mcpclient.Server{URL: s.URL, ConnectURL: secrets.ConnectURLs[s.URL], AllowedTools: s.AllowedTools, Headers: secrets.Headers[s.URL]}
		}
		connect := func(ctx context.Context, server mcpclient.Server) (*mcpclient.Session, error) {
			return w.connect(ctx, task.TenantID, task.UserID, server)
		}
		mcp, err := agentloop.ConnectMCP(ctx, connect, servers)
		if err != nil {
			return w.classify(ctx, job, task, &req, segmentStart, err)
		}
		defer mcp.Close()
		tools = mcp
	}

	callOpts := llm.CallOptions{APIKey: secrets.UpstreamAuthorization}
	run := &agentloop.Run{
		Body:     req.Body,
		Messages: req.Messages,
		MaxSteps: req.MaxSteps,
		StopWhen: req.StopWhen,
		Steps:    steps,
		Complete: func(ctx context.Context, body []byte) (*llm.Completion, error) {
			return w.cfg.Model.Complete(ctx, body, callOpts)
		},
		Tools: tools,
		Record: func(ctx context.Context, index int, step agentloop.Step) error {
			return w.record(ctx, task.ID, index, step)
		},
		ErrorIsFatal: func(err error) bool {
			var ch *mcpclient.AuthChallengeError
			return errors.As(err, &ch)
		},
		MarkCall: func(ctx context.Context, index int, step agentloop.Step, sent bool) (bool, error) {
			return w.markCall(ctx, task.ID, index, step, sent)
		},
		Now: st.Now,
	}
	outcome, err := run.Execute(ctx)
	if err != nil {
		return w.classify(ctx, job, task, &req, segmentStart, err)
	}
	output, _ := json.Marshal(taskview.TaskOutput{Content: outcome.Content, Markdown: agentloop.Markdown(outcome.Steps), StopReason: outcome.Reason})
	usage, _ := json.Marshal(outcome.Usage)
	return w.finish(ctx, task.ID, store.TaskCompleted, output, usage, nil)
}

// classify turns a run error into a task failure, or passes it on when the
// task was canceled or the process is stopping.
func (w *TaskRunner) classify(ctx context.Context, job *river.Job[TaskRunArgs], task *store.Task, req *taskview.TaskRequest, challengedAfter time.Time, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errTaskCanceled) {
		return errTaskCanceled
	}
	if ctx.Err() != nil {
		return err
	}
	var challenges *agentloop.ChallengesError
	var challenge *mcpclient.AuthChallengeError
	if errors.As(err, &challenges) || errors.As(err, &challenge) {
		// Waiting for a login is no model outage: a model failure after
		// the resume starts a new streak with the whole retry time.
		if rerr := w.cfg.Store.ResetModelRetry(ctx, w.cfg.Store.DB(), task.ID); rerr != nil {
			return rerr
		}
	}
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, errTaskCanceled), errors.Is(err, store.ErrNotFound):
		return err
	case errors.As(err, &challenges):
		return w.pause(ctx, job, task, req, challenges.Challenges, challengedAfter)
	case errors.As(err, &challenge):
		return w.pause(ctx, job, task, req, []*mcpclient.AuthChallengeError{challenge}, challengedAfter)
	case errors.Is(err, agentloop.ErrModel):
		if transientModelError(err) {
			return w.retryModel(ctx, task, err)
		}
		return &taskFailure{code: CodeModelError, message: err.Error()}
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return &taskFailure{code: CodeMCPServerError, message: err.Error()}
	}
	return err
}

type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// connect opens a session with the user's token for the server
// (agentloop.UserConnect, shared with the chat proxy). Failures other than
// a login challenge are marked as the server's.
func (w *TaskRunner) connect(ctx context.Context, tenant, user string, server mcpclient.Server) (*mcpclient.Session, error) {
	connect := agentloop.UserConnect(w.cfg.OAuth, mcpclient.Options{HTTPClient: w.cfg.HTTPClient, Logger: w.cfg.Logger, Limits: w.cfg.MCPLimits}, tenant, user)
	s, err := connect(ctx, server)
	if err != nil && !agentloop.IsChallenge(err) {
		return nil, &connectError{err: err}
	}
	return s, err
}

// record commits one step, but only while the task is still running: a
// cancel that lands between two steps stops the run before the next one.
func (w *TaskRunner) record(ctx context.Context, taskID string, index int, step agentloop.Step) error {
	data, err := json.Marshal(step)
	if err != nil {
		return fmt.Errorf("error encoding step: %w", err)
	}
	st := w.cfg.Store
	return st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := st.TransitionTask(ctx, tx, taskID, []store.TaskStatus{store.TaskRunning}, store.TaskRunning)
		if err != nil {
			return err
		}
		if !ok {
			return errTaskCanceled
		}
		if step.Type == agentloop.StepModel {
			// The model answered: a later failure starts a new streak.
			if err := st.ResetModelRetry(ctx, tx, taskID); err != nil {
				return err
			}
		}
		return st.AppendStep(ctx, tx, taskID, index, step.Type, data)
	})
}

// markCall commits the "call started" mark of a tool call before it is sent
// (or removes it, sent false), while the task is still running.
func (w *TaskRunner) markCall(ctx context.Context, taskID string, index int, step agentloop.Step, sent bool) (bool, error) {
	st := w.cfg.Store
	if !sent {
		return false, st.UnmarkToolCall(ctx, st.DB(), taskID, index)
	}
	var again bool
	err := st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := st.TransitionTask(ctx, tx, taskID, []store.TaskStatus{store.TaskRunning}, store.TaskRunning)
		if err != nil {
			return err
		}
		if !ok {
			return errTaskCanceled
		}
		again, err = st.MarkToolCall(ctx, tx, taskID, index, step.ToolCallID)
		return err
	})
	if again {
		w.cfg.Logger.WarnContext(ctx, "tool call was in flight when the task's last run stopped",
			slog.String("task_id", taskID), slog.String("tool", step.Tool), slog.Int("step", index))
	}
	return again, err
}

func (w *TaskRunner) finish(ctx context.Context, taskID string, status store.TaskStatus, output, usage json.RawMessage, taskErr *taskview.TaskError) error {
	var errJSON json.RawMessage
	if taskErr != nil {
		errJSON, _ = json.Marshal(taskErr)
	}
	st := w.cfg.Store
	rc, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	event := EventCompleted
	if status == store.TaskFailed {
		event = EventFailed
	}
	return st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := st.FinishTask(ctx, tx, taskID, store.FinishParams{Status: status, Output: output, Usage: usage, Error: errJSON, Retention: w.cfg.Retention})
		if err != nil || !ok {
			return err
		}
		return endTx(ctx, tx, rc, st, w.cfg.PublicURL, taskID, event)
	})
}

// watchCancel cancels the run when the task is canceled, deleted or ended
// elsewhere (the orphan sweep), so it stops in the middle of a model or
// tool call too.
func (w *TaskRunner) watchCancel(ctx context.Context, taskID string, cancel context.CancelCauseFunc) {
	t := time.NewTicker(w.cfg.CancelPollInterval)
	defer t.Stop()
	st := w.cfg.Store
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		task, err := st.GetTaskByID(ctx, st.DB(), taskID)
		if errors.Is(err, store.ErrNotFound) || err == nil && task.Status.Terminal() {
			cancel(errTaskCanceled)
			return
		}
	}
}

func (w *TaskRunner) openSecrets(task *store.Task) (*taskview.TaskSecrets, error) {
	var s taskview.TaskSecrets
	if task.Secrets == "" {
		return &s, nil
	}
	plain, err := w.cfg.Keyring.Open(task.Secrets, []byte(task.ID))
	if err != nil {
		return nil, &taskFailure{code: CodeInternal, message: "task secrets cannot be decrypted (was MCPIDP_ENCRYPTION_KEY changed?)"}
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("error reading task secrets: %w", err)
	}
	return &s, nil
}

// SealSecrets seals s for the task.
func SealSecrets(k *secretbox.Keyring, taskID string, s *taskview.TaskSecrets) (string, error) {
	if s == nil || len(s.Headers) == 0 && len(s.ConnectURLs) == 0 && s.UpstreamAuthorization == "" {
		return "", nil
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("error encoding task secrets: %w", err)
	}
	return k.Seal(plain, []byte(taskID))
}
