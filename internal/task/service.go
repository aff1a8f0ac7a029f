package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// ServiceConfig holds the Service's dependencies.
type ServiceConfig struct {
	Store   *store.Store
	Keyring *secretbox.Keyring
	// OAuth begins the logins a pause asks for.
	OAuth *mcpauth.Engine
	// RiverFunc returns the River client that inserts jobs for callers
	// outside a River job (the API, OAuth callbacks). It is a function
	// because the workers that share this service are registered before
	// the client exists. Inside a job the job's own client is used.
	RiverFunc func() *river.Client[*sql.Tx]
	// PgxRiverFunc, optional and for PostgreSQL only, returns a River
	// client on the store's pgx pool (River's pgx driver). With it, grouped
	// submissions are written in a pgx transaction with COPY, which costs
	// much less CPU a task than database/sql's parameter encoding.
	PgxRiverFunc func() *river.Client[pgx.Tx]
	// PublicURL is this deployment's external base URL, without a
	// trailing slash; result URLs are built from it.
	PublicURL string
	// Retention is how long store=false tasks are kept after they end.
	Retention time.Duration
	// ApprovalTTL is how long a held-back tool call waits for a decision;
	// default DefaultApprovalTTL.
	ApprovalTTL time.Duration
	Logger      *slog.Logger
}

func (c *ServiceConfig) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("task service: store is required")
	case c.Keyring == nil:
		return errors.New("task service: keyring is required")
	case c.OAuth == nil:
		return errors.New("task service: OAuth engine is required")
	case c.RiverFunc == nil:
		return errors.New("task service: River client func is required")
	case c.PgxRiverFunc != nil && c.Store.Pool() == nil:
		return errors.New("task service: a pgx River client needs a PostgreSQL store")
	case c.PublicURL == "":
		return errors.New("task service: public URL is required")
	case c.Retention <= 0:
		return fmt.Errorf("task service: retention must be positive, got %s", c.Retention)
	}
	return nil
}

// Service performs a task's transitions. Each method commits the status
// change together with everything that must go with it.
type Service struct {
	cfg ServiceConfig
	// answered wakes a held call in this process when its input is
	// answered here (another process's answer is found by polling).
	answered inputSignals
	// batch commits concurrent submissions in groups.
	batch *createBatcher
}

// NewService validates cfg and returns the service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = DefaultApprovalTTL
	}
	s := &Service{cfg: cfg}
	s.batch = &createBatcher{s: s}
	return s, nil
}

// river is the client to insert jobs with: the running job's when there is
// one (so jobs inserted by a worker go through the client that works them).
func (s *Service) river(ctx context.Context) (*river.Client[*sql.Tx], error) {
	if rc, err := river.ClientFromContextSafely[*sql.Tx](ctx); err == nil {
		return rc, nil
	}
	if rc := s.cfg.RiverFunc(); rc != nil {
		return rc, nil
	}
	return nil, errors.New("task service: no River client")
}

// inJob tells whether ctx is a River job's, whose client must insert the
// jobs it makes (Create's grouped path uses the service's client).
func inJob(ctx context.Context) bool {
	_, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	return err == nil
}

// CreateParams is a validated task to create.
type CreateParams struct {
	Tenant string
	// IdempotencyKey, when set, makes a repeated create return the task
	// the first one made.
	IdempotencyKey string
	User           string
	Model          string
	Store          bool
	Metadata       json.RawMessage
	Request        Request
	// Secrets are sealed to the task, never stored in the clear.
	Secrets Secrets
	// ID, when set, is the new task's id (a background response's
	// "resp_…"); default a fresh "task_…".
	ID string
	// CreateTxFunc, when set, writes rows that must commit with the task
	// (a background response's own row), in the create transaction.
	CreateTxFunc func(ctx context.Context, tx *sql.Tx, t *store.Task) error
}

// Create writes the task row and inserts its first run job in one
// transaction. The bool tells whether the task is new (an idempotency key
// can return an earlier one).
func (s *Service) Create(ctx context.Context, p CreateParams) (*Object, bool, error) {
	st := s.cfg.Store
	if p.IdempotencyKey != "" {
		if t, err := st.GetTaskByIdempotencyKey(ctx, st.DB(), p.Tenant, p.IdempotencyKey); err == nil {
			return Build(t, nil, s.cfg.PublicURL), false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
	}
	rc, err := s.river(ctx)
	if err != nil {
		return nil, false, err
	}
	reqJSON, err := json.Marshal(p.Request)
	if err != nil {
		return nil, false, fmt.Errorf("error encoding task request: %w", err)
	}
	t := &store.Task{
		ID:             p.ID,
		TenantID:       p.Tenant,
		UserID:         p.User,
		Model:          p.Model,
		Store:          p.Store,
		Request:        reqJSON,
		Metadata:       p.Metadata,
		IdempotencyKey: p.IdempotencyKey,
	}
	if t.ID == "" {
		t.ID = store.NewID("task_", st.Now())
	}
	if t.Secrets, err = SealSecrets(s.cfg.Keyring, t.ID, &p.Secrets); err != nil {
		return nil, false, err
	}
	if p.IdempotencyKey == "" && p.CreateTxFunc == nil && !inJob(ctx) {
		// Nothing of its own to do in the transaction: commit it with the
		// other submissions of the moment.
		if err := s.batch.create(ctx, t); err != nil {
			return nil, false, err
		}
		return build(t, []store.Step{}, s.cfg.PublicURL, p.Request.Messages), true, nil
	}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		if err := st.CreateTask(ctx, tx, t); err != nil {
			return err
		}
		if p.CreateTxFunc != nil {
			if err := p.CreateTxFunc(ctx, tx, t); err != nil {
				return err
			}
		}
		if _, err := rc.InsertTx(ctx, tx, RunArgs{TaskID: t.ID}, nil); err != nil {
			return fmt.Errorf("error queueing task: %w", err)
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) && p.IdempotencyKey != "" {
		// Lost a race with the same key: answer with the winner.
		won, err := st.GetTaskByIdempotencyKey(ctx, st.DB(), p.Tenant, p.IdempotencyKey)
		if err != nil {
			return nil, false, err
		}
		return Build(won, nil, s.cfg.PublicURL), false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return build(t, []store.Step{}, s.cfg.PublicURL, p.Request.Messages), true, nil
}

// GetParams names a tenant's task.
type GetParams struct {
	Tenant string
	ID     string
}

// Get returns the tenant's task with its steps, or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, p GetParams) (*Object, error) {
	st := s.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	steps, err := st.ListSteps(ctx, st.DB(), t.ID)
	if err != nil {
		return nil, err
	}
	return Build(t, steps, s.cfg.PublicURL), nil
}

// CancelParams names the task to cancel.
type CancelParams struct {
	Tenant string
	ID     string
}

// Cancel ends a task that has not ended, as Finish does with status
// canceled. A running segment notices within its cancel-poll interval and
// stops before its next step. A task that already ended gives a
// *NotCancelableError; an unknown one store.ErrNotFound.
func (s *Service) Cancel(ctx context.Context, p CancelParams) (*Object, error) {
	st := s.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	ok, err := s.Finish(ctx, FinishParams{TaskID: t.ID, Status: StatusCanceled})
	if err != nil {
		return nil, err
	}
	if !ok {
		t, err = st.GetTask(ctx, st.DB(), p.Tenant, p.ID)
		if err != nil {
			return nil, err
		}
		return nil, &NotCancelableError{ID: p.ID, Status: t.Status}
	}
	return s.Get(ctx, GetParams(p))
}

// DeleteParams names the task to delete.
type DeleteParams struct {
	Tenant string
	ID     string
}

// Delete removes a task, its steps, its waits and its result URLs, with
// its parked continuation job (which would otherwise stay in River
// forever). A running segment stops at its next step. An unknown task gives
// store.ErrNotFound.
func (s *Service) Delete(ctx context.Context, p DeleteParams) error {
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return err
	}
	return st.InTx(ctx, func(tx *sql.Tx) error {
		// Only the tenant's own task loses its job; DeleteTask answers
		// store.ErrNotFound for any other.
		if _, err := st.GetTask(ctx, tx, p.Tenant, p.ID); err == nil {
			if err := dropParkedJobTx(ctx, tx, rc, st, p.ID); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return st.DeleteTask(ctx, tx, p.Tenant, p.ID)
	})
}

// FinishParams is how a task ends.
type FinishParams struct {
	TaskID string
	// Status is completed, failed or canceled.
	Status Status
	// Output and Usage are a completed task's result.
	Output, Usage json.RawMessage
	// Error is a failed task's reason.
	Error *Error
	// OnlyFrom, when set, ends the task only if it has that status, and
	// Segment, when set, only if it is in that segment.
	OnlyFrom Status
	Segment  *int
}

// Finish ends a task that has not ended, in one transaction with the rest
// of its end: its waits are forgotten, its pending inputs expired, its parked job is dropped, a
// store=false task gets its expiry, and the task's webhook event
// (task.completed, task.failed or task.canceled) is queued. It reports
// whether this call ended the task.
func (s *Service) Finish(ctx context.Context, p FinishParams) (bool, error) {
	event := EventCompleted
	switch p.Status {
	case StatusCompleted:
	case StatusFailed:
		event = EventFailed
	case StatusCanceled:
		event = EventCanceled
	default:
		return false, fmt.Errorf("task %s cannot finish as %q", p.TaskID, p.Status)
	}
	var errJSON json.RawMessage
	if p.Error != nil {
		errJSON, _ = json.Marshal(p.Error)
	}
	rc, err := s.river(ctx)
	if err != nil {
		return false, err
	}
	st := s.cfg.Store
	var ok bool
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err = st.FinishTask(ctx, tx, p.TaskID, store.FinishParams{Status: p.Status, Output: p.Output, Usage: p.Usage, Error: errJSON,
			Retention: s.cfg.Retention, OnlyFrom: p.OnlyFrom, Segment: p.Segment})
		if err != nil || !ok {
			return err
		}
		if err := st.ClearWaits(ctx, tx, p.TaskID); err != nil {
			return err
		}
		// An ended task takes no more answers.
		if err := st.ExpireTaskInputs(ctx, tx, p.TaskID); err != nil {
			return err
		}
		if err := dropParkedJobTx(ctx, tx, rc, st, p.TaskID); err != nil {
			return err
		}
		return s.announceTx(ctx, tx, rc, p.TaskID, event)
	})
	return ok, err
}

// dropParkedJobTx deletes the task's continuation job (end, delete).
func dropParkedJobTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, taskID string) error {
	parked, err := st.ContinuationJob(ctx, tx, taskID)
	if err != nil {
		return err
	}
	return deleteParkedJobTx(ctx, tx, rc, parked)
}

// deleteParkedJobTx deletes a task's continuation job (0: none) unless it
// is already gone or running: the one place a parked job is removed. A
// running one is the task's own segment, which stops by itself.
func deleteParkedJobTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], jobID int64) error {
	if jobID == 0 {
		return nil
	}
	if _, err := rc.JobDeleteTx(ctx, tx, jobID); err != nil && !errors.Is(err, river.ErrNotFound) && !errors.Is(err, rivertype.ErrJobRunning) {
		return fmt.Errorf("error removing parked job: %w", err)
	}
	return nil
}

// announceTx queues a task webhook event (when the task has a webhook) in
// tx, with the task object as it is in tx.
func (s *Service) announceTx(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], taskID, eventType string) error {
	st := s.cfg.Store
	t, err := st.GetTaskByID(ctx, tx, taskID)
	if err != nil {
		return err
	}
	var req Request
	if err := json.Unmarshal(t.Request, &req); err != nil {
		return nil
	}
	url := ""
	if req.Webhook != nil {
		url = req.Webhook.URL
	}
	if url == "" {
		tenant, err := st.GetTenant(ctx, tx, t.TenantID)
		if err != nil {
			return err
		}
		url = tenant.WebhookURL
	}
	if url == "" {
		return nil
	}
	steps, err := st.ListSteps(ctx, tx, taskID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(Build(t, steps, s.cfg.PublicURL))
	if err != nil {
		return err
	}
	_, err = delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: t.TenantID, TaskID: t.ID, Type: eventType, URL: url, Data: data})
	return err
}

// AnnounceRefreshFailedTx queues connection.refresh_failed to the tenant's
// default webhook URL, if it has one, in the refresh's transaction.
func (s *Service) AnnounceRefreshFailedTx(ctx context.Context, tx *sql.Tx, tenant, user string, c mcpauth.Connection) error {
	st := s.cfg.Store
	t, err := st.GetTenant(ctx, tx, tenant)
	if err != nil || t.WebhookURL == "" {
		return err
	}
	rc, err := s.river(ctx)
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]any{"user": user, "connection": c})
	if err != nil {
		return err
	}
	_, err = delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: tenant, Type: EventConnectionRefreshFailed, URL: t.WebhookURL, Data: data})
	return err
}
