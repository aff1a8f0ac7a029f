package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Response is one row of mcpidp_response: a stored answer of POST
// /v1/responses. JSON columns are kept raw; their shapes belong to package
// responses. A background response is also a task with the same id, which
// holds its status and result.
type Response struct {
	ID          string
	TenantID    string
	UserID      string
	Background  bool
	Status      string
	Model       string
	Request     json.RawMessage
	Output      json.RawMessage
	Usage       json.RawMessage
	Error       json.RawMessage
	CreatedAt   time.Time
	CompletedAt *time.Time
}

const responseColumns = `id, tenant_id, user_id, background, status, model, request, output, usage, error, created_at, completed_at`

// CreateResponse inserts r, filling CreatedAt when zero. An id that exists
// gives ErrConflict.
func (s *Store) CreateResponse(ctx context.Context, q DBTX, r *Response) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_response (`+responseColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		r.ID, r.TenantID, r.UserID, r.Background, r.Status, r.Model, string(r.Request), nullRaw(r.Output), nullRaw(r.Usage),
		nullRaw(r.Error), micros(r.CreatedAt), nullMicros(r.CompletedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("response %s: %w", r.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error inserting response: %w", err)
	}
	return nil
}

// GetResponse returns the tenant's response, or ErrNotFound (also for
// another tenant's).
func (s *Store) GetResponse(ctx context.Context, q DBTX, tenantID, id string) (*Response, error) {
	var (
		r                     Response
		request               string
		output, usage, errCol sql.NullString
		created               int64
		completed             sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT `+responseColumns+` FROM mcpidp_response WHERE tenant_id = $1 AND id = $2`, tenantID, id).
		Scan(&r.ID, &r.TenantID, &r.UserID, &r.Background, &r.Status, &r.Model, &request, &output, &usage, &errCol, &created, &completed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("response %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading response: %w", err)
	}
	r.Request = json.RawMessage(request)
	r.Output, r.Usage, r.Error = rawOrNil(output), rawOrNil(usage), rawOrNil(errCol)
	r.CreatedAt, r.CompletedAt = fromMicros(created), timePtr(completed)
	return &r, nil
}

// DeleteResponse removes the tenant's response row, or gives ErrNotFound.
// A background response's task is deleted by the task service.
func (s *Store) DeleteResponse(ctx context.Context, q DBTX, tenantID, id string) error {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_response WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("error deleting response: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("response %s: %w", id, ErrNotFound)
	}
	return nil
}
