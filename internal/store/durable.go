package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ModelRetry is a task's current streak of transient model failures.
type ModelRetry struct {
	// Since is the first failure of the streak; zero when there is none.
	Since time.Time
	// Retries is how many tries of the streak have failed so far.
	Retries int
}

// GetModelRetry returns the task's streak of model failures.
func (s *Store) GetModelRetry(ctx context.Context, q DBTX, taskID string) (ModelRetry, error) {
	var since sql.NullInt64
	var r ModelRetry
	err := q.QueryRowContext(ctx, `SELECT model_retry_since, model_retries FROM mcpidp_task WHERE id = $1`, taskID).Scan(&since, &r.Retries)
	if errors.Is(err, sql.ErrNoRows) {
		return ModelRetry{}, fmt.Errorf("task: %w", ErrNotFound)
	}
	if err != nil {
		return ModelRetry{}, fmt.Errorf("error loading model retry of task %s: %w", taskID, err)
	}
	if since.Valid {
		r.Since = fromMicros(since.Int64)
	}
	return r, nil
}

// ScheduleModelRetry saves the streak and when the next try is due, but only
// while the task still runs that segment; it reports whether it did.
func (s *Store) ScheduleModelRetry(ctx context.Context, q DBTX, taskID string, segment int, r ModelRetry, at time.Time) (bool, error) {
	n, err := execCount(ctx, q, `UPDATE mcpidp_task SET model_retry_since = $3, model_retries = $4, retrying_at = $5, updated_at = $6
		WHERE id = $1 AND segment = $2 AND status = 'running'`,
		taskID, segment, micros(r.Since), r.Retries, micros(at), micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("error scheduling model retry of task %s: %w", taskID, err)
	}
	return n == 1, nil
}

// ClearRetryingAt says the task is trying its model again (the streak goes on
// until the model answers).
func (s *Store) ClearRetryingAt(ctx context.Context, q DBTX, taskID string) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET retrying_at = NULL, updated_at = $2 WHERE id = $1 AND retrying_at IS NOT NULL`,
		taskID, micros(s.now())); err != nil {
		return fmt.Errorf("error clearing retry time of task %s: %w", taskID, err)
	}
	return nil
}

// ResetModelRetry ends the task's streak of model failures: the model answered.
func (s *Store) ResetModelRetry(ctx context.Context, q DBTX, taskID string) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_task SET model_retry_since = NULL, model_retries = 0, retrying_at = NULL
		WHERE id = $1 AND (model_retry_since IS NOT NULL OR retrying_at IS NOT NULL)`, taskID); err != nil {
		return fmt.Errorf("error resetting model retry of task %s: %w", taskID, err)
	}
	return nil
}

// MarkToolCall records that the tool call whose result will be step idx is
// about to be sent. It reports whether the call was already marked: an
// earlier run sent it and stopped before recording its result, so the call
// may or may not have run.
func (s *Store) MarkToolCall(ctx context.Context, q DBTX, taskID string, idx int, toolCallID string) (alreadyMarked bool, err error) {
	n, err := execCount(ctx, q, `INSERT INTO mcpidp_tool_call (task_id, idx, tool_call_id, started_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (task_id, idx) DO NOTHING`, taskID, idx, toolCallID, micros(s.now()))
	if err != nil {
		return false, fmt.Errorf("error marking tool call %d of task %s: %w", idx, taskID, err)
	}
	return n == 0, nil
}

// UnmarkToolCall forgets the mark of a call the server refused before
// running it (an authorization challenge), so that the call is sent normally
// once the user has logged in.
func (s *Store) UnmarkToolCall(ctx context.Context, q DBTX, taskID string, idx int) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM mcpidp_tool_call WHERE task_id = $1 AND idx = $2`, taskID, idx); err != nil {
		return fmt.Errorf("error unmarking tool call %d of task %s: %w", idx, taskID, err)
	}
	return nil
}

// OrphanedTasks returns up to limit running tasks whose River job will
// never run again: River gave up on it (discarded: its worker died during
// its last attempt, so nobody ended the task), an operator cancelled it, or
// it is gone.
func (s *Store) OrphanedTasks(ctx context.Context, q DBTX, limit int) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT t.id FROM mcpidp_task t LEFT JOIN river_job j ON j.id = t.run_job_id
		WHERE t.status IN ('running', 'awaiting_input') AND t.run_job_id IS NOT NULL AND (j.id IS NULL OR j.state IN ('discarded', 'cancelled'))
		ORDER BY t.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("error finding orphaned tasks: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("error finding orphaned tasks: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
