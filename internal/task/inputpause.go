package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
)

// CodeInputDeclined and CodeInputTimeout fail a task paused for a URL
// elicitation that the user declined, or did not complete in time.
const (
	CodeInputDeclined = "input_declined"
	CodeInputTimeout  = "input_timeout"
)

// InputTimeoutArgs fails a task still waiting for a URL elicitation when
// the input expires. Inserted, scheduled, with the pause.
type InputTimeoutArgs struct {
	TaskID  string `json:"task_id"`
	InputID string `json:"input_id"`
}

// Kind implements river.JobArgs.
func (InputTimeoutArgs) Kind() string { return "task_input_timeout" }

// PauseInputParams is a running task whose MCP server asks its user to open
// URLs first (URL-mode elicitation).
type PauseInputParams struct {
	Task    *store.Task
	Request *Request
	Asks    []mcpclient.ElicitRequest
	// ExpiresAt is when the task fails with input_timeout.
	ExpiresAt time.Time
	// CompleteJobTxFunc completes the running job in the pause's
	// transaction. Optional.
	CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx) error
}

// PauseForInput parks the task until the user has completed every URL, as
// Pause does for logins: in one transaction the inputs, awaiting_input
// (segment+1, nothing running), the pending continuation job, the scheduled
// input timeout, the input.required callbacks, the task.input_required
// webhook and the running job's completion. The answer (accept, through
// POST /v1/tasks/{id}/inputs/{input_id}) resumes it once; the call that was
// refused is then sent again.
func (s *Service) PauseForInput(ctx context.Context, p PauseInputParams) error {
	t := p.Task
	if t.Segment+1 >= MaxSegments {
		return &Failure{Code: CodeInputDeclined, Message: fmt.Sprintf("the task paused %d times; giving up", t.Segment+1)}
	}
	if len(p.Asks) == 0 {
		return &Failure{Code: CodeMCPServerError, Message: "an MCP server asked for a URL elicitation without a URL"}
	}
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return err
	}
	next := t.Segment + 1
	return st.InTx(ctx, func(tx *sql.Tx) error {
		inputs := make([]*store.Input, len(p.Asks))
		pending := make([]PendingInput, len(p.Asks))
		for i, a := range p.Asks {
			in := &store.Input{TaskID: t.ID, ServerURL: a.ServerURL, Mode: mcpclient.ElicitModeURL, Message: a.Message, URL: a.URL, ExpiresAt: p.ExpiresAt}
			if err := st.CreateInput(ctx, tx, in); err != nil {
				return err
			}
			inputs[i], pending[i] = in, s.pendingInput(t, in)
		}
		list, _ := json.Marshal(pending)
		ok, err := st.PauseTaskForInput(ctx, tx, t.ID, t.Segment, list)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCanceled
		}
		cont, err := rc.InsertTx(ctx, tx, RunArgs{TaskID: t.ID, Segment: next}, &river.InsertOpts{Pending: true})
		if err != nil {
			return fmt.Errorf("error staging continuation job: %w", err)
		}
		if err := st.SetContinuationJob(ctx, tx, t.ID, cont.Job.ID); err != nil {
			return err
		}
		for _, in := range inputs {
			if _, err := rc.InsertTx(ctx, tx, InputTimeoutArgs{TaskID: t.ID, InputID: in.ID}, &river.InsertOpts{ScheduledAt: in.ExpiresAt}); err != nil {
				return fmt.Errorf("error scheduling input timeout: %w", err)
			}
		}
		if p.Request.AuthorizationRequestCallback != "" {
			urls := Build(t, nil, s.cfg.PublicURL).ResultURLs
			for i, in := range inputs {
				data, _ := json.Marshal(map[string]any{
					"task_id": t.ID, "user": t.UserID, "input_id": in.ID, "server_url": in.ServerURL, "mode": in.Mode,
					"message": in.Message, "requested_schema": nil, "url": in.URL, "form_url": pending[i].FormURL,
					"expires_at": in.ExpiresAt, "result_urls": urls,
				})
				if _, err := delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: t.TenantID, TaskID: t.ID,
					Type: CallbackInputRequired, URL: p.Request.AuthorizationRequestCallback, Data: data}); err != nil {
					return err
				}
			}
		}
		if err := s.announceTx(ctx, tx, rc, t.ID, EventInputRequired); err != nil {
			return err
		}
		if p.CompleteJobTxFunc != nil {
			return p.CompleteJobTxFunc(ctx, tx)
		}
		return nil
	})
}

// answerURLTx takes the answer to a URL input of a paused task, in tx: an
// accept resumes the task once nothing else is pending (queued, a fresh
// job for its segment, the parked one deleted). It reports whether the
// user declined, which the caller turns into the task's failure.
func (s *Service) answerURLTx(ctx context.Context, tx *sql.Tx, t *store.Task, action string) (declined bool, err error) {
	if action != mcpclient.ElicitAccept {
		return true, nil
	}
	st := s.cfg.Store
	if _, err := st.GetTaskForUpdate(ctx, tx, t.ID); err != nil {
		return false, err
	}
	n, err := st.PendingInputCount(ctx, tx, t.ID)
	if err != nil || n > 0 {
		return false, err
	}
	rc, err := s.river(ctx)
	if err != nil {
		return false, err
	}
	ok, segment, parked, err := st.ResumeTaskFromInput(ctx, tx, t.ID)
	if err != nil || !ok {
		return false, err
	}
	if err := deleteParkedJobTx(ctx, tx, rc, parked); err != nil {
		return false, err
	}
	res, err := rc.InsertTx(ctx, tx, RunArgs{TaskID: t.ID, Segment: segment}, nil)
	if err != nil {
		return false, fmt.Errorf("error queueing resumed task: %w", err)
	}
	return false, st.SetContinuationJob(ctx, tx, t.ID, res.Job.ID)
}

// TimeoutInput fails a task whose URL input expired unanswered.
func (s *Service) TimeoutInput(ctx context.Context, args InputTimeoutArgs) error {
	st := s.cfg.Store
	in, err := st.GetInput(ctx, st.DB(), args.TaskID, args.InputID)
	if err != nil {
		return nil // the task is gone
	}
	if in.Status != store.InputPending {
		return nil
	}
	if wait := in.ExpiresAt.Sub(st.Now()); wait > 0 {
		return river.JobSnooze(wait)
	}
	expired, err := st.ExpireInput(ctx, st.DB(), in.TaskID, in.ID)
	if err != nil || !expired {
		return err
	}
	_, err = s.Finish(ctx, FinishParams{TaskID: in.TaskID, Status: StatusFailed, OnlyFrom: StatusAwaitingInput,
		Error: &Error{Code: CodeInputTimeout, Message: fmt.Sprintf("nobody completed %s (asked by %s) before it expired", in.URL, in.ServerURL)}})
	return err
}
