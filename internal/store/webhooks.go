package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WebhookStatus is the state of a webhook delivery.
type WebhookStatus string

const (
	// WebhookPending: not delivered yet, an attempt is scheduled.
	WebhookPending WebhookStatus = "pending"
	// WebhookDelivered: the receiver answered 2xx.
	WebhookDelivered WebhookStatus = "delivered"
	// WebhookFailed: a permanent failure, or retries ran out.
	WebhookFailed WebhookStatus = "failed"
)

// WebhookDelivery is one message to one URL (mcpidp_webhook_delivery).
type WebhookDelivery struct {
	ID       string
	TenantID string
	// TaskID is empty for events that are not about a task.
	TaskID string
	Type   string
	URL    string
	// WebhookID is the Standard Webhooks message id, the same on every
	// attempt.
	WebhookID string
	// Body is the exact JSON sent on every attempt.
	Body         []byte
	Status       WebhookStatus
	AttemptCount int
	// NextAttemptAt is the earliest time of the next attempt; nil once the
	// delivery has ended.
	NextAttemptAt *time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   *time.Time
	// Attempts is filled by ListWebhookDeliveries only.
	Attempts []WebhookAttempt
}

// WebhookAttempt is one HTTP attempt of a delivery (mcpidp_webhook_attempt).
type WebhookAttempt struct {
	DeliveryID string
	// Attempt counts from 1; RecordWebhookAttempt assigns it.
	Attempt   int
	StartedAt time.Time
	// StatusCode is 0 when no response came.
	StatusCode   int
	LatencyMS    int64
	Error        string
	ResponseBody string
}

// WebhookOutcome is what an attempt leaves the delivery in.
type WebhookOutcome struct {
	Status WebhookStatus
	// NextAttemptAt is when to try again; only for WebhookPending.
	NextAttemptAt *time.Time
}

const webhookDeliveryColumns = `id, tenant_id, task_id, type, url, webhook_id, body, status, attempt_count, next_attempt_at,
	last_error, created_at, updated_at, completed_at`

func scanWebhookDelivery(row interface{ Scan(...any) error }) (*WebhookDelivery, error) {
	var (
		d                      WebhookDelivery
		taskID                 sql.NullString
		body                   string
		created, updated       int64
		nextAttempt, completed sql.NullInt64
	)
	if err := row.Scan(&d.ID, &d.TenantID, &taskID, &d.Type, &d.URL, &d.WebhookID, &body, &d.Status, &d.AttemptCount,
		&nextAttempt, &d.LastError, &created, &updated, &completed); err != nil {
		return nil, err
	}
	d.TaskID = taskID.String
	d.Body = []byte(body)
	d.NextAttemptAt = timePtr(nextAttempt)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updated)
	d.CompletedAt = timePtr(completed)
	return &d, nil
}

// CreateWebhookDelivery inserts a pending delivery, filling ID, WebhookID
// and times when empty. Run it in the transaction of the state change the
// delivery announces, together with its River job.
func (s *Store) CreateWebhookDelivery(ctx context.Context, q DBTX, d *WebhookDelivery) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	if d.ID == "" {
		d.ID = NewID("whd_", now)
	}
	if d.WebhookID == "" {
		d.WebhookID = NewID("msg_", now)
	}
	d.Status = WebhookPending
	d.AttemptCount = 0
	d.CreatedAt, d.UpdatedAt = now, now
	d.NextAttemptAt = &now
	d.CompletedAt = nil
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_webhook_delivery (`+webhookDeliveryColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		d.ID, d.TenantID, nullString(d.TaskID), d.Type, d.URL, d.WebhookID, string(d.Body), d.Status, 0,
		micros(now), d.LastError, micros(now), micros(now), nil)
	if isUniqueViolation(err) {
		return fmt.Errorf("webhook delivery %q: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("error inserting webhook delivery: %w", err)
	}
	return nil
}

// GetWebhookDelivery returns a delivery by id, whatever its tenant (for the
// delivery worker, which acts on ids from its job args), without attempts.
func (s *Store) GetWebhookDelivery(ctx context.Context, q DBTX, id string) (*WebhookDelivery, error) {
	d, err := scanWebhookDelivery(q.QueryRowContext(ctx, `SELECT `+webhookDeliveryColumns+` FROM mcpidp_webhook_delivery WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("webhook delivery %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading webhook delivery %q: %w", id, err)
	}
	return d, nil
}

// RecordWebhookAttempt numbers and stores one attempt of a pending delivery
// and moves the delivery to outcome, returning the attempt number. Run it in
// a transaction. A delivery that is gone or no longer pending gives
// ErrNotFound and records nothing: somebody else has ended it.
func (s *Store) RecordWebhookAttempt(ctx context.Context, q DBTX, a *WebhookAttempt, outcome WebhookOutcome) (int, error) {
	switch outcome.Status {
	case WebhookPending, WebhookDelivered, WebhookFailed:
	default:
		return 0, fmt.Errorf("unknown webhook delivery status %q", outcome.Status)
	}
	now := micros(s.now())
	next := sql.NullInt64{}
	completed := sql.NullInt64{}
	if outcome.Status == WebhookPending {
		if outcome.NextAttemptAt == nil {
			return 0, errors.New("a pending webhook delivery needs the time of its next attempt")
		}
		next = nullMicros(outcome.NextAttemptAt)
	} else {
		completed = sql.NullInt64{Int64: now, Valid: true}
	}
	var attempt int
	err := q.QueryRowContext(ctx, `UPDATE mcpidp_webhook_delivery
		SET attempt_count = attempt_count + 1, status = $2, next_attempt_at = $3, last_error = $4, updated_at = $5, completed_at = $6
		WHERE id = $1 AND status = 'pending'
		RETURNING attempt_count`,
		a.DeliveryID, outcome.Status, next, cleanText(a.Error), now, completed).Scan(&attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("pending webhook delivery %q: %w", a.DeliveryID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("error updating webhook delivery %q: %w", a.DeliveryID, err)
	}
	a.Attempt = attempt
	var status sql.NullInt64
	if a.StatusCode != 0 {
		status = sql.NullInt64{Int64: int64(a.StatusCode), Valid: true}
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_webhook_attempt (delivery_id, attempt, started_at, status_code, latency_ms, error, response_body)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.DeliveryID, attempt, micros(a.StartedAt), status, a.LatencyMS, cleanText(a.Error), cleanText(a.ResponseBody)); err != nil {
		return 0, fmt.Errorf("error recording attempt %d of webhook delivery %q: %w", attempt, a.DeliveryID, err)
	}
	return attempt, nil
}

// ListWebhookDeliveries returns the deliveries about one of the tenant's
// tasks, oldest first, each with its attempts in order. Oldest by
// created_at (microseconds): ids are ordered by millisecond only, and two
// events of a task (a pause and its cancel) may share one.
func (s *Store) ListWebhookDeliveries(ctx context.Context, q DBTX, tenantID, taskID string) ([]*WebhookDelivery, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+webhookDeliveryColumns+` FROM mcpidp_webhook_delivery
		WHERE tenant_id = $1 AND task_id = $2 ORDER BY created_at, id`, tenantID, taskID)
	if err != nil {
		return nil, fmt.Errorf("error listing webhook deliveries: %w", err)
	}
	defer rows.Close()
	out := []*WebhookDelivery{}
	byID := map[string]*WebhookDelivery{}
	for rows.Next() {
		d, err := scanWebhookDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("error listing webhook deliveries: %w", err)
		}
		d.Attempts = []WebhookAttempt{}
		out = append(out, d)
		byID[d.ID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error listing webhook deliveries: %w", err)
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}

	attempts, err := q.QueryContext(ctx, `SELECT a.delivery_id, a.attempt, a.started_at, a.status_code, a.latency_ms, a.error, a.response_body
		FROM mcpidp_webhook_attempt a JOIN mcpidp_webhook_delivery d ON d.id = a.delivery_id
		WHERE d.tenant_id = $1 AND d.task_id = $2 ORDER BY a.delivery_id, a.attempt`, tenantID, taskID)
	if err != nil {
		return nil, fmt.Errorf("error listing webhook attempts: %w", err)
	}
	defer attempts.Close()
	for attempts.Next() {
		a, err := scanWebhookAttempt(attempts)
		if err != nil {
			return nil, fmt.Errorf("error listing webhook attempts: %w", err)
		}
		if d := byID[a.DeliveryID]; d != nil {
			d.Attempts = append(d.Attempts, *a)
		}
	}
	if err := attempts.Err(); err != nil {
		return nil, fmt.Errorf("error listing webhook attempts: %w", err)
	}
	return out, nil
}

// ListWebhookAttempts returns a delivery's attempts in order.
func (s *Store) ListWebhookAttempts(ctx context.Context, q DBTX, deliveryID string) ([]WebhookAttempt, error) {
	rows, err := q.QueryContext(ctx, `SELECT delivery_id, attempt, started_at, status_code, latency_ms, error, response_body
		FROM mcpidp_webhook_attempt WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("error listing webhook attempts: %w", err)
	}
	defer rows.Close()
	out := []WebhookAttempt{}
	for rows.Next() {
		a, err := scanWebhookAttempt(rows)
		if err != nil {
			return nil, fmt.Errorf("error listing webhook attempts: %w", err)
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error listing webhook attempts: %w", err)
	}
	return out, nil
}

func scanWebhookAttempt(row interface{ Scan(...any) error }) (*WebhookAttempt, error) {
	var (
		a       WebhookAttempt
		started int64
		status  sql.NullInt64
	)
	if err := row.Scan(&a.DeliveryID, &a.Attempt, &started, &status, &a.LatencyMS, &a.Error, &a.ResponseBody); err != nil {
		return nil, err
	}
	a.StartedAt = fromMicros(started)
	a.StatusCode = int(status.Int64)
	return &a, nil
}

// DeleteFinishedWebhookDeliveries removes deliveries that ended before
// before, with their attempts, and returns how many. Deliveries of a task
// also go with the task; this is for the others (connection events) and
// for tasks kept long. Meant for the periodic cleanup job.
func (s *Store) DeleteFinishedWebhookDeliveries(ctx context.Context, q DBTX, before time.Time) (int, error) {
	n, err := execCount(ctx, q, `DELETE FROM mcpidp_webhook_delivery WHERE completed_at IS NOT NULL AND completed_at < $1 AND status <> $2`,
		micros(before), string(WebhookPending))
	if err != nil {
		return 0, fmt.Errorf("error deleting finished webhook deliveries: %w", err)
	}
	return int(n), nil
}

// cleanText makes s storable in a TEXT column of both dialects: valid
// UTF-8 without NUL bytes, which PostgreSQL refuses.
func cleanText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}
