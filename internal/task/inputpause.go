package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
)

// CodeInputDeclined and CodeInputTimeout fail a task paused for a URL
// elicitation that the user declined, or did not complete in time.
const (
	CodeInputDeclined = "input_declined"
	CodeInputTimeout  = "input_timeout"
)

// InputTimeoutArgs fails a task still parked for URL inputs, in the given
// segment, once they expire. Inserted, scheduled, with the pause.
type InputTimeoutArgs struct {
	TaskID  string `json:"task_id"`
	Segment int    `json:"segment"`
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

// PauseForInput parks the task (Park) in awaiting_input until the user has
// completed every URL: in one transaction the inputs, the task's
// pending_inputs, the continuation job, the input timeout, the
// input.required callbacks, the task.input_required webhook and the running
// job's completion. The answer (accept, through
// POST /v1/tasks/{id}/inputs/{input_id}) resumes it once nothing else is
// pending; the call that was refused is then sent again.
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
		park := Park{Task: t, Request: p.Request, Status: StatusAwaitingInput, PendingInputs: list,
			TimeoutJob: InputTimeoutArgs{TaskID: t.ID, Segment: next}, TimeoutAt: p.ExpiresAt,
			Event: EventInputRequired, CallbackType: CallbackInputRequired, CompleteJobTxFunc: p.CompleteJobTxFunc}
		if err := s.ParkTx(ctx, tx, rc, park); err != nil {
			return err
		}
		urls := Build(t, nil, s.cfg.PublicURL).ResultURLs
		for i, in := range inputs {
			data, _ := json.Marshal(map[string]any{
				"task_id": t.ID, "user": t.UserID, "input_id": in.ID, "server_url": in.ServerURL, "mode": in.Mode,
				"message": in.Message, "requested_schema": nil, "url": in.URL, "form_url": pending[i].FormURL,
				"expires_at": in.ExpiresAt, "result_urls": urls,
			})
			park.Callbacks = append(park.Callbacks, data)
		}
		return s.NotifyParkedTx(ctx, tx, rc, park)
	})
}

// answerURLTx takes the answer to a URL input of a paused task, in tx: an
// accept resumes the task (ResumeParkedTx) once nothing else is pending. It
// reports whether the user declined, which the caller turns into the task's
// failure.
func (s *Service) answerURLTx(ctx context.Context, tx *sql.Tx, t *store.Task, action string) (declined bool, err error) {
	if action != mcpclient.ElicitAccept {
		return true, nil
	}
	st := s.cfg.Store
	// Locked before counting: of two answers to the last two inputs, the
	// second sees the first and resumes.
	locked, err := st.GetTaskForUpdate(ctx, tx, t.ID)
	if err != nil {
		return false, err
	}
	pending, err := st.PendingTaskInputs(ctx, tx, t.ID)
	if err != nil || len(pending) > 0 {
		return false, err
	}
	rc, err := s.river(ctx)
	if err != nil {
		return false, err
	}
	_, err = s.ResumeParkedTx(ctx, tx, rc, locked)
	return false, err
}

// TimeoutInput fails a task still parked, in the given segment, for URL
// inputs of which one has expired unanswered (Finish with input_timeout,
// which also expires the inputs, so a late answer gets a 409), by the
// store's clock; when that clock says "not yet" it returns how long to
// wait. A task whose URLs were all answered was resumed (or failed, on a
// decline) by the answer: nothing to do.
func (s *Service) TimeoutInput(ctx context.Context, p TimeoutParams) (time.Duration, error) {
	st := s.cfg.Store
	t, err := s.pausedTask(ctx, p.TaskID, StatusAwaitingInput, p.Segment)
	if t == nil {
		return 0, err
	}
	inputs, err := st.PendingTaskInputs(ctx, st.DB(), t.ID)
	if err != nil {
		return 0, err
	}
	// A form a later run holds a call open for is not this pause's: the
	// hold ends it.
	inputs = slices.DeleteFunc(inputs, func(in store.Input) bool { return in.Mode != mcpclient.ElicitModeURL })
	if len(inputs) == 0 {
		return 0, nil
	}
	now := st.Now()
	var expired []string
	soonest := inputs[0].ExpiresAt
	for _, in := range inputs {
		if !now.Before(in.ExpiresAt) {
			expired = append(expired, fmt.Sprintf("%s (asked by %s)", in.URL, in.ServerURL))
		} else if in.ExpiresAt.Before(soonest) {
			soonest = in.ExpiresAt
		}
	}
	if len(expired) == 0 {
		return soonest.Sub(now), nil
	}
	_, err = s.Finish(ctx, FinishParams{TaskID: t.ID, Status: StatusFailed, OnlyFrom: StatusAwaitingInput, Segment: &t.Segment,
		Error: &Error{Code: CodeInputTimeout, Message: "nobody completed " + strings.Join(expired, ", ") + " before it expired"}})
	return 0, err
}
