package task

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
)

// DefaultApprovalTTL is how long a held-back tool call waits for a decision
// when ServiceConfig.ApprovalTTL is zero: as long as a login link.
const DefaultApprovalTTL = 24 * time.Hour

// ApprovalPathPrefix is the public path of the single-use approve links:
// GET shows a confirm page, POST decides.
const ApprovalPathPrefix = "/approve/"

// Errors of a decision on an approval.
var (
	// ErrApprovalDecided: the approval was already approved or denied.
	ErrApprovalDecided = errors.New("this tool call was already approved or denied")
	// ErrApprovalClosed: the task no longer waits for it (it ended, or
	// the approval expired).
	ErrApprovalClosed = errors.New("the task no longer waits for this approval")
)

// PendingApproval is one tool call a task waits to have approved, as the
// task object's pending_approvals shows it.
type PendingApproval struct {
	ID        string          `json:"id"`
	ServerURL string          `json:"server_url"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	// ApproveURL is the single-use confirm page (GET shows it with
	// Approve and Deny buttons, POST decides). Not stored: Build derives
	// it from the result token.
	ApproveURL string    `json:"approve_url"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// ApprovalToken is the token of an approval's link: an HMAC of its id keyed
// with the task's result token, so that whoever may read the result (which
// shows the link) can act on it, the link reveals nothing of the result
// token, and no link is stored (only its hash, to look it up).
func ApprovalToken(resultToken, approvalID string) string {
	mac := hmac.New(sha256.New, []byte(resultToken))
	mac.Write([]byte("mcpidp approval\x00" + approvalID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ApprovalPauseParams is a running task whose run held back tool calls.
type ApprovalPauseParams struct {
	Task    *store.Task
	Request *Request
	// Calls are the held-back calls; those with an ID were asked before.
	Calls []agentloop.ApprovalCall
	// CompleteJobTxFunc completes the running job in the pause's
	// transaction. Optional.
	CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx) error
}

// PauseForApproval parks the task (Park) in awaiting_approval until a
// person approves or denies every held-back call: in one transaction the
// approvals, the task's pending_approvals, the continuation job, the
// approval timeout, the approval.required callback and the
// task.approval_required webhook.
func (s *Service) PauseForApproval(ctx context.Context, p ApprovalPauseParams) error {
	t := p.Task
	if t.Segment+1 >= MaxSegments {
		return &Failure{Code: CodeApprovalRequired, Message: fmt.Sprintf("the task paused %d times; giving up", t.Segment+1)}
	}
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return err
	}
	now := st.Now()
	expiry := now.Add(s.cfg.ApprovalTTL)
	next := t.Segment + 1
	var fresh []store.Approval
	pending := make([]PendingApproval, len(p.Calls))
	for i, c := range p.Calls {
		if c.ID == "" {
			c.ID = store.NewID("apr_", now)
			fresh = append(fresh, store.Approval{ID: c.ID, TaskID: t.ID, Segment: next, Turn: c.Turn, ToolCallID: c.ToolCallID, ServerURL: c.ServerURL,
				Tool: c.Tool, Arguments: c.Arguments, TokenHash: store.HashKey(ApprovalToken(t.ResultToken, c.ID)), ExpiresAt: expiry})
		}
		pending[i] = PendingApproval{ID: c.ID, ServerURL: c.ServerURL, Name: c.Tool, Arguments: c.Arguments, ExpiresAt: expiry}
	}
	pendingJSON, _ := json.Marshal(pending)
	return st.InTx(ctx, func(tx *sql.Tx) error {
		park := Park{Task: t, Request: p.Request, Status: StatusAwaitingApproval, PendingApprovals: pendingJSON,
			TimeoutJob: ApprovalTimeoutArgs{TaskID: t.ID, Segment: next}, TimeoutAt: expiry,
			Event: EventApprovalRequired, CallbackType: CallbackApprovalRequired, CompleteJobTxFunc: p.CompleteJobTxFunc}
		if err := s.ParkTx(ctx, tx, rc, park); err != nil {
			return err
		}
		if err := st.InsertApprovals(ctx, tx, fresh); err != nil {
			return err
		}
		shown := Build(&store.Task{ID: t.ID, Status: StatusAwaitingApproval, ResultToken: t.ResultToken, PendingApprovals: pendingJSON}, nil, s.cfg.PublicURL)
		names := make([]string, len(pending))
		for i, a := range pending {
			names[i] = a.Name
		}
		data, _ := json.Marshal(map[string]any{
			"task_id": t.ID, "user": t.UserID, "pending_approvals": shown.PendingApprovals,
			"message":    "The task wants to call " + strings.Join(names, ", ") + " and waits for your approval.",
			"expires_at": expiry, "result_urls": shown.ResultURLs,
		})
		park.Callbacks = []json.RawMessage{data}
		return s.NotifyParkedTx(ctx, tx, rc, park)
	})
}

// ApprovalVerdict is the run loop's agentloop.ApproveFunc for a task: the
// decision recorded for the call, if it was asked before (call.ID is set
// then).
func (s *Service) ApprovalVerdict(ctx context.Context, taskID string, call *agentloop.ApprovalCall) (agentloop.Verdict, error) {
	st := s.cfg.Store
	a, err := st.ToolCallApproval(ctx, st.DB(), taskID, call.Turn, call.ToolCallID)
	if errors.Is(err, store.ErrNotFound) {
		return agentloop.Verdict{}, nil
	}
	if err != nil {
		return agentloop.Verdict{}, err
	}
	call.ID = a.ID
	return agentloop.Verdict{Decided: a.DecidedAt != nil, Approved: a.Approved, Reason: a.Reason}, nil
}

// DecideParams is a person's decision on one approval.
type DecideParams struct {
	// Tenant and TaskID name the task (API); empty when Token does.
	Tenant, TaskID string
	ApprovalID     string
	// Token is an approve link's token, instead of the three above.
	Token   string
	Approve bool
	Reason  string
}

// Approval is an approval with its task, as the confirm page shows it.
type Approval struct {
	store.Approval
	Task *store.Task
}

// ApprovalByToken returns the approval behind an approve link's token, or
// store.ErrNotFound.
func (s *Service) ApprovalByToken(ctx context.Context, token string) (*Approval, error) {
	st := s.cfg.Store
	a, err := st.ApprovalByTokenHash(ctx, st.DB(), store.HashKey(token))
	if err != nil {
		return nil, err
	}
	t, err := st.GetTaskByID(ctx, st.DB(), a.TaskID)
	if err != nil {
		return nil, err
	}
	return &Approval{Approval: *a, Task: t}, nil
}

// Decide records a decision once (a second one gives ErrApprovalDecided;
// one on a task that no longer waits, or after the approval expired,
// ErrApprovalClosed) and, when it was the task's last undecided approval,
// resumes the task in the same transaction: approved calls then run once,
// denied ones are told to the model. It returns the task object after the
// decision.
func (s *Service) Decide(ctx context.Context, p DecideParams) (*Object, error) {
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return nil, err
	}
	var taskID string
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		var a *store.Approval
		if p.Token != "" {
			a, err = st.ApprovalByTokenHash(ctx, tx, store.HashKey(p.Token))
		} else {
			if _, err = st.GetTask(ctx, tx, p.Tenant, p.TaskID); err == nil {
				a, err = st.GetApproval(ctx, tx, p.TaskID, p.ApprovalID)
			}
		}
		if err != nil {
			return err
		}
		taskID = a.TaskID
		t, err := st.GetTaskForUpdate(ctx, tx, a.TaskID)
		if err != nil {
			return err
		}
		if a.DecidedAt != nil {
			return ErrApprovalDecided
		}
		if t.Status != StatusAwaitingApproval || !st.Now().Before(a.ExpiresAt) {
			return ErrApprovalClosed
		}
		ok, err := st.DecideApproval(ctx, tx, a.ID, p.Approve, p.Reason)
		if err != nil {
			return err
		}
		if !ok {
			return ErrApprovalDecided
		}
		left, err := st.UndecidedApprovals(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if left > 0 {
			return s.dropPendingTx(ctx, tx, t, a.ID)
		}
		_, err = s.ResumeParkedTx(ctx, tx, rc, t)
		return err
	})
	if err != nil {
		return nil, err
	}
	t, err := st.GetTaskByID(ctx, st.DB(), taskID)
	if err != nil {
		return nil, err
	}
	steps, err := st.ListSteps(ctx, st.DB(), t.ID)
	if err != nil {
		return nil, err
	}
	return Build(t, steps, s.cfg.PublicURL), nil
}

// dropPendingTx removes a decided approval from the task's
// pending_approvals while others still wait.
func (s *Service) dropPendingTx(ctx context.Context, tx *sql.Tx, t *store.Task, id string) error {
	var pending []PendingApproval
	_ = json.Unmarshal(t.PendingApprovals, &pending)
	pending = slices.DeleteFunc(pending, func(p PendingApproval) bool { return p.ID == id })
	data, _ := json.Marshal(pending)
	return s.cfg.Store.SetPendingApprovals(ctx, tx, t.ID, data)
}

// TimeoutApproval fails a task still waiting, in the given segment, for an
// approval that has expired (Finish with approval_timeout), by the store's
// clock; when that clock says "not yet" it returns how long to wait. A task
// left waiting on nothing is resumed instead.
func (s *Service) TimeoutApproval(ctx context.Context, p TimeoutParams) (time.Duration, error) {
	st := s.cfg.Store
	t, err := s.pausedTask(ctx, p.TaskID, StatusAwaitingApproval, p.Segment)
	if t == nil {
		return 0, err
	}
	approvals, err := st.UndecidedTaskApprovals(ctx, st.DB(), t.ID)
	if err != nil {
		return 0, err
	}
	if len(approvals) == 0 {
		rc, err := s.river(ctx)
		if err != nil {
			return 0, err
		}
		return 0, st.InTx(ctx, func(tx *sql.Tx) error {
			locked, err := st.GetTaskForUpdate(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if n, err := st.UndecidedApprovals(ctx, tx, t.ID); err != nil || n > 0 {
				return err
			}
			_, err = s.ResumeParkedTx(ctx, tx, rc, locked)
			return err
		})
	}
	now := st.Now()
	var expired []string
	soonest := approvals[0].ExpiresAt
	for _, a := range approvals {
		if !now.Before(a.ExpiresAt) {
			expired = append(expired, a.Tool)
		} else if a.ExpiresAt.Before(soonest) {
			soonest = a.ExpiresAt
		}
	}
	if len(expired) == 0 {
		return soonest.Sub(now), nil
	}
	_, err = s.Finish(ctx, FinishParams{TaskID: t.ID, Status: StatusFailed, OnlyFrom: StatusAwaitingApproval, Segment: &t.Segment,
		Error: &Error{Code: CodeApprovalTimeout, Message: "nobody approved or denied the call of " + strings.Join(expired, ", ") + " before the approval expired"}})
	return 0, err
}
