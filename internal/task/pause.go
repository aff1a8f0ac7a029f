package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
)

// PauseParams is a running task that met login challenges.
type PauseParams struct {
	// Task is the task as its run loaded it (its segment is the one
	// running).
	Task    *store.Task
	Request *Request
	// Challenges are the servers that asked for a login.
	Challenges []*mcpclient.AuthChallengeError
	// ChallengedAfter is when the segment began: a login completed since
	// then may already answer a challenge.
	ChallengedAfter time.Time
	// CompleteJobTxFunc completes the running job in the pause's
	// transaction. Optional.
	CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx) error
}

// Pause parks the task until the user logs in to every server that asked:
// in one transaction it saves what the task waits on, moves it to
// awaiting_authorization (segment+1), stages the continuation job
// (pending), schedules the authorization timeout, queues a login recheck,
// queues the login links for the callback and the webhook, and completes
// the current job. A wait that a refresh already answered resumes at once.
// It gives a *Failure when the task should fail instead, and ErrCanceled
// when the task stopped running.
func (s *Service) Pause(ctx context.Context, p PauseParams) error {
	t := p.Task
	if t.Segment+1 >= MaxSegments {
		return &Failure{Code: CodeAuthorizationRequired, Message: fmt.Sprintf("the task paused for a login %d times; giving up", t.Segment+1)}
	}
	st := s.cfg.Store
	var logins []AuthorizationRequest
	var waits []store.Wait
	var failures []string
	// The same login links the chat proxy hands out, one per challenge, in order.
	for i, link := range agentloop.BeginLogins(ctx, s.cfg.OAuth, t.TenantID, t.UserID, p.Challenges) {
		ch := p.Challenges[i]
		err := link.Err
		var canon string
		if err == nil {
			canon, err = mcpauth.CanonicalServerURL(ch.ServerURL)
		}
		if err == nil {
			logins = append(logins, AuthorizationRequest{ServerURL: ch.ServerURL, AuthorizationURL: link.AuthorizationURL, ExpiresAt: link.ExpiresAt})
			// A refresh that failed can be answered by a later one; a
			// token the server refused, or a step-up, only by a login.
			waits = append(waits, store.Wait{TenantID: t.TenantID, UserID: t.UserID, ServerURL: canon, LoginID: link.LoginID, ExpiresAt: link.ExpiresAt,
				ResumeOnRefresh: ch.StatusCode == http.StatusUnauthorized && ch.RenewErr != nil})
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures = append(failures, fmt.Sprintf("%s asks for a login that cannot be started: %v", ch.ServerURL, err))
	}
	if len(failures) > 0 {
		return &Failure{Code: CodeAuthorizationFailed, Message: strings.Join(failures, "; ")}
	}
	loginsJSON, _ := json.Marshal(logins)
	rc, err := s.river(ctx)
	if err != nil {
		return err
	}
	next := t.Segment + 1
	expiry := waits[0].ExpiresAt
	for _, wt := range waits[1:] {
		if wt.ExpiresAt.Before(expiry) {
			expiry = wt.ExpiresAt
		}
	}
	return st.InTx(ctx, func(tx *sql.Tx) error {
		// A refresh that stored a new token after this task's refresh failed
		// found no wait to resume: look for its token, with the connection
		// locked before the task (the order a refresh locks them in).
		var refreshed []string
		for _, wt := range waits {
			if !wt.ResumeOnRefresh {
				continue
			}
			usable, err := s.cfg.OAuth.TokenUsableTx(ctx, tx, t.TenantID, t.UserID, wt.ServerURL)
			if err != nil {
				return err
			}
			if usable {
				refreshed = append(refreshed, wt.ServerURL)
			}
		}
		park := Park{Task: t, Request: p.Request, Status: StatusAwaitingAuthorization, AuthorizationRequired: loginsJSON,
			TimeoutJob: AuthTimeoutArgs{TaskID: t.ID, Segment: next}, TimeoutAt: expiry,
			Event: EventAuthorizationRequired, CallbackType: CallbackAuthorizationRequired, CompleteJobTxFunc: p.CompleteJobTxFunc}
		if err := s.ParkTx(ctx, tx, rc, park); err != nil {
			return err
		}
		if err := st.InsertWaits(ctx, tx, t.ID, waits); err != nil {
			return err
		}
		// A login that completed between the challenge and this commit
		// found no waiting task to resume: a job queued with the pause
		// looks for it, so not even a crash right after the commit loses it.
		if _, err := rc.InsertTx(ctx, tx, LoginRecheckArgs{TaskID: t.ID, Segment: next, Since: p.ChallengedAfter}, nil); err != nil {
			return fmt.Errorf("error queueing login recheck: %w", err)
		}
		if len(refreshed) > 0 {
			resumed, err := s.resumeAllTx(ctx, tx, rc, []string{t.ID}, "", func(ctx context.Context, q store.DBTX, taskID, _ string) (bool, error) {
				for _, server := range refreshed {
					if _, err := st.ClearRefreshWait(ctx, q, taskID, server); err != nil {
						return false, err
					}
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			if resumed > 0 {
				// Nothing left to wait for: no login link to send.
				return park.complete(ctx, tx)
			}
		}
		urls := Build(t, nil, s.cfg.PublicURL).ResultURLs
		for _, l := range logins {
			data, _ := json.Marshal(map[string]any{
				"task_id": t.ID, "user": t.UserID, "server_url": l.ServerURL, "authorization_url": l.AuthorizationURL,
				"message":    agentloop.LoginPrompt(l.ServerURL, l.AuthorizationURL),
				"expires_at": l.ExpiresAt, "result_urls": urls,
			})
			park.Callbacks = append(park.Callbacks, data)
		}
		return s.NotifyParkedTx(ctx, tx, rc, park)
	})
}

// Park is what every kind of pause shares: a running task stops until a
// person acts (logs in, approves a tool call, completes what a URL asks),
// holding nothing while it waits. A kind of pause records what it waits on
// in its own table, calls ParkTx and then NotifyParkedTx, all in one
// transaction; its resume calls ResumeParkedTx once nothing is left to wait
// for; its timeout job fails the task (Finish with OnlyFrom Status and the
// segment) when nobody acted in time. The kinds: logins (Pause,
// awaiting_authorization), tool approvals (PauseForApproval,
// awaiting_approval) and URL inputs (PauseForInput, awaiting_input).
//
// A form an MCP server asks for during a call is not parked: the run's job
// holds the call open (AskInput, WaitInput) in awaiting_input, and the
// store's resume guard (no job running the task) keeps the two apart.
type Park struct {
	// Task is the task as its run loaded it (its segment is the one
	// running); Request its stored request.
	Task    *store.Task
	Request *Request
	// Status is the paused status (store's pausedStatuses).
	Status Status
	// AuthorizationRequired, PendingApprovals and PendingInputs are the
	// lists the task object shows while it waits (each kind sets its own).
	AuthorizationRequired, PendingApprovals, PendingInputs json.RawMessage
	// TimeoutJob is the kind's timeout job, scheduled at TimeoutAt.
	TimeoutJob river.JobArgs
	TimeoutAt  time.Time
	// Event is the webhook event announcing the pause.
	Event string
	// CallbackType and Callbacks are the signed POSTs to the task's
	// authorizationRequestCallback (each a "data" object), if it has one.
	CallbackType string
	Callbacks    []json.RawMessage
	// CompleteJobTxFunc completes the running job in the pause's
	// transaction. Optional.
	CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx) error
}

func (p *Park) complete(ctx context.Context, tx *sql.Tx) error {
	if p.CompleteJobTxFunc != nil {
		return p.CompleteJobTxFunc(ctx, tx)
	}
	return nil
}

// ParkTx moves the running task to p.Status in the next segment, stages
// the continuation job (pending: it runs only when a resume releases it)
// and schedules p.TimeoutJob. It gives ErrCanceled when the task no longer
// runs that segment.
func (s *Service) ParkTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], p Park) error {
	st := s.cfg.Store
	t := p.Task
	ok, err := st.ParkTask(ctx, tx, store.ParkParams{TaskID: t.ID, Segment: t.Segment, Status: p.Status,
		AuthorizationRequired: p.AuthorizationRequired, PendingApprovals: p.PendingApprovals, PendingInputs: p.PendingInputs})
	if err != nil {
		return err
	}
	if !ok {
		return ErrCanceled
	}
	cont, err := rc.InsertTx(ctx, tx, RunArgs{TaskID: t.ID, Segment: t.Segment + 1}, &river.InsertOpts{Pending: true})
	if err != nil {
		return fmt.Errorf("error staging continuation job: %w", err)
	}
	if err := st.SetContinuationJob(ctx, tx, t.ID, cont.Job.ID); err != nil {
		return err
	}
	if p.TimeoutJob != nil {
		if _, err := rc.InsertTx(ctx, tx, p.TimeoutJob, &river.InsertOpts{ScheduledAt: p.TimeoutAt}); err != nil {
			return fmt.Errorf("error scheduling pause timeout: %w", err)
		}
	}
	return nil
}

// NotifyParkedTx queues the pause's callbacks and webhook event and
// completes the running job: the last part of a pause's transaction.
func (s *Service) NotifyParkedTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], p Park) error {
	t := p.Task
	if p.Request != nil && p.Request.AuthorizationRequestCallback != "" {
		for _, data := range p.Callbacks {
			if _, err := delivery.Enqueue(ctx, tx, rc, s.cfg.Store, delivery.Event{TenantID: t.TenantID, TaskID: t.ID,
				Type: p.CallbackType, URL: p.Request.AuthorizationRequestCallback, Data: data}); err != nil {
				return err
			}
		}
	}
	if err := s.announceTx(ctx, tx, rc, t.ID, p.Event); err != nil {
		return err
	}
	return p.complete(ctx, tx)
}

// ResumeParkedTx resumes a parked task (locked by the caller with
// GetTaskForUpdate) once nothing is left to wait for: back to queued, the
// parked job deleted and a fresh job for its segment. It reports false
// when the task was no longer parked in that segment (or a job holds it:
// a held form), which is what makes a resume happen once.
func (s *Service) ResumeParkedTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], t *store.Task) (bool, error) {
	return s.resumeTx(ctx, tx, rc, t)
}

// ResumeParams names the server a tenant's user now has a token for
// (canonical URL).
type ResumeParams struct {
	Tenant    string
	User      string
	ServerURL string
	// TaskID, when set, limits Resume to that one task. A job that found a
	// login one task missed (recheck, timeout) resumes that task alone:
	// another task of the user may have paused after that login, for a
	// challenge no login has answered yet.
	TaskID string
}

// Resume continues every task of the tenant's user that waits on the
// server and waits on nothing else (only p.TaskID when set), one
// transaction per task, and returns how many it resumed. A task that fails
// to resume does not stop the others; the errors are joined.
func (s *Service) Resume(ctx context.Context, p ResumeParams) (int, error) {
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return 0, err
	}
	ids, err := st.WaitingTasks(ctx, st.DB(), p.Tenant, p.User, p.ServerURL)
	if err != nil {
		return 0, err
	}
	if p.TaskID != "" {
		ids = slices.DeleteFunc(ids, func(id string) bool { return id != p.TaskID })
	}
	resumed := 0
	var errs []error
	for _, id := range ids {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			ok, err := s.resumeOneTx(ctx, tx, rc, id, p.ServerURL, st.ClearWait)
			if ok {
				resumed++
			}
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("resuming task %s: %w", id, err))
		}
	}
	return resumed, errors.Join(errs...)
}

// ResumeTx is Resume inside the caller's transaction: the OAuth callback
// resumes the waiting tasks in the transaction that stores the token, so
// the token and the resumes commit together or not at all.
func (s *Service) ResumeTx(ctx context.Context, tx *sql.Tx, p ResumeParams) (int, error) {
	rc, err := s.river(ctx)
	if err != nil {
		return 0, err
	}
	ids, err := s.cfg.Store.WaitingTasks(ctx, tx, p.Tenant, p.User, p.ServerURL)
	if err != nil {
		return 0, err
	}
	return s.resumeAllTx(ctx, tx, rc, ids, p.ServerURL, s.cfg.Store.ClearWait)
}

// ResumeRefreshedTx continues, in the transaction that stores a refreshed
// access token for the tenant's user and server, the tasks that paused
// because an earlier refresh of that connection failed
// (store.Wait.ResumeOnRefresh). Waits for a login (no token, a token the
// server refused, a step-up) stay: a refresh cannot answer them, and
// resuming them would only pause again. Every wait it sees began before
// this token was stored, so a task is never resumed by a refresh that
// happened before it paused. As for logins, each wait is cleared once, so
// each task resumes once, and every resume counts toward MaxSegments.
func (s *Service) ResumeRefreshedTx(ctx context.Context, tx *sql.Tx, p ResumeParams) (int, error) {
	rc, err := s.river(ctx)
	if err != nil {
		return 0, err
	}
	ids, err := s.cfg.Store.RefreshWaitingTasks(ctx, tx, p.Tenant, p.User, p.ServerURL)
	if err != nil {
		return 0, err
	}
	return s.resumeAllTx(ctx, tx, rc, ids, p.ServerURL, s.cfg.Store.ClearRefreshWait)
}

// clearWaitFunc removes a task's wait on a server and reports whether this
// call removed it.
type clearWaitFunc func(ctx context.Context, q store.DBTX, taskID, serverURL string) (bool, error)

func (s *Service) resumeAllTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], ids []string, serverURL string, clear clearWaitFunc) (int, error) {
	resumed := 0
	for _, id := range ids {
		ok, err := s.resumeOneTx(ctx, tx, rc, id, serverURL, clear)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return resumed, fmt.Errorf("resuming task %s: %w", id, err)
		}
		if ok {
			resumed++
		}
	}
	return resumed, nil
}

// resumeOneTx clears the task's wait on serverURL and resumes it when that
// was its last wait. The task row is locked first: two logins for two
// servers of one task must not each see the other's wait still there.
func (s *Service) resumeOneTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], id, serverURL string, clear clearWaitFunc) (bool, error) {
	st := s.cfg.Store
	t, err := st.GetTaskForUpdate(ctx, tx, id)
	if err != nil {
		return false, err
	}
	cleared, err := clear(ctx, tx, id, serverURL)
	if err != nil || !cleared {
		return false, err
	}
	rest, err := st.TaskWaits(ctx, tx, id)
	if err != nil || len(rest) > 0 {
		return false, err // still waiting on another server
	}
	return s.resumeTx(ctx, tx, rc, t)
}

// resumeTx moves an awaiting task back to queued and queues a fresh job for
// its segment (a fresh insert notifies workers at once on PostgreSQL; the
// parked job is then not needed). It reports false when the task was no
// longer waiting.
func (s *Service) resumeTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], t *store.Task) (bool, error) {
	st := s.cfg.Store
	ok, parked, err := st.ResumeTask(ctx, tx, t.ID, t.Segment)
	if err != nil || !ok {
		return false, err
	}
	if err := deleteParkedJobTx(ctx, tx, rc, parked); err != nil {
		return false, err
	}
	res, err := rc.InsertTx(ctx, tx, RunArgs{TaskID: t.ID, Segment: t.Segment}, nil)
	if err != nil {
		return false, fmt.Errorf("error queueing resumed task: %w", err)
	}
	return true, st.SetContinuationJob(ctx, tx, t.ID, res.Job.ID)
}
