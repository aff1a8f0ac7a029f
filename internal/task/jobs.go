package task

import (
	"time"

	"github.com/riverqueue/river"
)

// The River job arguments of a task. Jobs carry ids only; state lives in
// our tables, so a job that runs twice finds the work already recorded.
// Their Kind strings are stored with queued jobs: never change them.

// RunArgs runs one segment of a task: from wherever its recorded steps end
// until it finishes or pauses for a login.
type RunArgs struct {
	TaskID string `json:"task_id"`
	// Segment must equal the task's segment; a job of an older segment is
	// stale and does nothing.
	Segment int `json:"segment"`
}

// Kind implements river.JobArgs.
func (RunArgs) Kind() string { return "task_run" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// AuthTimeoutArgs fails a task still waiting for a login when its login
// links expire. Inserted, scheduled, with the pause.
type AuthTimeoutArgs struct {
	TaskID  string `json:"task_id"`
	Segment int    `json:"segment"`
}

// Kind implements river.JobArgs.
func (AuthTimeoutArgs) Kind() string { return "task_authorization_timeout" }

// LoginRecheckArgs looks, right after a pause commits, for a login that
// completed between the task's challenge and its pause, and resumes the
// task if one did. Inserted in the pause transaction.
type LoginRecheckArgs struct {
	TaskID  string    `json:"task_id"`
	Segment int       `json:"segment"`
	Since   time.Time `json:"since"`
}

// Kind implements river.JobArgs.
func (LoginRecheckArgs) Kind() string { return "task_login_recheck" }

// ApprovalTimeoutArgs fails a task still waiting for a tool call's approval
// when the approval expires. Inserted, scheduled, with the pause.
type ApprovalTimeoutArgs struct {
	TaskID  string `json:"task_id"`
	Segment int    `json:"segment"`
}

// Kind implements river.JobArgs.
func (ApprovalTimeoutArgs) Kind() string { return "task_approval_timeout" }
