// Package worker holds mcpidp's River workers: task run segments (the agent
// loop, model retries, tool-call marks), authorization timeouts, login
// rechecks, and periodic cleanup. The task transitions they trigger (pause,
// resume, finish) are task.Service's; the job arguments are package task's.
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
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
	"github.com/mcpidp/mcpidp/internal/telemetry"
)

// TaskRunnerConfig configures a TaskRunner.
type TaskRunnerConfig struct {
	Store   *store.Store
	Keyring *secretbox.Keyring
	// Model calls the upstream model.
	Model *llm.Client
	// HTTPClient reaches MCP servers; in production the netguard client.
	HTTPClient *http.Client
	// OAuth gives MCP requests the user's tokens.
	OAuth *mcpauth.Engine
	// Tasks pauses and finishes tasks.
	Tasks *task.Service
	// CompleteJobTx completes the running job in the pause transaction.
	CompleteJobTx CompleteJobTxFunc
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
	// TracerProvider traces the MCP calls of task runs. Optional: no tracing when nil.
	TracerProvider trace.TracerProvider
	// ElicitationHold is how long a tools/call is held open for the user's
	// answer to a server's form before it is declined; default
	// task.DefaultElicitationHold, and never past the job's deadline.
	ElicitationHold time.Duration
	// InputPollInterval is how often a held call checks for the answer;
	// default 200ms.
	InputPollInterval time.Duration
	// URLInputTimeout is how long a task paused for a URL elicitation waits
	// for the user; default 24h (MCPIDP_AUTHORIZATION_TIMEOUT in the app).
	URLInputTimeout time.Duration
}

// TaskRunner executes task segments.
type TaskRunner struct {
	river.WorkerDefaults[task.RunArgs]
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
	case cfg.Tasks == nil:
		return nil, errors.New("task runner: task service is required")
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
	if cfg.URLInputTimeout <= 0 {
		cfg.URLInputTimeout = 24 * time.Hour
	}
	if cfg.ElicitationHold <= 0 {
		cfg.ElicitationHold = task.DefaultElicitationHold
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
func (w *TaskRunner) Timeout(*river.Job[task.RunArgs]) time.Duration { return w.cfg.JobTimeout }

// NextRetry implements river.Worker. A segment is retried after its worker
// died (and was rescued once MCPIDP_RESCUE_STUCK_JOBS_AFTER had passed) or a
// passing storage error; River's default of attempt⁴ seconds would add
// minutes to a task that was killed twice, so wait attempt² seconds.
func (w *TaskRunner) NextRetry(job *river.Job[task.RunArgs]) time.Time {
	return time.Now().Add(time.Duration(job.Attempt*job.Attempt) * time.Second)
}

// Work implements river.Worker.
func (w *TaskRunner) Work(ctx context.Context, job *river.Job[task.RunArgs]) error {
	// The job's span (otelriver's, when tracing) and the model and MCP
	// spans below it name the task.
	trace.SpanFromContext(ctx).SetAttributes(telemetry.AttrTaskID.String(job.Args.TaskID))
	ctx = telemetry.WithTaskID(ctx, job.Args.TaskID)
	st := w.cfg.Store
	t, err := st.GetTaskByID(ctx, st.DB(), job.Args.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted or expired: nothing to do
	}
	if err != nil {
		return err
	}
	if t.Status.Terminal() || t.Segment != job.Args.Segment {
		return nil
	}
	ok, err := st.ClaimTask(ctx, st.DB(), t.ID, job.Args.Segment, job.ID)
	if err != nil {
		return err
	}
	if !ok {
		return nil // another job runs this segment, or the task moved on
	}
	log := w.cfg.Logger.With(slog.String("task_id", t.ID), slog.Int("segment", t.Segment), slog.Int("attempt", job.Attempt))

	err = w.run(ctx, job, t)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, task.ErrCanceled), errors.Is(err, store.ErrNotFound):
		log.InfoContext(ctx, "task run stopped: task canceled or deleted")
		return nil
	case errors.Is(err, store.ErrConflict):
		// Another runner recorded the same step: it owns the task now.
		log.WarnContext(ctx, "task run stopped: step already recorded by another run")
		return nil
	case errors.Is(ctx.Err(), context.Canceled):
		// River is stopping this process (SIGTERM, after its soft-stop
		// time). Returning context.Canceled tells it so: it makes the job
		// available again at once without using an attempt, and the
		// segment goes on from its recorded steps in another process.
		log.InfoContext(ctx, "task run interrupted by shutdown; it resumes in another process")
		return fmt.Errorf("task run interrupted by shutdown: %w", context.Canceled)
	case ctx.Err() != nil:
		if job.Attempt < job.MaxAttempts {
			return err // shutting down or timed out: River retries, recorded steps stay
		}
		// River gives up after this attempt; end the task rather than
		// leave it running with no job.
		return w.finish(context.WithoutCancel(ctx), t.ID, store.TaskFailed, nil, nil,
			&task.Error{Code: task.CodeTimeout, Message: redactQueries(fmt.Sprintf("the task did not finish within %d attempts of %s each: %v", job.MaxAttempts, w.cfg.JobTimeout, err))})
	}
	var snooze *river.JobSnoozeError
	if errors.As(err, &snooze) {
		return err // waiting for the model: River runs the job again later
	}
	var fail *task.Failure
	if !errors.As(err, &fail) {
		if job.Attempt < job.MaxAttempts {
			log.ErrorContext(ctx, "task run failed, will retry", slog.String("error", err.Error()))
			return err
		}
		fail = &task.Failure{Code: task.CodeInternal, Message: err.Error()}
	}
	log.InfoContext(ctx, "task failed", slog.String("code", fail.Code))
	return w.finish(context.WithoutCancel(ctx), t.ID, store.TaskFailed, nil, nil,
		&task.Error{Code: fail.Code, Message: redactQueries(fail.Message)})
}

func (w *TaskRunner) run(ctx context.Context, job *river.Job[task.RunArgs], t *store.Task) error {
	// Any token stored from here on may answer a challenge met below.
	segmentStart := w.cfg.Store.Now()
	st := w.cfg.Store
	var req task.Request
	if err := json.Unmarshal(t.Request, &req); err != nil {
		return &task.Failure{Code: task.CodeBadRequest, Message: "stored task request is unreadable: " + err.Error()}
	}
	secrets, err := task.OpenSecrets(w.cfg.Keyring, t)
	if err != nil {
		return err
	}
	if t.RetryingAt != nil {
		// This is the retry it waited for.
		if err := st.ClearRetryingAt(ctx, st.DB(), t.ID); err != nil {
			return err
		}
	}
	// A form its last run held a call open for has no call left to answer.
	if err := st.ExpireTaskInputs(ctx, st.DB(), t.ID); err != nil {
		return err
	}
	recorded, err := st.ListSteps(ctx, st.DB(), t.ID)
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
	go w.watchCancel(ctx, t.ID, cancel)

	callOpts := llm.CallOptions{APIKey: secrets.UpstreamAuthorization}
	var approvals map[string]agentloop.ApprovalPolicy
	for _, s := range req.Servers {
		if s.RequireApproval != nil {
			if approvals == nil {
				approvals = map[string]agentloop.ApprovalPolicy{}
			}
			approvals[s.URL] = *s.RequireApproval
		}
	}
	run := &agentloop.Run{
		Body:     req.Body,
		Messages: req.Messages,
		MaxSteps: req.MaxSteps,
		StopWhen: req.StopWhen,
		Steps:    steps,
		// A background response's own function tools end the run; its
		// max_tool_calls bounds the MCP calls.
		ClientTools:  req.ClientTools,
		MaxToolCalls: req.MaxToolCalls,
		Complete: func(ctx context.Context, body []byte) (*llm.Completion, error) {
			return w.cfg.Model.Complete(ctx, body, callOpts)
		},
		Record: func(ctx context.Context, index int, step agentloop.Step) error {
			return w.record(ctx, t.ID, index, step)
		},
		ErrorIsFatal: func(err error) bool {
			var ch *mcpclient.AuthChallengeError
			var url *mcpclient.URLElicitationRequiredError
			return errors.As(err, &ch) || errors.As(err, &url)
		},
		MarkCall: func(ctx context.Context, index int, step agentloop.Step, sent bool) (bool, error) {
			return w.markCall(ctx, t.ID, index, step, sent)
		},
		Now:       st.Now,
		Approvals: approvals,
		Approve: func(ctx context.Context, call *agentloop.ApprovalCall) (agentloop.Verdict, error) {
			return w.cfg.Tasks.ApprovalVerdict(ctx, t.ID, call)
		},
	}
	if len(req.Servers) > 0 {
		servers := make([]mcpclient.Server, len(req.Servers))
		for i, s := range req.Servers {
			servers[i] = mcpclient.Server{URL: s.URL, ConnectURL: secrets.ConnectURLs[s.URL], AllowedTools: s.AllowedTools, Headers: secrets.Headers[s.URL]}
		}
		urls := &urlAsks{}
		handlers := serverHandlers{sample: run.Sample, elicit: w.elicitFunc(ctx, t, &req, urls)}
		connect := func(ctx context.Context, server mcpclient.Server) (*mcpclient.Session, error) {
			return w.connect(ctx, t.TenantID, t.UserID, server, handlers)
		}
		mcp, err := agentloop.ConnectMCP(ctx, connect, servers)
		if err != nil {
			return w.classify(ctx, job, t, &req, segmentStart, err)
		}
		defer mcp.Close()
		run.Tools = &urlTools{Tools: mcp, urls: urls}
	}

	outcome, err := run.Execute(ctx)
	if err != nil {
		return w.classify(ctx, job, t, &req, segmentStart, err)
	}
	output, _ := json.Marshal(task.Output{Content: outcome.Content, Markdown: agentloop.Markdown(outcome.Steps), StopReason: outcome.Reason})
	usage, _ := json.Marshal(outcome.Usage)
	return w.finish(ctx, t.ID, store.TaskCompleted, output, usage, nil)
}

// classify turns a run error into a task failure, or passes it on when the
// task was canceled or the process is stopping.
func (w *TaskRunner) classify(ctx context.Context, job *river.Job[task.RunArgs], t *store.Task, req *task.Request, challengedAfter time.Time, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, task.ErrCanceled) {
		return task.ErrCanceled
	}
	if ctx.Err() != nil {
		return err
	}
	challenges := agentloop.Challenges(err)
	var held *agentloop.ApprovalRequiredError
	if len(challenges) > 0 || errors.As(err, &held) {
		// Waiting for a login is no model outage: a model failure after
		// the resume starts a new streak with the whole retry time.
		if rerr := w.cfg.Store.ResetModelRetry(ctx, w.cfg.Store.DB(), t.ID); rerr != nil {
			return rerr
		}
	}
	var urlInput *mcpclient.URLElicitationRequiredError
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, task.ErrCanceled), errors.Is(err, store.ErrNotFound):
		return err
	case errors.As(err, &urlInput):
		return w.pauseForInput(ctx, job, t, req, urlInput.Elicitations)
	case len(challenges) > 0:
		return w.pause(ctx, job, t, req, challenges, challengedAfter)
	case errors.As(err, &held):
		return w.pauseForApproval(ctx, job, t, req, held.Calls)
	case errors.Is(err, agentloop.ErrModel):
		if transientModelError(err) {
			return w.retryModel(ctx, t, err)
		}
		return &task.Failure{Code: task.CodeModelError, Message: err.Error()}
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return &task.Failure{Code: task.CodeMCPServerError, Message: err.Error()}
	}
	return err
}

// serverHandlers answer the requests a task's MCP servers send while a
// tool runs.
type serverHandlers struct {
	sample mcpclient.SampleFunc
	elicit mcpclient.ElicitFunc
}

type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// connect opens a session with the user's token for the server
// (agentloop.UserConnect, shared with the chat proxy). Failures other than
// a login challenge are marked as the server's.
func (w *TaskRunner) connect(ctx context.Context, tenant, user string, server mcpclient.Server, h serverHandlers) (*mcpclient.Session, error) {
	connect := agentloop.UserConnect(w.cfg.OAuth, mcpclient.Options{HTTPClient: w.cfg.HTTPClient, Logger: w.cfg.Logger, Limits: w.cfg.MCPLimits,
		TracerProvider: w.cfg.TracerProvider, SampleFunc: h.sample, ElicitFunc: h.elicit}, tenant, user)
	s, err := connect(ctx, server)
	if err != nil && !agentloop.IsChallenge(err) {
		return nil, &connectError{err: err}
	}
	return s, err
}

// record commits one step, but only while the task is still running: a
// cancel that lands between two steps stops the run before the next one.
// A sampling step may also come while the run holds a call open for its
// user's form (awaiting_input), which it leaves as it is.
func (w *TaskRunner) record(ctx context.Context, taskID string, index int, step agentloop.Step) error {
	data, err := json.Marshal(step)
	if err != nil {
		return fmt.Errorf("error encoding step: %w", err)
	}
	st := w.cfg.Store
	return st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := st.TransitionTask(ctx, tx, taskID, []store.TaskStatus{store.TaskRunning}, store.TaskRunning)
		if err == nil && !ok && step.Type == agentloop.StepSampling {
			ok, err = st.TransitionTask(ctx, tx, taskID, []store.TaskStatus{store.TaskAwaitingInput}, store.TaskAwaitingInput)
		}
		if err != nil {
			return err
		}
		if !ok {
			return task.ErrCanceled
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
			return task.ErrCanceled
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

func (w *TaskRunner) finish(ctx context.Context, taskID string, status task.Status, output, usage json.RawMessage, taskErr *task.Error) error {
	_, err := w.cfg.Tasks.Finish(ctx, task.FinishParams{TaskID: taskID, Status: status, Output: output, Usage: usage, Error: taskErr})
	return err
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
		cur, err := st.GetTaskByID(ctx, st.DB(), taskID)
		if errors.Is(err, store.ErrNotFound) || err == nil && cur.Status.Terminal() {
			cancel(task.ErrCanceled)
			return
		}
	}
}
