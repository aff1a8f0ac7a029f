package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// CreateTaskRequest is POST /v1/tasks.
type CreateTaskRequest struct {
	Tenant         string
	IdempotencyKey string
	// UpstreamAuthorization is the caller's own model key, if it sent one.
	UpstreamAuthorization string
	Body                  []byte
}

func (r *CreateTaskRequest) bind(c *gin.Context) error {
	r.Tenant = tenantOf(c)
	r.IdempotencyKey = c.GetHeader("Idempotency-Key")
	r.UpstreamAuthorization = bearer.Key(c.GetHeader("X-Upstream-Authorization"))
	var err error
	r.Body, err = readBody(c)
	return err
}

// CreatedTask is the answer to POST /v1/tasks: the task, 202, and
// Idempotent-Replayed when an Idempotency-Key returned an earlier task.
type CreatedTask struct {
	Task     *task.Object
	Replayed bool
}

// MarshalJSON writes the task object alone.
func (r *CreatedTask) MarshalJSON() ([]byte, error) { return json.Marshal(r.Task) }

func (r *CreatedTask) statusCode() int { return http.StatusAccepted }

func (r *CreatedTask) setHeaders(h http.Header) {
	if r.Replayed {
		h.Set("Idempotent-Replayed", "true")
	}
}

// CreateTask validates the request and has task.Service create the task
// (its row and its River job, in one transaction).
func (a *API) CreateTask(ctx context.Context, r *CreateTaskRequest) (*CreatedTask, error) {
	if len(r.IdempotencyKey) > 255 {
		return nil, invalid("Idempotency-Key", "Idempotency-Key is longer than 255 characters")
	}
	if err := chatreq.CheckText("Idempotency-Key", r.IdempotencyKey); err != nil {
		return nil, err
	}
	req, err := parseCreateTask(r.Body, a.cfg.Limits)
	if err != nil {
		return nil, err
	}
	o, created, err := a.cfg.Tasks.Create(ctx, task.CreateParams{
		Tenant: r.Tenant, IdempotencyKey: r.IdempotencyKey, User: req.User, Model: req.Model, Store: req.Store, Metadata: req.Metadata,
		Request: req.Request,
		Secrets: task.Secrets{Headers: req.Headers, ConnectURLs: req.ConnectURLs, UpstreamAuthorization: r.UpstreamAuthorization},
	})
	if err != nil {
		return nil, err
	}
	return &CreatedTask{Task: o, Replayed: !created}, nil
}

// TaskRef names one of the tenant's tasks by the route's :id (GET, cancel,
// DELETE /v1/tasks/{id}).
type TaskRef struct {
	Tenant string
	ID     string
}

func (r *TaskRef) bind(c *gin.Context) error {
	r.Tenant, r.ID = tenantOf(c), c.Param("id")
	return nil
}

// GetTask returns the tenant's task with its steps.
func (a *API) GetTask(ctx context.Context, r *TaskRef) (*task.Object, error) {
	o, err := a.cfg.Tasks.Get(ctx, task.GetParams{Tenant: r.Tenant, ID: r.ID})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(r.ID))
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

// ListTasksRequest is GET /v1/tasks: its query parameters, as sent.
type ListTasksRequest struct {
	Tenant string
	User   string
	Status string
	After  string
	Limit  string
}

func (r *ListTasksRequest) bind(c *gin.Context) error {
	r.Tenant, r.User, r.Status, r.After, r.Limit = tenantOf(c), c.Query("user"), c.Query("status"), c.Query("after"), c.Query("limit")
	return nil
}

// ListTasks pages through the tenant's tasks. Steps are left out of list
// entries; GET /v1/tasks/{id} has them.
func (a *API) ListTasks(ctx context.Context, r *ListTasksRequest) (*TaskList, error) {
	tenant, user, status, after := r.Tenant, r.User, r.Status, r.After
	limit := 20
	if r.Limit != "" {
		n, err := strconv.Atoi(r.Limit)
		if err != nil || n < 1 || n > 100 {
			return nil, invalid("limit", "limit must be a whole number from 1 to 100")
		}
		limit = n
	}
	if status != "" && !store.TaskStatus(status).Valid() {
		return nil, invalid("status", "status must be one of queued, running, awaiting_authorization, awaiting_approval, awaiting_input, completed, failed, canceled")
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
func (a *API) CancelTask(ctx context.Context, r *TaskRef) (*task.Object, error) {
	o, err := a.cfg.Tasks.Cancel(ctx, task.CancelParams{Tenant: r.Tenant, ID: r.ID})
	var ended *task.NotCancelableError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("task " + strconv.Quote(r.ID))
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
func (a *API) DeleteTask(ctx context.Context, r *TaskRef) (*Deleted, error) {
	err := a.cfg.Tasks.Delete(ctx, task.DeleteParams{Tenant: r.Tenant, ID: r.ID})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(r.ID))
	}
	if err != nil {
		return nil, err
	}
	return &Deleted{ID: r.ID, Object: "task.deleted", Deleted: true}, nil
}
