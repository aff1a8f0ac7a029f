package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// pausedList is pausedStatuses as SQL literals, for IN (…).
var pausedList = func() string {
	q := make([]string, len(pausedStatuses))
	for i, s := range pausedStatuses {
		q[i] = "'" + string(s) + "'"
	}
	return strings.Join(q, ", ")
}()

// Approval is one tool call a task holds back until a person approves or
// denies it (mcpidp_task_approval).
type Approval struct {
	ID      string
	TaskID  string
	Segment int // the segment the task resumes in
	// Turn is the step index of the model turn that asked for the call.
	Turn       int
	ToolCallID string
	ServerURL  string
	Tool       string
	Arguments  json.RawMessage
	// TokenHash is HashKey of the approve link's token.
	TokenHash string
	CreatedAt time.Time
	ExpiresAt time.Time
	// DecidedAt is set once, when a person approved or denied.
	DecidedAt *time.Time
	Approved  bool
	Reason    string
}

const approvalColumns = `id, task_id, segment, turn, tool_call_id, server_url, tool, arguments, token_hash, created_at, expires_at, decided_at, approved, reason`

func scanApproval(row interface{ Scan(...any) error }) (*Approval, error) {
	var a Approval
	var args string
	var created, expires int64
	var decided sql.NullInt64
	if err := row.Scan(&a.ID, &a.TaskID, &a.Segment, &a.Turn, &a.ToolCallID, &a.ServerURL, &a.Tool, &args, &a.TokenHash,
		&created, &expires, &decided, &a.Approved, &a.Reason); err != nil {
		if isNoRows(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("error reading approval: %w", err)
	}
	a.Arguments = json.RawMessage(args)
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = fromMicros(created), fromMicros(expires), timePtr(decided)
	return &a, nil
}

// InsertApprovals records the tool calls a pausing task holds back.
func (s *Store) InsertApprovals(ctx context.Context, q DBTX, approvals []Approval) error {
	now := micros(s.now())
	for _, a := range approvals {
		if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task_approval (id, task_id, segment, turn, tool_call_id, server_url, tool, arguments, token_hash, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, a.ID, a.TaskID, a.Segment, a.Turn, a.ToolCallID, a.ServerURL, a.Tool, string(a.Arguments),
			a.TokenHash, now, micros(a.ExpiresAt)); err != nil {
			return fmt.Errorf("error recording approval of task %s: %w", a.TaskID, err)
		}
	}
	return nil
}

// ToolCallApproval returns the approval asked for a task's tool call (of
// the model turn at step index turn), or ErrNotFound when none was asked.
func (s *Store) ToolCallApproval(ctx context.Context, q DBTX, taskID string, turn int, toolCallID string) (*Approval, error) {
	return scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM mcpidp_task_approval WHERE task_id = $1 AND turn = $2 AND tool_call_id = $3`,
		taskID, turn, toolCallID))
}

// GetApproval returns one of a task's approvals, or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, q DBTX, taskID, id string) (*Approval, error) {
	return scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM mcpidp_task_approval WHERE task_id = $1 AND id = $2`, taskID, id))
}

// ApprovalByTokenHash returns the approval whose link token hashes to
// hash, or ErrNotFound.
func (s *Store) ApprovalByTokenHash(ctx context.Context, q DBTX, hash string) (*Approval, error) {
	return scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM mcpidp_task_approval WHERE token_hash = $1`, hash))
}

// DecideApproval records a person's decision once: it reports false when
// the approval was already decided (or does not exist).
func (s *Store) DecideApproval(ctx context.Context, q DBTX, id string, approved bool, reason string) (bool, error) {
	n, err := execCount(ctx, q, `UPDATE mcpidp_task_approval SET decided_at = $2, approved = $3, reason = $4
		WHERE id = $1 AND decided_at IS NULL`, id, micros(s.now()), approved, reason)
	if err != nil {
		return false, fmt.Errorf("error deciding approval %s: %w", id, err)
	}
	return n == 1, nil
}

// UndecidedApprovals counts a task's approvals nobody has decided yet.
func (s *Store) UndecidedApprovals(ctx context.Context, q DBTX, taskID string) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mcpidp_task_approval WHERE task_id = $1 AND decided_at IS NULL`,
		taskID).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting approvals of task %s: %w", taskID, err)
	}
	return n, nil
}

// UndecidedTaskApprovals lists a task's approvals nobody has decided yet.
func (s *Store) UndecidedTaskApprovals(ctx context.Context, q DBTX, taskID string) ([]Approval, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+approvalColumns+` FROM mcpidp_task_approval WHERE task_id = $1 AND decided_at IS NULL ORDER BY id`, taskID)
	if err != nil {
		return nil, fmt.Errorf("error listing approvals of task %s: %w", taskID, err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// SetPendingApprovals replaces the pending_approvals list a waiting task
// shows.
func (s *Store) SetPendingApprovals(ctx context.Context, q DBTX, taskID string, pending json.RawMessage) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET pending_approvals = $2, updated_at = $3 WHERE id = $1`, taskID, nullRaw(pending), micros(s.now())); err != nil {
		return fmt.Errorf("error saving pending approvals of task %s: %w", taskID, err)
	}
	return nil
}
