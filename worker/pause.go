package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/taskview"
)

// MaxSegments bounds how many times one task may pause for a login (step-up
// rounds included), so a server that keeps refusing cannot loop forever.
const MaxSegments = 20

// Webhook event types.
const (
	EventAuthorizationRequired = "task.authorization_required"
	EventCompleted             = "task.completed"
	EventFailed                = "task.failed"
	EventCanceled              = "task.canceled"
	// CallbackAuthorizationRequired is the body type POSTed to a task's
	// authorizationRequestCallback.
	CallbackAuthorizationRequired = "authorization.required"
)

// CompleteJobTxFunc completes the running job inside tx. It exists because
// river.JobCompleteTx needs the driver type, which only the composition root
// knows.
type CompleteJobTxFunc func(ctx context.Context, tx *sql.Tx, job *river.Job[TaskRunArgs]) error

// pause parks the task until the user logs in to every server that asked:
// in one transaction it saves what the task waits on, moves it to
// awaiting_authorization (segment+1), stages the continuation job (pending),
// schedules the authorization timeout, queues the login links for the
// callback and the webhook, and completes the current job. A login that
// completed while this happened is caught right after the commit.
func (w *TaskRunner) pause(ctx context.Context, job *river.Job[TaskRunArgs], task *store.Task, req *taskview.TaskRequest,
	challenges []*mcpclient.AuthChallengeError, challengedAfter time.Time,
) error {
	if task.Segment+1 >= MaxSegments {
		return &taskFailure{code: CodeAuthorizationRequired, message: fmt.Sprintf("the task paused for a login %d times; giving up", task.Segment+1)}
	}
	st := w.cfg.Store
	var logins []taskview.AuthorizationRequest
	var waits []store.Wait
	var failures []string
	for _, ch := range challenges {
		canon, err := mcpauth.CanonicalServerURL(ch.ServerURL)
		if err == nil {
			var login *mcpauth.Login
			login, err = w.cfg.OAuth.BeginLogin(ctx, mcpauth.LoginParams{Tenant: task.TenantID, User: task.UserID, ServerURL: ch.ServerURL, WWWAuthenticate: ch.WWWAuthenticate})
			if err == nil {
				logins = append(logins, taskview.AuthorizationRequest{ServerURL: ch.ServerURL, AuthorizationURL: login.AuthorizationURL, ExpiresAt: login.ExpiresAt})
				// A refresh that failed can be answered by a later one; a
				// token the server refused, or a step-up, only by a login.
				waits = append(waits, store.Wait{TenantID: task.TenantID, UserID: task.UserID, ServerURL: canon, LoginID: login.ID, ExpiresAt: login.ExpiresAt,
					ResumeOnRefresh: ch.StatusCode == http.StatusUnauthorized && ch.RenewErr != nil})
				continue
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures = append(failures, fmt.Sprintf("%s asks for a login that cannot be started: %v", ch.ServerURL, err))
	}
	if len(failures) > 0 {
		return &taskFailure{code: CodeAuthorizationFailed, message: strings.Join(failures, "; ")}
	}
	loginsJSON, _ := json.Marshal(logins)
	rc, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	next := task.Segment + 1
	expiry := waits[0].ExpiresAt
	for _, wt := range waits[1:] {
		if wt.ExpiresAt.Before(expiry) {
			expiry = wt.ExpiresAt
		}
	}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		// A refresh that stored a new token after this task's refresh failed
		// found no wait to resume: look for its token, with the connection
		// locked before the task (the order a refresh locks them in).
		var refreshed []string
		for _, wt := range waits {
			if !wt.ResumeOnRefresh {
				continue
			}
			usable, err := w.cfg.OAuth.TokenUsableTx(ctx, tx, task.TenantID, task.UserID, wt.ServerURL)
			if err != nil {
				return err
			}
			if usable {
				refreshed = append(refreshed, wt.ServerURL)
			}
		}
		ok, err := st.PauseTask(ctx, tx, store.PauseParams{TaskID: task.ID, Segment: task.Segment, AuthorizationRequired: loginsJSON, Waits: waits})
		if err != nil {
			return err
		}
		if !ok {
			return errTaskCanceled
		}
		cont, err := rc.InsertTx(ctx, tx, TaskRunArgs{TaskID: task.ID, Segment: next}, &river.InsertOpts{Pending: true})
		if err != nil {
			return fmt.Errorf("error staging continuation job: %w", err)
		}
		if err := st.SetContinuationJob(ctx, tx, task.ID, cont.Job.ID); err != nil {
			return err
		}
		if _, err := rc.InsertTx(ctx, tx, AuthTimeoutArgs{TaskID: task.ID, Segment: next}, &river.InsertOpts{ScheduledAt: expiry}); err != nil {
			return fmt.Errorf("error scheduling authorization timeout: %w", err)
		}
		// A login that completed between the challenge and this commit
		// found no waiting task to resume: a job queued with the pause
		// looks for it, so not even a crash right after the commit loses it.
		if _, err := rc.InsertTx(ctx, tx, LoginRecheckArgs{TaskID: task.ID, Segment: next, Since: challengedAfter}, nil); err != nil {
			return fmt.Errorf("error queueing login recheck: %w", err)
		}
		if len(refreshed) > 0 {
			resumed, err := resumeAllTx(ctx, tx, st, rc, []string{task.ID}, "", func(ctx context.Context, q store.DBTX, taskID, _ string) (bool, error) {
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
				if w.cfg.CompleteJobTx != nil {
					return w.cfg.CompleteJobTx(ctx, tx, job)
				}
				return nil
			}
		}
		if req.AuthorizationRequestCallback != "" {
			urls := taskview.Build(task, nil, w.cfg.PublicURL).ResultURLs
			for _, l := range logins {
				data, _ := json.Marshal(map[string]any{
					"task_id": task.ID, "user": task.UserID, "server_url": l.ServerURL, "authorization_url": l.AuthorizationURL,
					"message":    fmt.Sprintf("Log in to %s so the task can go on: %s", agentloop.Host(l.ServerURL), l.AuthorizationURL),
					"expires_at": l.ExpiresAt, "result_urls": urls,
				})
				if _, err := delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: task.TenantID, TaskID: task.ID,
					Type: CallbackAuthorizationRequired, URL: req.AuthorizationRequestCallback, Data: data}); err != nil {
					return err
				}
			}
		}
		if err := AnnounceTx(ctx, tx, rc, st, w.cfg.PublicURL, task.ID, EventAuthorizationRequired); err != nil {
			return err
		}
		if w.cfg.CompleteJobTx != nil {
			return w.cfg.CompleteJobTx(ctx, tx, job)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return nil
}

// Resume continues every task of the tenant's user that waits on serverURL
// (canonical) and waits on nothing else, one transaction per task, and
// returns how many it resumed. A task that fails to resume does not stop
// the others; the errors are joined.
func Resume(ctx context.Context, st *store.Store, rc *river.Client[*sql.Tx], tenant, user, serverURL string) (int, error) {
	ids, err := st.WaitingTasks(ctx, st.DB(), tenant, user, serverURL)
	if err != nil {
		return 0, err
	}
	resumed := 0
	var errs []error
	for _, id := range ids {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			ok, err := resumeOneTx(ctx, tx, st, rc, id, serverURL, st.ClearWait)
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
func ResumeTx(ctx context.Context, tx *sql.Tx, st *store.Store, rc *river.Client[*sql.Tx], tenant, user, serverURL string) (int, error) {
	ids, err := st.WaitingTasks(ctx, tx, tenant, user, serverURL)
	if err != nil {
		return 0, err
	}
	return resumeAllTx(ctx, tx, st, rc, ids, serverURL, st.ClearWait)
}

// ResumeRefreshedTx continues, in the transaction that stores a refreshed
// access token for the tenant's user and serverURL (canonical), the tasks
// that paused because an earlier refresh of that connection failed
// (store.Wait.ResumeOnRefresh). Waits for a login (no token, a token the
// server refused, a step-up) stay: a refresh cannot answer them, and
// resuming them would only pause again. Every wait it sees began before
// this token was stored, so a task is never resumed by a refresh that
// happened before it paused. As for logins, each wait is cleared once, so
// each task resumes once, and every resume counts toward MaxSegments.
func ResumeRefreshedTx(ctx context.Context, tx *sql.Tx, st *store.Store, rc *river.Client[*sql.Tx], tenant, user, serverURL string) (int, error) {
	ids, err := st.RefreshWaitingTasks(ctx, tx, tenant, user, serverURL)
	if err != nil {
		return 0, err
	}
	return resumeAllTx(ctx, tx, st, rc, ids, serverURL, st.ClearRefreshWait)
}

// clearWaitFunc removes a task's wait on a server and reports whether this
// call removed it.
type clearWaitFunc func(ctx context.Context, q store.DBTX, taskID, serverURL string) (bool, error)

func resumeAllTx(ctx context.Context, tx *sql.Tx, st *store.Store, rc *river.Client[*sql.Tx], ids []string, serverURL string, clear clearWaitFunc) (int, error) {
	resumed := 0
	for _, id := range ids {
		ok, err := resumeOneTx(ctx, tx, st, rc, id, serverURL, clear)
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
func resumeOneTx(ctx context.Context, tx *sql.Tx, st *store.Store, rc *river.Client[*sql.Tx], id, serverURL string, clear clearWaitFunc) (bool, error) {
	task, err := st.GetTaskForUpdate(ctx, tx, id)
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
	return resumeTx(ctx, tx, st, rc, task)
}

// resumeTx moves an awaiting task back to queued and queues a fresh job for
// its segment (a fresh insert notifies workers at once on PostgreSQL; the
// parked job is then not needed). It reports false when the task was no
// longer waiting.
func resumeTx(ctx context.Context, tx *sql.Tx, st *store.Store, rc *river.Client[*sql.Tx], task *store.Task) (bool, error) {
	ok, parked, err := st.ResumeTask(ctx, tx, task.ID, task.Segment)
	if err != nil || !ok {
		return false, err
	}
	if parked != 0 {
		if _, err := rc.JobDeleteTx(ctx, tx, parked); err != nil && !errors.Is(err, river.ErrNotFound) {
			return false, fmt.Errorf("error removing parked job: %w", err)
		}
	}
	res, err := rc.InsertTx(ctx, tx, TaskRunArgs{TaskID: task.ID, Segment: task.Segment}, nil)
	if err != nil {
		return false, fmt.Errorf("error queueing resumed task: %w", err)
	}
	return true, st.SetContinuationJob(ctx, tx, task.ID, res.Job.ID)
}

// AnnounceTx queues a task webhook event (when the task has a webhook) in
// tx, with the task object as it is in tx.
func AnnounceTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, publicURL, taskID, eventType string) error {
	task, err := st.GetTaskByID(ctx, tx, taskID)
	if err != nil {
		return err
	}
	var req taskview.TaskRequest
	if err := json.Unmarshal(task.Request, &req); err != nil {
		return nil
	}
	url := ""
	if req.Webhook != nil {
		url = req.Webhook.URL
	}
	if url == "" {
		tenant, err := st.GetTenant(ctx, tx, task.TenantID)
		if err != nil {
			return err
		}
		url = tenant.WebhookURL
	}
	if url == "" {
		return nil
	}
	steps, err := st.ListSteps(ctx, tx, taskID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(taskview.Build(task, steps, publicURL))
	if err != nil {
		return err
	}
	_, err = delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: task.TenantID, TaskID: task.ID, Type: eventType, URL: url, Data: data})
	return err
}

// EventConnectionRefreshFailed announces that a user's connection needs a
// new login.
const EventConnectionRefreshFailed = "connection.refresh_failed"

// AnnounceRefreshFailedTx queues connection.refresh_failed to the tenant's
// default webhook URL, if it has one, in the refresh's transaction.
func AnnounceRefreshFailedTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, tenant, user string, c mcpauth.Connection) error {
	t, err := st.GetTenant(ctx, tx, tenant)
	if err != nil || t.WebhookURL == "" {
		return err
	}
	data, err := json.Marshal(map[string]any{"user": user, "connection": c})
	if err != nil {
		return err
	}
	_, err = delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: tenant, Type: EventConnectionRefreshFailed, URL: t.WebhookURL, Data: data})
	return err
}

// AuthTimeoutArgs fails a task still waiting for a login when its login
// links expire. Inserted, scheduled, with the pause.
type AuthTimeoutArgs struct {
	TaskID  string `json:"task_id"`
	Segment int    `json:"segment"`
}

// Kind implements river.JobArgs.
func (AuthTimeoutArgs) Kind() string { return "task_authorization_timeout" }

// AuthTimeouter is the worker for AuthTimeoutArgs.
type AuthTimeouter struct {
	river.WorkerDefaults[AuthTimeoutArgs]
	store     *store.Store
	publicURL string
	retention time.Duration
}

// NewAuthTimeouter returns the worker.
func NewAuthTimeouter(st *store.Store, publicURL string, retention time.Duration) *AuthTimeouter {
	return &AuthTimeouter{store: st, publicURL: publicURL, retention: retention}
}

// Work implements river.Worker. It decides by the store's clock, so the
// deadline is the one the task shows; when that clock says "not yet", the
// job snoozes until then.
func (a *AuthTimeouter) Work(ctx context.Context, job *river.Job[AuthTimeoutArgs]) error {
	st := a.store
	task, err := st.GetTaskByID(ctx, st.DB(), job.Args.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if task.Status != store.TaskAwaitingAuthorization || task.Segment != job.Args.Segment {
		return nil
	}
	waits, err := st.TaskWaits(ctx, st.DB(), task.ID)
	if err != nil {
		return err
	}
	rc, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	// A login whose resume was lost must not end in a timeout.
	resumedAny := false
	for _, w := range waits {
		done, err := st.LoginCompletedSince(ctx, st.DB(), task.TenantID, task.UserID, w.ServerURL, w.CreatedAt)
		if err != nil {
			return err
		}
		if done {
			if _, err := Resume(ctx, st, rc, task.TenantID, task.UserID, w.ServerURL); err != nil {
				return err
			}
			resumedAny = true
		}
	}
	if resumedAny {
		if waits, err = st.TaskWaits(ctx, st.DB(), task.ID); err != nil {
			return err
		}
		if task, err = st.GetTaskByID(ctx, st.DB(), task.ID); err != nil || task.Status != store.TaskAwaitingAuthorization {
			return err
		}
	}
	now := st.Now()
	var expired []string
	var soonest time.Time
	for _, w := range waits {
		if !now.Before(w.ExpiresAt) {
			expired = append(expired, w.ServerURL)
		} else if soonest.IsZero() || w.ExpiresAt.Before(soonest) {
			soonest = w.ExpiresAt
		}
	}
	if len(waits) == 0 {
		// Waiting on nothing, yet not resumed: resume it rather than let it
		// wait forever.
		return st.InTx(ctx, func(tx *sql.Tx) error {
			locked, err := st.GetTaskForUpdate(ctx, tx, task.ID)
			if err != nil {
				return err
			}
			if rest, err := st.TaskWaits(ctx, tx, task.ID); err != nil || len(rest) > 0 {
				return err
			}
			_, err = resumeTx(ctx, tx, st, rc, locked)
			return err
		})
	}
	if len(expired) == 0 {
		return river.JobSnooze(soonest.Sub(now))
	}
	errJSON, _ := json.Marshal(taskview.TaskError{Code: CodeAuthorizationTimeout,
		Message: "nobody logged in to " + strings.Join(expired, ", ") + " before the login link expired"})
	return st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := st.FinishTask(ctx, tx, task.ID, store.FinishParams{Status: store.TaskFailed, Error: errJSON, Retention: a.retention,
			OnlyFrom: store.TaskAwaitingAuthorization, Segment: &task.Segment})
		if err != nil || !ok {
			return err
		}
		return endTx(ctx, tx, rc, st, a.publicURL, task.ID, EventFailed)
	})
}

// endTx is what every end of a task does besides the status change: forget
// what it waited on, drop its parked job, and announce the end.
func endTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, publicURL, taskID, event string) error {
	if err := st.ClearWaits(ctx, tx, taskID); err != nil {
		return err
	}
	parked, err := st.ContinuationJob(ctx, tx, taskID)
	if err != nil {
		return err
	}
	if parked != 0 {
		if _, err := rc.JobDeleteTx(ctx, tx, parked); err != nil && !errors.Is(err, river.ErrNotFound) && !errors.Is(err, rivertype.ErrJobRunning) {
			return fmt.Errorf("error removing parked job: %w", err)
		}
	}
	return AnnounceTx(ctx, tx, rc, st, publicURL, taskID, event)
}

// EndTx finishes the bookkeeping of a task that just ended (for the API's
// cancel).
func EndTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, publicURL, taskID, event string) error {
	return endTx(ctx, tx, rc, st, publicURL, taskID, event)
}

// LoginRecheckArgs looks, right after a pause commits, for a login that
// completed between the task's challenge and its pause, and resumes the
// task if one did. Inserted in the pause transaction.
type LoginRecheckArgs struct {
	TaskID  string    `json:"task_id"`
	Segment int       `json:"segment"`
	Since   time.Time `json:"since"`
}

// Kind implements river.JobArgs.
func (LoginRecheckArgs) Kind() string { return "task_login_recheck" }

// LoginRechecker is the worker for LoginRecheckArgs.
type LoginRechecker struct {
	river.WorkerDefaults[LoginRecheckArgs]
	store *store.Store
}

// NewLoginRechecker returns the worker.
func NewLoginRechecker(st *store.Store) *LoginRechecker { return &LoginRechecker{store: st} }

// Work implements river.Worker.
func (l *LoginRechecker) Work(ctx context.Context, job *river.Job[LoginRecheckArgs]) error {
	st := l.store
	task, err := st.GetTaskByID(ctx, st.DB(), job.Args.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || task.Status != store.TaskAwaitingAuthorization || task.Segment != job.Args.Segment {
		return err
	}
	waits, err := st.TaskWaits(ctx, st.DB(), task.ID)
	if err != nil {
		return err
	}
	rc, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return err
	}
	for _, w := range waits {
		done, err := st.LoginCompletedSince(ctx, st.DB(), task.TenantID, task.UserID, w.ServerURL, job.Args.Since)
		if err != nil {
			return err
		}
		if done {
			if _, err := Resume(ctx, st, rc, task.TenantID, task.UserID, w.ServerURL); err != nil {
				return err
			}
		}
	}
	return nil
}
