package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/taskview"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/worker"
)

// CreateTask validates the request, writes the task row and inserts its
// River job in one transaction. The bool tells whether the task is new (an
// Idempotency-Key can return an earlier one).
func (a *API) CreateTask(ctx context.Context, tenant, idempotencyKey, upstreamAuth string, body []byte) (*taskview.TaskObject, bool, error) {
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
	st := a.cfg.Store
	if idempotencyKey != "" {
		if t, err := st.GetTaskByIdempotencyKey(ctx, st.DB(), tenant, idempotencyKey); err == nil {
			return taskview.Build(t, nil, a.cfg.PublicURL), false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
	}
	reqJSON, err := json.Marshal(req.Request)
	if err != nil {
		return nil, false, fmt.Errorf("error encoding task request: %w", err)
	}
	task := &store.Task{
		ID:             store.NewID("task_", st.Now()),
		TenantID:       tenant,
		UserID:         req.User,
		Model:          req.Model,
		Store:          req.Store,
		Request:        reqJSON,
		Metadata:       req.Metadata,
		IdempotencyKey: idempotencyKey,
	}
	task.Secrets, err = worker.SealSecrets(a.cfg.Keyring, task.ID, &taskview.TaskSecrets{Headers: req.Headers, ConnectURLs: req.ConnectURLs, UpstreamAuthorization: upstreamAuth})
	if err != nil {
		return nil, false, err
	}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		if err := st.CreateTask(ctx, tx, task); err != nil {
			return err
		}
		if _, err := a.cfg.River.InsertTx(ctx, tx, worker.TaskRunArgs{TaskID: task.ID}, nil); err != nil {
			return fmt.Errorf("error queueing task: %w", err)
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) && idempotencyKey != "" {
		// Lost a race with the same key: answer with the winner.
		t, err := st.GetTaskByIdempotencyKey(ctx, st.DB(), tenant, idempotencyKey)
		if err != nil {
			return nil, false, err
		}
		return taskview.Build(t, nil, a.cfg.PublicURL), false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return taskview.Build(task, []store.Step{}, a.cfg.PublicURL), true, nil
}

// GetTask returns the tenant's task with its steps.
func (a *API) GetTask(ctx context.Context, tenant, id string) (*taskview.TaskObject, error) {
	st := a.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(id))
	}
	if err != nil {
		return nil, err
	}
	steps, err := st.ListSteps(ctx, st.DB(), t.ID)
	if err != nil {
		return nil, err
	}
	return taskview.Build(t, steps, a.cfg.PublicURL), nil
}

// TaskList is a page of tasks, newest first.
type TaskList struct {
	Object  string                 `json:"object"`
	Data    []*taskview.TaskObject `json:"data"`
	FirstID string                 `json:"first_id,omitempty"`
	LastID  string                 `json:"last_id,omitempty"`
	HasMore bool                   `json:"has_more"`
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
	out := &TaskList{Object: "list", Data: make([]*taskview.TaskObject, len(tasks)), HasMore: more}
	for i, t := range tasks {
		out.Data[i] = taskview.Build(t, nil, a.cfg.PublicURL)
	}
	if len(tasks) > 0 {
		out.FirstID, out.LastID = tasks[0].ID, tasks[len(tasks)-1].ID
	}
	return out, nil
}

// CancelTask cancels a task that has not ended. A running segment notices
// within its cancel-poll interval and stops before its next step.
func (a *API) CancelTask(ctx context.Context, tenant, id string) (*taskview.TaskObject, error) {
	st := a.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(id))
	}
	if err != nil {
		return nil, err
	}
	var ok bool
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err = st.FinishTask(ctx, tx, t.ID, store.FinishParams{Status: store.TaskCanceled, Retention: a.cfg.Retention})
		if err != nil || !ok {
			return err
		}
		return worker.EndTx(ctx, tx, a.cfg.River, st, a.cfg.PublicURL, t.ID, worker.EventCanceled)
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		t, err = st.GetTask(ctx, st.DB(), tenant, id)
		if err != nil {
			return nil, err
		}
		return nil, &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "task_not_cancelable",
			Message: fmt.Sprintf("task %s is already %s", id, t.Status)}
	}
	return a.GetTask(ctx, tenant, id)
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
	st := a.cfg.Store
	err := st.InTx(ctx, func(tx *sql.Tx) error {
		// A parked continuation would otherwise stay in River forever.
		if parked, err := st.ContinuationJob(ctx, tx, id); err == nil && parked != 0 {
			if _, err := st.GetTask(ctx, tx, tenant, id); err == nil {
				if _, err := a.cfg.River.JobDeleteTx(ctx, tx, parked); err != nil && !errors.Is(err, river.ErrNotFound) && !errors.Is(err, rivertype.ErrJobRunning) {
					return err
				}
			}
		}
		return st.DeleteTask(ctx, tx, tenant, id)
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("task " + strconv.Quote(id))
		}
		return nil, err
	}
	return &Deleted{ID: id, Object: "task.deleted", Deleted: true}, nil
}
