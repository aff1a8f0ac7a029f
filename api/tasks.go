package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// CreateTask validates the request and has task.Service create the task
// (its row and its River job, in one transaction). The bool tells whether
// the task is new (an Idempotency-Key can return an earlier one).
func (a *API) CreateTask(ctx context.Context, tenant, idempotencyKey, upstreamAuth string, body []byte) (*task.Object, bool, error) {
	if len(idempotencyKey) > 255 {
		return nil, false, invalid("Idempotency-Key", "Idempotency-Key is longer than 255 characters")
	}
	if err := chatreq.CheckText("Idempotency-Key", idempotencyKey); err != nil {
		return nil, false, err
	}
	req, err := parseCreateTask(body, a.cfg.Limits)
	if err != nil {
		return nil, false, err
	}
	return a.cfg.Tasks.Create(ctx, task.CreateParams{
		Tenant: tenant, IdempotencyKey: idempotencyKey, User: req.User, Model: req.Model, Store: req.Store, Metadata: req.Metadata,
		Request: req.Request,
		Secrets: task.Secrets{Headers: req.Headers, ConnectURLs: req.ConnectURLs, UpstreamAuthorization: upstreamAuth},
	})
}

// GetTask returns the tenant's task with its steps.
func (a *API) GetTask(ctx context.Context, tenant, id string) (*task.Object, error) {
	o, err := a.cfg.Tasks.Get(ctx, task.GetParams{Tenant: tenant, ID: id})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(id))
	}
	return o, err
}

// TaskList is a page of tasks, newest first.
type TaskList struct {
	Object  string         `json:"object"`
	Data    []*task.Object `json:"data"`
	FirstID string         `json:"first_id,omitempty"`
	LastID  string         `json:"last_id,omitempty"`
	HasMore bool           `json:"has_more"`
}

// ListTasks pages through the tenant's tasks. Steps are left out of list
// entries; GET /v1/tasks/{id} has them.
func (a *API) ListTasks(ctx context.Context, tenant, user, status, after, limitStr string) (*TaskList, error) {
	limit := 20
	if limitStr != "" {
		n, err := strconv.Atoi(limitStr)
		if err != nil || n < 1 || n > 100 {
			return nil, invalid("limit", "limit must be a whole number from 1 to 100")
		}
		limit = n
	}
	if status != "" && !store.TaskStatus(status).Valid() {
		return nil, invalid("status", "status must be one of queued, running, awaiting_authorization, completed, failed, canceled")
	}
	st := a.cfg.Store
	tasks, more, err := st.ListTasks(ctx, st.DB(), store.ListTasksParams{TenantID: tenant, UserID: user, Status: store.TaskStatus(status), After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := &TaskList{Object: "list", Data: make([]*task.Object, len(tasks)), HasMore: more}
	for i, t := range tasks {
		out.Data[i] = task.Build(t, nil, a.cfg.PublicURL)
	}
	if len(tasks) > 0 {
		out.FirstID, out.LastID = tasks[0].ID, tasks[len(tasks)-1].ID
	}
	return out, nil
}

// CancelTask cancels a task that has not ended. A running segment notices
// within its cancel-poll interval and stops before its next step.
func (a *API) CancelTask(ctx context.Context, tenant, id string) (*task.Object, error) {
	o, err := a.cfg.Tasks.Cancel(ctx, task.CancelParams{Tenant: tenant, ID: id})
	var ended *task.NotCancelableError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("task " + strconv.Quote(id))
	case errors.As(err, &ended):
		return nil, &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "task_not_cancelable", Message: ended.Error()}
	}
	return o, err
}

// Deleted is the answer to DELETE.
type Deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// DeleteTask removes a task, its steps and its result URLs. A running
// segment stops at its next step.
func (a *API) DeleteTask(ctx context.Context, tenant, id string) (*Deleted, error) {
	err := a.cfg.Tasks.Delete(ctx, task.DeleteParams{Tenant: tenant, ID: id})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(id))
	}
	if err != nil {
		return nil, err
	}
	return &Deleted{ID: id, Object: "task.deleted", Deleted: true}, nil
}
