package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TaskStatus is the lifecycle state of a task.
type TaskStatus string

const (
	TaskQueued                TaskStatus = "queued"
	TaskRunning               TaskStatus = "running"
	TaskAwaitingAuthorization TaskStatus = "awaiting_authorization"
	// TaskAwaitingApproval: stopped before tool calls a person must approve.
	TaskAwaitingApproval TaskStatus = "awaiting_approval"
	// TaskAwaitingInput is a task whose MCP server asked its user for input
	// (elicitation): a form while the run's job holds the call open
	// (run_job_id set: not parked), or URLs while the task is parked
	// (ParkTask: no job runs it).
	TaskAwaitingInput TaskStatus = "awaiting_input"
	TaskCompleted     TaskStatus = "completed"
	TaskFailed        TaskStatus = "failed"
	TaskCanceled      TaskStatus = "canceled"
)

// Terminal reports whether no further change can happen to a task.
func (s TaskStatus) Terminal() bool {
	return s == TaskCompleted || s == TaskFailed || s == TaskCanceled
}

// Valid reports whether s is a known status.
func (s TaskStatus) Valid() bool {
	switch s {
	case TaskQueued, TaskRunning, TaskAwaitingAuthorization, TaskAwaitingApproval, TaskAwaitingInput, TaskCompleted, TaskFailed, TaskCanceled:
		return true
	}
	return false
}

// pausedStatuses are the statuses a task can be parked in until a person
// acts (ParkTask); ResumeTask takes a parked task out of any of them. A
// task is parked only when no job runs it: awaiting_input also names a
// form that a running job holds a call open for (run_job_id set), which
// ResumeTask leaves alone.
var pausedStatuses = []TaskStatus{TaskAwaitingAuthorization, TaskAwaitingApproval, TaskAwaitingInput}

// Paused reports whether s is a status a task can be parked in. For
// awaiting_input that is not enough to call the task parked: only a task no
// job runs is (see pausedStatuses).
func (s TaskStatus) Paused() bool { return slices.Contains(pausedStatuses, s) }

// Task is one row of mcpidp_task. JSON columns are kept raw: their shapes
// belong to the packages that write them.
type Task struct {
	ID             string
	TenantID       string
	UserID         string
	Status         TaskStatus
	Model          string
	Store          bool
	Request        json.RawMessage
	Secrets        string // sealed JSON of caller-supplied MCP headers
	Metadata       json.RawMessage
	ResultToken    string
	IdempotencyKey string
	Segment        int
	Output         json.RawMessage
	Usage          json.RawMessage
	Error          json.RawMessage
	// AuthorizationRequired is the JSON list of pending logins.
	AuthorizationRequired json.RawMessage
	// PendingApprovals is the JSON list of tool calls awaiting a decision.
	PendingApprovals json.RawMessage
	// PendingInputs is the JSON list of inputs the task waits for.
	PendingInputs json.RawMessage
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   *time.Time
	ExpiresAt     *time.Time
	// RetryingAt is when a running task whose model call failed with a
	// transient error tries again; nil while it is not waiting to.
	RetryingAt *time.Time
}

const taskColumns = `id, tenant_id, user_id, status, model, store, request, secrets, metadata, result_token,
	idempotency_key, segment, output, usage, error, authorization_required, pending_approvals, created_at, updated_at, completed_at, expires_at, retrying_at, pending_inputs`

func scanTask(row interface{ Scan(...any) error }) (*Task, error) {
	var (
		t                                Task
		idem, output, usage, errJSON, ar sql.NullString
		pa                               sql.NullString
		pending                          sql.NullString
		created, updated                 int64
		completed, expires, retrying     sql.NullInt64
		request, metadata                string
	)
	if err := row.Scan(&t.ID, &t.TenantID, &t.UserID, &t.Status, &t.Model, &t.Store, &request, &t.Secrets, &metadata,
		&t.ResultToken, &idem, &t.Segment, &output, &usage, &errJSON, &ar, &pa, &created, &updated, &completed, &expires, &retrying, &pending); err != nil {
		return nil, err
	}
	t.Request = json.RawMessage(request)
	t.Metadata = json.RawMessage(metadata)
	t.IdempotencyKey = idem.String
	t.Output = rawOrNil(output)
	t.Usage = rawOrNil(usage)
	t.Error = rawOrNil(errJSON)
	t.AuthorizationRequired = rawOrNil(ar)
	t.PendingApprovals = rawOrNil(pa)
	t.PendingInputs = rawOrNil(pending)
	t.CreatedAt = fromMicros(created)
	t.UpdatedAt = fromMicros(updated)
	t.CompletedAt = timePtr(completed)
	t.ExpiresAt = timePtr(expires)
	t.RetryingAt = timePtr(retrying)
	return &t, nil
}

func rawOrNil(s sql.NullString) json.RawMessage {
	if !s.Valid || s.String == "" {
		return nil
	}
	return json.RawMessage(s.String)
}

func nullRaw(r json.RawMessage) sql.NullString {
	if len(r) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(r), Valid: true}
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// CreateTask inserts t, filling ID, ResultToken and times when empty. A
// second task with the same tenant and idempotency key gives ErrConflict.
func (s *Store) CreateTask(ctx context.Context, q DBTX, t *Task) error {
	now := s.now()
	s.fillNewTask(t, now)
	if t.IdempotencyKey != "" {
		// An expired task no longer answers for its key: let it go, so the
		// key does not point at a task nobody can see.
		if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET idempotency_key = NULL
			WHERE tenant_id = $1 AND idempotency_key = $2 AND expires_at IS NOT NULL AND expires_at <= $3`,
			t.TenantID, t.IdempotencyKey, micros(now)); err != nil {
			return fmt.Errorf("error releasing expired idempotency key: %w", err)
		}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task (`+taskColumns+`) VALUES `+taskValues(1), taskArgs(nil, t)...)
	if isUniqueViolation(err) {
		return fmt.Errorf("task with idempotency key %q: %w", t.IdempotencyKey, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error inserting task: %w", err)
	}
	return nil
}

// MaxCreateTasks is the most tasks CreateTasks inserts in one statement
// (23 parameters each, well under both databases' limits).
const MaxCreateTasks = 256

// CreateTasks inserts tasks without idempotency keys in one statement,
// filling IDs, result tokens and times as CreateTask does. It is for
// submissions grouped into one transaction; a task with an idempotency
// key must go through CreateTask, which releases an expired key first.
func (s *Store) CreateTasks(ctx context.Context, q DBTX, ts []*Task) error {
	if len(ts) == 0 {
		return nil
	}
	if len(ts) > MaxCreateTasks {
		return fmt.Errorf("error inserting tasks: %d tasks in one statement, at most %d", len(ts), MaxCreateTasks)
	}
	now := s.now()
	args := make([]any, 0, len(ts)*taskColumnCount)
	for _, t := range ts {
		if t.IdempotencyKey != "" {
			return fmt.Errorf("error inserting tasks: task %s has an idempotency key (use CreateTask)", t.ID)
		}
		s.fillNewTask(t, now)
		args = taskArgs(args, t)
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task (`+taskColumns+`) VALUES `+taskValues(len(ts)), args...); err != nil {
		return fmt.Errorf("error inserting tasks: %w", err)
	}
	return nil
}

// taskColumnNames is taskColumns as a list, for COPY.
var taskColumnNames = []string{"id", "tenant_id", "user_id", "status", "model", "store", "request", "secrets", "metadata", "result_token",
	"idempotency_key", "segment", "output", "usage", "error", "authorization_required", "pending_approvals", "created_at", "updated_at",
	"completed_at", "expires_at", "retrying_at", "pending_inputs"}

// CopyTasks is CreateTasks in a pgx transaction (PostgreSQL only): one
// COPY instead of one INSERT of 23 parameters a task, which costs both
// processes much less CPU a task (binary rows, no statement per group
// size to parse and plan).
func (s *Store) CopyTasks(ctx context.Context, tx pgx.Tx, ts []*Task) error {
	if len(ts) == 0 {
		return nil
	}
	now := s.now()
	rows := make([][]any, len(ts))
	for i, t := range ts {
		if t.IdempotencyKey != "" {
			return fmt.Errorf("error inserting tasks: task %s has an idempotency key (use CreateTask)", t.ID)
		}
		s.fillNewTask(t, now)
		rows[i] = []any{
			t.ID, t.TenantID, t.UserID, string(t.Status), t.Model, t.Store, string(t.Request), t.Secrets, string(t.Metadata), t.ResultToken,
			nil, int32(t.Segment), copyRaw(t.Output), copyRaw(t.Usage), copyRaw(t.Error), copyRaw(t.AuthorizationRequired),
			copyRaw(t.PendingApprovals), micros(t.CreatedAt), micros(t.UpdatedAt), copyMicros(t.CompletedAt), copyMicros(t.ExpiresAt),
			copyMicros(t.RetryingAt), copyRaw(t.PendingInputs),
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"mcpidp_task"}, taskColumnNames, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("error inserting tasks: %w", err)
	}
	return nil
}

// copyRaw is a nullable JSON column's COPY value: NULL when empty.
func copyRaw(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

// copyMicros is a nullable time column's COPY value.
func copyMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// fillNewTask sets what a new task gets when its creator left it empty.
func (s *Store) fillNewTask(t *Task, now time.Time) {
	if t.ID == "" {
		t.ID = NewID("task_", now)
	}
	if t.ResultToken == "" {
		t.ResultToken = NewToken()
	}
	if t.Status == "" {
		t.Status = TaskQueued
	}
	if len(t.Metadata) == 0 {
		t.Metadata = json.RawMessage(`{}`)
	}
	t.CreatedAt, t.UpdatedAt = now.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond)
}

// taskColumnCount is the number of columns in taskColumns.
const taskColumnCount = 23

// taskValues is the VALUES list for n rows of taskColumns: ($1, …, $23),
// ($24, …).
func taskValues(n int) string {
	var b strings.Builder
	b.Grow(n * taskColumnCount * 5)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range taskColumnCount {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i*taskColumnCount + j + 1))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// taskArgs appends t's values in taskColumns order.
func taskArgs(args []any, t *Task) []any {
	return append(args,
		t.ID, t.TenantID, t.UserID, t.Status, t.Model, t.Store, string(t.Request), t.Secrets, string(t.Metadata), t.ResultToken,
		nullString(t.IdempotencyKey), t.Segment, nullRaw(t.Output), nullRaw(t.Usage), nullRaw(t.Error), nullRaw(t.AuthorizationRequired),
		nullRaw(t.PendingApprovals), micros(t.CreatedAt), micros(t.UpdatedAt), nullMicros(t.CompletedAt), nullMicros(t.ExpiresAt), nullMicros(t.RetryingAt), nullRaw(t.PendingInputs))
}

func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// GetTask returns the tenant's task, or ErrNotFound (also for another
// tenant's task: tenants cannot tell whether foreign ids exist).
func (s *Store) GetTask(ctx context.Context, q DBTX, tenantID, id string) (*Task, error) {
	return s.getTask(ctx, q, `tenant_id = $1 AND id = $2`, tenantID, id)
}

// GetTaskForUpdate is GetTaskByID with a row lock (PostgreSQL); SQLite's
// immediate transactions already serialize writers.
func (s *Store) GetTaskForUpdate(ctx context.Context, q DBTX, id string) (*Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM mcpidp_task WHERE id = $1`+s.forUpdate(), id))
	return s.taskResult(t, err, id)
}

// GetTaskByID returns a task whatever its tenant; for workers, which act on
// ids from their own job args.
func (s *Store) GetTaskByID(ctx context.Context, q DBTX, id string) (*Task, error) {
	return s.getTask(ctx, q, `id = $1`, id)
}

// GetTaskByResultToken returns the task behind a public result URL. Expired
// tasks are ErrNotFound even before the cleanup job has deleted them.
func (s *Store) GetTaskByResultToken(ctx context.Context, q DBTX, token string) (*Task, error) {
	t, err := s.getTask(ctx, q, `result_token = $1`, token)
	if err != nil {
		return nil, err
	}
	if t.ExpiresAt != nil && !s.now().Before(*t.ExpiresAt) {
		return nil, fmt.Errorf("task result: %w", ErrNotFound)
	}
	return t, nil
}

// GetTaskByIdempotencyKey returns the tenant's task created with key.
func (s *Store) GetTaskByIdempotencyKey(ctx context.Context, q DBTX, tenantID, key string) (*Task, error) {
	return s.getTask(ctx, q, `tenant_id = $1 AND idempotency_key = $2`, tenantID, key)
}

func (s *Store) getTask(ctx context.Context, q DBTX, where string, args ...any) (*Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM mcpidp_task WHERE `+where, args...))
	return s.taskResult(t, err, args[len(args)-1])
}

func (s *Store) taskResult(t *Task, err error, key any) (*Task, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("task: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading task: %w", err)
	}
	if t.ExpiresAt != nil && !s.now().Before(*t.ExpiresAt) {
		return nil, fmt.Errorf("task: %w", ErrNotFound)
	}
	_ = key
	return t, nil
}

// ListTasksParams filters and pages ListTasks. Pages go newest first; After
// is the id of the last task of the previous page.
type ListTasksParams struct {
	TenantID string
	UserID   string
	Status   TaskStatus
	After    string
	Limit    int
}

// ListTasks returns up to Limit tasks and whether more follow.
func (s *Store) ListTasks(ctx context.Context, q DBTX, p ListTasksParams) ([]*Task, bool, error) {
	where := []string{`tenant_id = $1`, `(expires_at IS NULL OR expires_at > $2)`}
	args := []any{p.TenantID, micros(s.now())}
	if p.UserID != "" {
		args = append(args, p.UserID)
		where = append(where, fmt.Sprintf(`user_id = $%d`, len(args)))
	}
	if p.Status != "" {
		args = append(args, string(p.Status))
		where = append(where, fmt.Sprintf(`status = $%d`, len(args)))
	}
	if p.After != "" {
		args = append(args, p.After)
		where = append(where, fmt.Sprintf(`id < $%d`, len(args)))
	}
	args = append(args, p.Limit+1)
	rows, err := q.QueryContext(ctx, `SELECT `+taskColumns+` FROM mcpidp_task WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("error listing tasks: %w", err)
	}
	defer rows.Close()
	var out []*Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, false, fmt.Errorf("error listing tasks: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("error listing tasks: %w", err)
	}
	more := len(out) > p.Limit
	if more {
		out = out[:p.Limit]
	}
	return out, more, nil
}

// TransitionTask moves a task from one of the given statuses to status `to`
// and reports whether it did. The guard makes concurrent transitions (a
// cancel racing a completion, a duplicate OAuth callback) no-ops.
func (s *Store) TransitionTask(ctx context.Context, q DBTX, id string, from []TaskStatus, to TaskStatus) (bool, error) {
	args := []any{id, string(to), micros(s.now())}
	marks := make([]string, len(from))
	for i, f := range from {
		args = append(args, string(f))
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET status = $2, updated_at = $3 WHERE id = $1 AND status IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return false, fmt.Errorf("error updating task %s to %s: %w", id, to, err)
	}
	return n == 1, nil
}

// FinishParams is the outcome written by FinishTask.
type FinishParams struct {
	Status TaskStatus // completed, failed or canceled
	Output json.RawMessage
	Usage  json.RawMessage
	Error  json.RawMessage
	// Retention is how long a task with store=false is kept after it ends.
	Retention time.Duration
	// OnlyFrom, when set, finishes the task only from that status; Segment,
	// when set, only in that segment.
	OnlyFrom TaskStatus
	Segment  *int
}

// FinishTask ends a task that is not yet terminal and reports whether it did.
// Tasks with store=false get expires_at = now + Retention.
func (s *Store) FinishTask(ctx context.Context, q DBTX, id string, p FinishParams) (bool, error) {
	if !p.Status.Terminal() {
		return false, fmt.Errorf("finish task: %s is not a terminal status", p.Status)
	}
	now := s.now()
	segment := -1
	if p.Segment != nil {
		segment = *p.Segment
	}
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET status = $2, output = COALESCE($3, output), usage = COALESCE($4, usage), error = $5,
		authorization_required = NULL, pending_approvals = NULL, pending_inputs = NULL, updated_at = $6, completed_at = $6,
		expires_at = CASE WHEN store THEN NULL ELSE CAST($7 AS BIGINT) END
		WHERE id = $1 AND status NOT IN ('completed', 'failed', 'canceled')
		AND ($8 = '' OR status = $8) AND ($9 < 0 OR segment = $9)`,
		id, string(p.Status), nullRaw(p.Output), nullRaw(p.Usage), nullRaw(p.Error), micros(now), micros(now.Add(p.Retention)),
		string(p.OnlyFrom), segment)
	if err != nil {
		return false, fmt.Errorf("error finishing task %s: %w", id, err)
	}
	return n == 1, nil
}

// SetTaskUsage records the usage summed so far.
func (s *Store) SetTaskUsage(ctx context.Context, q DBTX, id string, usage json.RawMessage) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET usage = $2, updated_at = $3 WHERE id = $1`, id, nullRaw(usage), micros(s.now())); err != nil {
		return fmt.Errorf("error saving task usage: %w", err)
	}
	return nil
}

// DeleteTask removes the tenant's task and its steps.
func (s *Store) DeleteTask(ctx context.Context, q DBTX, tenantID, id string) error {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_task WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("error deleting task: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("task: %w", ErrNotFound)
	}
	return nil
}

// DeleteExpiredTasks removes tasks whose retention has run out. A task whose
// webhooks are still being retried stays (hidden, like every expired task)
// until they end, since its deliveries go with it.
func (s *Store) DeleteExpiredTasks(ctx context.Context, q DBTX) (int, error) {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_task WHERE expires_at IS NOT NULL AND expires_at <= $1
		AND NOT EXISTS (SELECT 1 FROM mcpidp_webhook_delivery d WHERE d.task_id = mcpidp_task.id AND d.status = 'pending')`, micros(s.now()))
	if err != nil {
		return 0, fmt.Errorf("error deleting expired tasks: %w", err)
	}
	return int(n), nil
}

// Step is one recorded step of a task run: a model turn or a tool call.
type Step struct {
	TaskID    string
	Index     int
	Type      string
	Data      json.RawMessage
	CreatedAt time.Time
}

// AppendStep records a step at index idx. The primary key makes recording
// the same step twice fail with ErrConflict, so a step can never be
// duplicated by two runners.
func (s *Store) AppendStep(ctx context.Context, q DBTX, taskID string, idx int, typ string, data json.RawMessage) error {
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task_step (task_id, idx, type, data, created_at) VALUES ($1, $2, $3, $4, $5)`,
		taskID, idx, typ, string(data), micros(s.now()))
	if isUniqueViolation(err) {
		return fmt.Errorf("step %d of task %s: %w", idx, taskID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error saving step %d of task %s: %w", idx, taskID, err)
	}
	return nil
}

// ListSteps returns a task's steps in order.
func (s *Store) ListSteps(ctx context.Context, q DBTX, taskID string) ([]Step, error) {
	rows, err := q.QueryContext(ctx, `SELECT task_id, idx, type, data, created_at FROM mcpidp_task_step WHERE task_id = $1 ORDER BY idx`, taskID)
	if err != nil {
		return nil, fmt.Errorf("error loading steps: %w", err)
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var st Step
		var data string
		var created int64
		if err := rows.Scan(&st.TaskID, &st.Index, &st.Type, &data, &created); err != nil {
			return nil, fmt.Errorf("error loading steps: %w", err)
		}
		st.Data = json.RawMessage(data)
		st.CreatedAt = fromMicros(created)
		out = append(out, st)
	}
	return out, rows.Err()
}

// GetStep returns step idx of a task.
func (s *Store) GetStep(ctx context.Context, q DBTX, taskID string, idx int) (*Step, error) {
	st := Step{}
	var data string
	var created int64
	err := q.QueryRowContext(ctx, `SELECT task_id, idx, type, data, created_at FROM mcpidp_task_step WHERE task_id = $1 AND idx = $2`, taskID, idx).
		Scan(&st.TaskID, &st.Index, &st.Type, &data, &created)
	if isNoRows(err) {
		return nil, fmt.Errorf("step: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading step: %w", err)
	}
	st.Data = json.RawMessage(data)
	st.CreatedAt = fromMicros(created)
	return &st, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
