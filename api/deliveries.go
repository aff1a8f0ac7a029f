package api

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/mcpidp/mcpidp/internal/store"
)

// DeliveryList is GET /v1/tasks/{id}/deliveries: the webhooks sent about a
// task, oldest first.
type DeliveryList struct {
	Object string            `json:"object"`
	Data   []*DeliveryObject `json:"data"`
}

// DeliveryObject is one webhook delivery and its attempts.
type DeliveryObject struct {
	ID     string              `json:"id"`
	Object string              `json:"object"`
	Type   string              `json:"type"`
	URL    string              `json:"url"`
	Status store.WebhookStatus `json:"status"`
	// WebhookID is the webhook-id header, the same on every attempt.
	WebhookID string    `json:"webhook_id"`
	CreatedAt time.Time `json:"created_at"`
	// NextAttemptAt is when a pending delivery is tried again; null once
	// it has ended.
	NextAttemptAt *time.Time        `json:"next_attempt_at"`
	CompletedAt   *time.Time        `json:"completed_at"`
	Attempts      []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt is one HTTP attempt of a delivery.
type DeliveryAttempt struct {
	Attempt int `json:"attempt"`
	// StatusCode is null when no answer came (network error, timeout,
	// blocked address).
	StatusCode *int    `json:"status_code"`
	LatencyMS  int64   `json:"latency_ms"`
	Error      *string `json:"error"`
	// ResponseBody is at most 1 KiB of the receiver's answer.
	ResponseBody string    `json:"response_body"`
	At           time.Time `json:"at"`
}

// ListDeliveries returns the webhook deliveries of the tenant's task; an
// unknown task or another tenant's is not found.
func (a *API) ListDeliveries(ctx context.Context, r *TaskRef) (*DeliveryList, error) {
	tenant, taskID := r.Tenant, r.ID
	st := a.cfg.Store
	if _, err := st.GetTask(ctx, st.DB(), tenant, taskID); errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(taskID))
	} else if err != nil {
		return nil, err
	}
	deliveries, err := st.ListWebhookDeliveries(ctx, st.DB(), tenant, taskID)
	if err != nil {
		return nil, err
	}
	out := &DeliveryList{Object: "list", Data: make([]*DeliveryObject, len(deliveries))}
	for i, d := range deliveries {
		o := &DeliveryObject{
			ID: d.ID, Object: "webhook_delivery", Type: d.Type, URL: d.URL, Status: d.Status, WebhookID: d.WebhookID,
			CreatedAt: d.CreatedAt, NextAttemptAt: d.NextAttemptAt, CompletedAt: d.CompletedAt,
			Attempts: make([]DeliveryAttempt, len(d.Attempts)),
		}
		if d.Status != store.WebhookPending {
			o.NextAttemptAt = nil
		}
		for j, at := range d.Attempts {
			da := DeliveryAttempt{Attempt: at.Attempt, LatencyMS: at.LatencyMS, ResponseBody: at.ResponseBody, At: at.StartedAt}
			if at.StatusCode != 0 {
				code := at.StatusCode
				da.StatusCode = &code
			}
			if at.Error != "" {
				msg := at.Error
				da.Error = &msg
			}
			o.Attempts[j] = da
		}
		out.Data[i] = o
	}
	return out, nil
}
