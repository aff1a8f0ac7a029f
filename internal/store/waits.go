package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ClaimTask makes job the runner of the task's segment: it moves a queued
// task to running, or lets the same job take a running task back (River
// re-runs a job whose worker died), also one its worker left holding a call
// open for an input (awaiting_input: that call is gone with the worker). Any other job is refused, so a segment
// never runs twice at once.
func (s *Store) ClaimTask(ctx context.Context, q DBTX, id string, segment int, jobID int64) (bool, error) {
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET status = 'running', run_job_id = $3, pending_inputs = NULL, updated_at = $4
		WHERE id = $1 AND segment = $2 AND (status = 'queued' OR (status IN ('running', 'awaiting_input') AND run_job_id = $3))`,
		id, segment, jobID, micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("error claiming task %s: %w", id, err)
	}
	return n == 1, nil
}

// Wait is one MCP server a paused task waits on.
type Wait struct {
	TaskID    string
	TenantID  string
	UserID    string
	ServerURL string // canonical
	LoginID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	// ResumeOnRefresh is set when the task paused because refreshing the
	// user's token failed: a later refresh that stores a new token answers
	// the wait as well as a login.
	ResumeOnRefresh bool
}

// PauseParams describes a pause.
type PauseParams struct {
	TaskID  string
	Segment int // the segment that is pausing; the task moves to Segment+1
	// AuthorizationRequired is the JSON list shown on the task object.
	AuthorizationRequired json.RawMessage
	Waits                 []Wait
}

// ParkParams describes a task parked until a person acts: a login, an
// approval, a URL to visit, or any other kind of wait.
type ParkParams struct {
	TaskID  string
	Segment int // the segment that is pausing; the task moves to Segment+1
	// Status is the paused status (one of pausedStatuses).
	Status TaskStatus
	// AuthorizationRequired, PendingApprovals and PendingInputs are the
	// JSON lists shown on the task object while it waits; nil leaves the
	// column empty.
	AuthorizationRequired json.RawMessage
	PendingApprovals      json.RawMessage
	PendingInputs         json.RawMessage
}

// ParkTask moves a running task to a paused status in the next segment,
// with no job running it (run_job_id NULL: what makes it parked, and
// resumable by ResumeTask). It reports false when the task was no longer
// running that segment (canceled or deleted meanwhile).
func (s *Store) ParkTask(ctx context.Context, q DBTX, p ParkParams) (bool, error) {
	if !p.Status.Paused() {
		return false, fmt.Errorf("park task: %s is not a paused status", p.Status)
	}
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET status = $3, segment = segment + 1,
		authorization_required = $4, pending_approvals = $5, pending_inputs = $6, run_job_id = NULL, continuation_job_id = NULL, updated_at = $7
		WHERE id = $1 AND segment = $2 AND status = 'running'`, p.TaskID, p.Segment, string(p.Status),
		nullRaw(p.AuthorizationRequired), nullRaw(p.PendingApprovals), nullRaw(p.PendingInputs), micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("error pausing task %s: %w", p.TaskID, err)
	}
	return n == 1, nil
}

// PauseTask moves a running task to awaiting_authorization (ParkTask) and
// records what it waits on. It reports false when the task was no longer
// running that segment (canceled or deleted meanwhile).
func (s *Store) PauseTask(ctx context.Context, q DBTX, p PauseParams) (bool, error) {
	ok, err := s.ParkTask(ctx, q, ParkParams{TaskID: p.TaskID, Segment: p.Segment, Status: TaskAwaitingAuthorization,
		AuthorizationRequired: p.AuthorizationRequired})
	if err != nil || !ok {
		return ok, err
	}
	return true, s.InsertWaits(ctx, q, p.TaskID, p.Waits)
}

// InsertWaits records the servers a task paused for a login waits on.
func (s *Store) InsertWaits(ctx context.Context, q DBTX, taskID string, waits []Wait) error {
	now := micros(s.now())
	for _, w := range waits {
		if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task_wait (task_id, tenant_id, user_id, server_url, login_id, created_at, expires_at, resume_on_refresh)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, taskID, w.TenantID, w.UserID, w.ServerURL, w.LoginID, now, micros(w.ExpiresAt), w.ResumeOnRefresh); err != nil {
			return fmt.Errorf("error recording what task %s waits on: %w", taskID, err)
		}
	}
	return nil
}

// SetContinuationJob records the parked job that will continue the task.
func (s *Store) SetContinuationJob(ctx context.Context, q DBTX, taskID string, jobID int64) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET continuation_job_id = $2 WHERE id = $1`, taskID, jobID); err != nil {
		return fmt.Errorf("error saving continuation job of task %s: %w", taskID, err)
	}
	return nil
}

// WaitingTasks lists the tasks of a tenant's user that wait on serverURL.
func (s *Store) WaitingTasks(ctx context.Context, q DBTX, tenantID, userID, serverURL string) ([]string, error) {
	return s.waitingTasks(ctx, q, `SELECT task_id FROM mcpidp_task_wait WHERE tenant_id = $1 AND user_id = $2 AND server_url = $3 ORDER BY task_id`,
		tenantID, userID, serverURL)
}

// RefreshWaitingTasks lists the tasks of a tenant's user whose wait on
// serverURL a token refresh answers (Wait.ResumeOnRefresh).
func (s *Store) RefreshWaitingTasks(ctx context.Context, q DBTX, tenantID, userID, serverURL string) ([]string, error) {
	return s.waitingTasks(ctx, q, `SELECT task_id FROM mcpidp_task_wait WHERE tenant_id = $1 AND user_id = $2 AND server_url = $3
		AND resume_on_refresh ORDER BY task_id`, tenantID, userID, serverURL)
}

func (s *Store) waitingTasks(ctx context.Context, q DBTX, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("error listing waiting tasks: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// TaskWaits lists what a task waits on.
func (s *Store) TaskWaits(ctx context.Context, q DBTX, taskID string) ([]Wait, error) {
	rows, err := q.QueryContext(ctx, `SELECT task_id, tenant_id, user_id, server_url, login_id, created_at, expires_at, resume_on_refresh
		FROM mcpidp_task_wait WHERE task_id = $1 ORDER BY server_url`, taskID)
	if err != nil {
		return nil, fmt.Errorf("error listing task waits: %w", err)
	}
	defer rows.Close()
	var out []Wait
	for rows.Next() {
		var w Wait
		var created, expires int64
		if err := rows.Scan(&w.TaskID, &w.TenantID, &w.UserID, &w.ServerURL, &w.LoginID, &created, &expires, &w.ResumeOnRefresh); err != nil {
			return nil, err
		}
		w.CreatedAt, w.ExpiresAt = fromMicros(created), fromMicros(expires)
		out = append(out, w)
	}
	return out, rows.Err()
}

// ClearWait removes one wait and reports whether this call removed it: of
// two callbacks for the same login, only one goes on to resume.
func (s *Store) ClearWait(ctx context.Context, q DBTX, taskID, serverURL string) (bool, error) {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_task_wait WHERE task_id = $1 AND server_url = $2`, taskID, serverURL)
	if err != nil {
		return false, fmt.Errorf("error clearing wait of task %s: %w", taskID, err)
	}
	return n == 1, nil
}

// ClearRefreshWait is ClearWait for a wait a token refresh answers
// (Wait.ResumeOnRefresh): any other wait stays.
func (s *Store) ClearRefreshWait(ctx context.Context, q DBTX, taskID, serverURL string) (bool, error) {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_task_wait WHERE task_id = $1 AND server_url = $2 AND resume_on_refresh`, taskID, serverURL)
	if err != nil {
		return false, fmt.Errorf("error clearing wait of task %s: %w", taskID, err)
	}
	return n == 1, nil
}

// ClearWaits removes every wait of a task (it ended).
func (s *Store) ClearWaits(ctx context.Context, q DBTX, taskID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM mcpidp_task_wait WHERE task_id = $1`, taskID); err != nil {
		return fmt.Errorf("error clearing waits of task %s: %w", taskID, err)
	}
	return nil
}

// ResumeTask moves a parked task (any paused status, no job running it)
// of the given segment back to queued, clearing the lists it showed while
// it waited, and returns its parked continuation job id (0 if none). The
// guard makes a duplicate or late resume, one for a canceled task, or one
// for a form a running job holds (awaiting_input with run_job_id set) a
// no-op.
func (s *Store) ResumeTask(ctx context.Context, q DBTX, taskID string, segment int) (bool, int64, error) {
	var cont *int64
	err := q.QueryRowContext(ctx, `UPDATE mcpidp_task SET status = 'queued', authorization_required = NULL, pending_approvals = NULL,
		pending_inputs = NULL, updated_at = $3
		WHERE id = $1 AND segment = $2 AND status IN (`+pausedList+`) AND run_job_id IS NULL RETURNING continuation_job_id`,
		taskID, segment, micros(s.now())).Scan(&cont)
	if err != nil {
		if isNoRows(err) {
			return false, 0, nil
		}
		return false, 0, fmt.Errorf("error resuming task %s: %w", taskID, err)
	}
	if cont == nil {
		return true, 0, nil
	}
	return true, *cont, nil
}

// LoginCompletedSince reports whether the user completed a login to
// serverURL at or after since: a login that finished while a task was
// pausing. Token refreshes do not count; only a completed login can answer
// a challenge.
func (s *Store) LoginCompletedSince(ctx context.Context, q DBTX, tenantID, userID, serverURL string, since time.Time) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mcpidp_oauth_login
		WHERE tenant_id = $1 AND user_id = $2 AND server_url = $3 AND completed_at >= $4`,
		tenantID, userID, serverURL, micros(since)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("error checking completed logins: %w", err)
	}
	return n > 0, nil
}

// ContinuationJob returns the task's parked job id (0 if none).
func (s *Store) ContinuationJob(ctx context.Context, q DBTX, taskID string) (int64, error) {
	var cont *int64
	if err := q.QueryRowContext(ctx, `SELECT continuation_job_id FROM mcpidp_task WHERE id = $1`, taskID).Scan(&cont); err != nil {
		if isNoRows(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("error reading continuation job: %w", err)
	}
	if cont == nil {
		return 0, nil
	}
	return *cont, nil
}
