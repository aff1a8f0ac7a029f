// Package task owns a task's lifecycle: its model (the stored request,
// sealed secrets, statuses, failure codes, event names, the River job
// arguments) and the Service whose methods are the transitions — create,
// cancel, delete, pause, resume and finish — each with every side effect
// that must commit with it (waits, the parked continuation job, timeout and
// recheck jobs, webhooks and callbacks, result retention). The API and the
// workers both call it; neither knows the other.
//
// It also renders a task as the API, the result URLs and the webhooks show
// it (Build, Markdown), so that all of them say the same thing.
package task

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Status is a task's status; the store keeps it, so the values live there.
type Status = store.TaskStatus

// Task statuses.
const (
	StatusQueued                = store.TaskQueued
	StatusRunning               = store.TaskRunning
	StatusAwaitingAuthorization = store.TaskAwaitingAuthorization
	StatusAwaitingApproval      = store.TaskAwaitingApproval
	StatusCompleted             = store.TaskCompleted
	StatusFailed                = store.TaskFailed
	StatusCanceled              = store.TaskCanceled
)

// Failure codes of failed tasks (the task object's error.code).
const (
	CodeModelError            = "model_error"
	CodeMCPServerError        = "mcp_server_error"
	CodeAuthorizationRequired = "authorization_required"
	CodeInternal              = "internal_error"
	CodeAuthorizationFailed   = "authorization_failed"
	CodeAuthorizationTimeout  = "authorization_timeout"
	// CodeApprovalTimeout: nobody approved or denied a held-back tool call
	// before its approval expired.
	CodeApprovalTimeout = "approval_timeout"
	// CodeApprovalRequired: the task paused for approvals too many times.
	CodeApprovalRequired = "approval_required"
	CodeTimeout          = "timeout"
	CodeBadRequest       = "invalid_task"
)

// Webhook event types.
const (
	EventAuthorizationRequired = "task.authorization_required"
	EventApprovalRequired      = "task.approval_required"
	EventCompleted             = "task.completed"
	EventFailed                = "task.failed"
	EventCanceled              = "task.canceled"
	// EventConnectionRefreshFailed announces that a user's connection
	// needs a new login.
	EventConnectionRefreshFailed = "connection.refresh_failed"
	// CallbackAuthorizationRequired is the body type POSTed to a task's
	// authorization_request_callback.
	CallbackAuthorizationRequired = "authorization.required"
	// CallbackApprovalRequired is the body type POSTed to the same
	// callback when tool calls wait for a person's approval.
	CallbackApprovalRequired = "approval.required"
)

// MaxSegments bounds how many times one task may pause for a login (step-up
// rounds included), so a server that keeps refusing cannot loop forever.
const MaxSegments = 20

// ErrCanceled means the task stopped running under the caller: it was
// canceled, deleted or ended elsewhere.
var ErrCanceled = errors.New("task was canceled")

// Failure ends a task as failed with a code the caller sees.
type Failure struct {
	Code    string
	Message string
}

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// NotCancelableError is returned by Cancel for a task that already ended.
type NotCancelableError struct {
	ID     string
	Status Status
}

func (e *NotCancelableError) Error() string {
	return fmt.Sprintf("task %s is already %s", e.ID, e.Status)
}

// SealSecrets seals s for the task: the task id is the associated data, so
// the blob cannot be moved to another task. Empty secrets seal to "".
func SealSecrets(k *secretbox.Keyring, taskID string, s *Secrets) (string, error) {
	if s == nil || len(s.Headers) == 0 && len(s.ConnectURLs) == 0 && s.UpstreamAuthorization == "" {
		return "", nil
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("error encoding task secrets: %w", err)
	}
	return k.Seal(plain, []byte(taskID))
}

// OpenSecrets opens the task's sealed secrets.
func OpenSecrets(k *secretbox.Keyring, t *store.Task) (*Secrets, error) {
	var s Secrets
	if t.Secrets == "" {
		return &s, nil
	}
	plain, err := k.Open(t.Secrets, []byte(t.ID))
	if err != nil {
		return nil, &Failure{Code: CodeInternal, Message: "task secrets cannot be decrypted (was MCPIDP_ENCRYPTION_KEY changed?)"}
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("error reading task secrets: %w", err)
	}
	return &s, nil
}
