package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Input statuses.
const (
	InputPending  = "pending"
	InputAnswered = "answered"
	InputExpired  = "expired"
)

// Input is one row of mcpidp_task_input: what an MCP server asked a task's
// user for, and the answer.
type Input struct {
	ID              string
	TaskID          string
	ServerURL       string
	Mode            string
	Message         string
	RequestedSchema json.RawMessage
	URL             string
	Status          string
	Action          string
	Content         json.RawMessage
	CreatedAt       time.Time
	ExpiresAt       time.Time
	AnsweredAt      *time.Time
}

const inputColumns = `id, task_id, server_url, mode, message, requested_schema, url, status, action, content, created_at, expires_at, answered_at`

// CreateInput inserts in as pending, filling ID and CreatedAt when empty.
func (s *Store) CreateInput(ctx context.Context, q DBTX, in *Input) error {
	if in.CreatedAt.IsZero() {
		in.CreatedAt = s.now()
	}
	if in.ID == "" {
		in.ID = NewID("input_", in.CreatedAt)
	}
	in.Status = InputPending
	if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_task_input (`+inputColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10, NULL)`,
		in.ID, in.TaskID, in.ServerURL, in.Mode, in.Message, nullRaw(in.RequestedSchema), nullString(in.URL), in.Status,
		micros(in.CreatedAt), micros(in.ExpiresAt)); err != nil {
		return fmt.Errorf("error saving input of task %s: %w", in.TaskID, err)
	}
	return nil
}

// GetInput returns the task's input id, ErrNotFound when there is none.
func (s *Store) GetInput(ctx context.Context, q DBTX, taskID, id string) (*Input, error) {
	in, err := scanInput(q.QueryRowContext(ctx, `SELECT `+inputColumns+` FROM mcpidp_task_input WHERE id = $1 AND task_id = $2`, id, taskID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("input %s of task %s: %w", id, taskID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading input %s: %w", id, err)
	}
	return in, nil
}

func scanInput(row interface{ Scan(...any) error }) (*Input, error) {
	var (
		in                     Input
		schema, url, act, cont sql.NullString
		created, expires       int64
		answered               sql.NullInt64
	)
	if err := row.Scan(&in.ID, &in.TaskID, &in.ServerURL, &in.Mode, &in.Message, &schema, &url, &in.Status, &act, &cont, &created, &expires, &answered); err != nil {
		return nil, err
	}
	in.RequestedSchema = rawOrNil(schema)
	in.URL = url.String
	in.Action = act.String
	in.Content = rawOrNil(cont)
	in.CreatedAt = fromMicros(created)
	in.ExpiresAt = fromMicros(expires)
	in.AnsweredAt = timePtr(answered)
	return &in, nil
}

// AnswerInput records the answer to a pending input that has not expired,
// and reports whether it did: an input is answered once.
func (s *Store) AnswerInput(ctx context.Context, q DBTX, taskID, id, action string, content json.RawMessage) (bool, error) {
	now := micros(s.now())
	n, err := execCount(ctx, q, `UPDATE mcpidp_task_input SET status = 'answered', action = $3, content = $4, answered_at = $5
		WHERE id = $1 AND task_id = $2 AND status = 'pending' AND expires_at > $5`, id, taskID, action, nullRaw(content), now)
	if err != nil {
		return false, fmt.Errorf("error answering input %s: %w", id, err)
	}
	return n == 1, nil
}

// ExpireInput ends a pending input unanswered and reports whether it did
// (false: it was answered first).
func (s *Store) ExpireInput(ctx context.Context, q DBTX, taskID, id string) (bool, error) {
	n, err := execCount(ctx, q, `UPDATE mcpidp_task_input SET status = 'expired' WHERE id = $1 AND task_id = $2 AND status = 'pending'`, id, taskID)
	if err != nil {
		return false, fmt.Errorf("error expiring input %s: %w", id, err)
	}
	return n == 1, nil
}

// ExpireTaskInputs ends every pending input of a task: a run that starts
// again has no call left to answer them on.
func (s *Store) ExpireTaskInputs(ctx context.Context, q DBTX, taskID string) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task_input SET status = 'expired' WHERE task_id = $1 AND status = 'pending'`, taskID); err != nil {
		return fmt.Errorf("error expiring inputs of task %s: %w", taskID, err)
	}
	return nil
}

// SetTaskInputs moves a task from status from to status to, with the list of
// pending inputs the task object shows (nil clears it), and reports whether
// the task had status from.
func (s *Store) SetTaskInputs(ctx context.Context, q DBTX, taskID string, from, to TaskStatus, pending json.RawMessage) (bool, error) {
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET status = $3, pending_inputs = $4, updated_at = $5 WHERE id = $1 AND status = $2`,
		taskID, string(from), string(to), nullRaw(pending), micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("error updating inputs of task %s: %w", taskID, err)
	}
	return n == 1, nil
}

// PendingTaskInputs lists a task's inputs that still wait for an answer.
func (s *Store) PendingTaskInputs(ctx context.Context, q DBTX, taskID string) ([]Input, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+inputColumns+` FROM mcpidp_task_input WHERE task_id = $1 AND status = 'pending' ORDER BY id`, taskID)
	if err != nil {
		return nil, fmt.Errorf("error listing inputs of task %s: %w", taskID, err)
	}
	defer rows.Close()
	var out []Input
	for rows.Next() {
		in, err := scanInput(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *in)
	}
	return out, rows.Err()
}

// URLInputAccepted reports whether the task's user said they completed the
// URL serverURL asked them to open (an accepted URL-mode input).
func (s *Store) URLInputAccepted(ctx context.Context, q DBTX, taskID, serverURL, url string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mcpidp_task_input WHERE task_id = $1 AND server_url = $2 AND url = $3
		AND mode = 'url' AND status = 'answered' AND action = 'accept'`, taskID, serverURL, url).Scan(&n); err != nil {
		return false, fmt.Errorf("error reading inputs of task %s: %w", taskID, err)
	}
	return n > 0, nil
}
