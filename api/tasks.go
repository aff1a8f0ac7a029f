package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/worker"
)

// TaskObject is the task as the API shows it (DESIGN §4.1).
type TaskObject struct {
	ID                    string             `json:"id"`
	Object                string             `json:"object"`
	Status                store.TaskStatus   `json:"status"`
	User                  string             `json:"user"`
	Model                 string             `json:"model"`
	Store                 bool               `json:"store"`
	Metadata              json.RawMessage    `json:"metadata"`
	CreatedAt             time.Time          `json:"created_at"`
	UpdatedAt             time.Time          `json:"updated_at"`
	CompletedAt           *time.Time         `json:"completed_at"`
	ExpiresAt             *time.Time         `json:"expires_at"`
	ResultURLs            ResultURLs         `json:"result_urls"`
	AuthorizationRequired json.RawMessage    `json:"authorization_required"`
	Steps                 []agentloop.Step   `json:"steps,omitempty"`
	Output                *worker.TaskOutput `json:"output"`
	Usage                 json.RawMessage    `json:"usage"`
	Error                 *worker.TaskError  `json:"error"`

	initial []json.RawMessage // the conversation the task started from, for markdown
}

// ResultURLs are the public, unauthenticated result links.
type ResultURLs struct {
	Markdown string `json:"markdown"`
	JSON     string `json:"json"`
}

func (a *API) taskObject(t *store.Task, steps []store.Step) *TaskObject {
	o := &TaskObject{
		ID: t.ID, Object: "task", Status: t.Status, User: t.UserID, Model: t.Model, Store: t.Store,
		Metadata: t.Metadata, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, CompletedAt: t.CompletedAt, ExpiresAt: t.ExpiresAt,
		ResultURLs: ResultURLs{
			Markdown: a.cfg.PublicURL + "/r/" + t.ResultToken + ".md",
			JSON:     a.cfg.PublicURL + "/r/" + t.ResultToken + ".json",
		},
		AuthorizationRequired: t.AuthorizationRequired,
		Usage:                 t.Usage,
	}
	var req worker.TaskRequest
	if json.Unmarshal(t.Request, &req) == nil {
		o.initial = req.Messages
	}
	if o.AuthorizationRequired == nil {
		o.AuthorizationRequired = json.RawMessage(`[]`)
	}
	if o.Usage == nil {
		o.Usage = json.RawMessage(`{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`)
	}
	if steps != nil {
		o.Steps = make([]agentloop.Step, 0, len(steps))
		for _, s := range steps {
			var st agentloop.Step
			if json.Unmarshal(s.Data, &st) == nil {
				o.Steps = append(o.Steps, st)
			}
		}
	}
	if t.Output != nil {
		o.Output = &worker.TaskOutput{}
		_ = json.Unmarshal(t.Output, o.Output)
	}
	if t.Error != nil {
		o.Error = &worker.TaskError{}
		_ = json.Unmarshal(t.Error, o.Error)
	}
	return o
}

// CreateTask validates the request, writes the task row and inserts its
// River job in one transaction. The bool tells whether the task is new (an
// Idempotency-Key can return an earlier one).
func (a *API) CreateTask(ctx context.Context, tenant, idempotencyKey, upstreamAuth string, body []byte) (*TaskObject, bool, error) {
	if len(idempotencyKey) > 255 {
		return nil, false, invalid("Idempotency-Key", "Idempotency-Key is longer than 255 characters")
	}
	req, err := parseCreateTask(body, a.cfg.Limits)
	if err != nil {
		return nil, false, err
	}
	st := a.cfg.Store
	if idempotencyKey != "" {
		if t, err := st.GetTaskByIdempotencyKey(ctx, st.DB(), tenant, idempotencyKey); err == nil {
			return a.taskObject(t, nil), false, nil
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
	task.Secrets, err = worker.SealSecrets(a.cfg.Keyring, task.ID, &worker.TaskSecrets{Headers: req.Headers, UpstreamAuthorization: upstreamAuth})
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
		return a.taskObject(t, nil), false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return a.taskObject(task, []store.Step{}), true, nil
}

// GetTask returns the tenant's task with its steps.
func (a *API) GetTask(ctx context.Context, tenant, id string) (*TaskObject, error) {
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
	return a.taskObject(t, steps), nil
}

// TaskList is a page of tasks, newest first.
type TaskList struct {
	Object  string        `json:"object"`
	Data    []*TaskObject `json:"data"`
	FirstID string        `json:"first_id,omitempty"`
	LastID  string        `json:"last_id,omitempty"`
	HasMore bool          `json:"has_more"`
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
	out := &TaskList{Object: "list", Data: make([]*TaskObject, len(tasks)), HasMore: more}
	for i, t := range tasks {
		out.Data[i] = a.taskObject(t, nil)
	}
	if len(tasks) > 0 {
		out.FirstID, out.LastID = tasks[0].ID, tasks[len(tasks)-1].ID
	}
	return out, nil
}

// CancelTask cancels a task that has not ended. A running segment notices
// within its cancel-poll interval and stops before its next step.
func (a *API) CancelTask(ctx context.Context, tenant, id string) (*TaskObject, error) {
	st := a.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("task " + strconv.Quote(id))
	}
	if err != nil {
		return nil, err
	}
	ok, err := st.FinishTask(ctx, st.DB(), t.ID, store.FinishParams{Status: store.TaskCanceled, Retention: a.cfg.Retention})
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
	if err := st.DeleteTask(ctx, st.DB(), tenant, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("task " + strconv.Quote(id))
		}
		return nil, err
	}
	return &Deleted{ID: id, Object: "task.deleted", Deleted: true}, nil
}
