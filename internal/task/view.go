package task

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Object is the task as the API, the JSON result URL and webhooks show it.
type Object struct {
	ID                    string           `json:"id"`
	Object                string           `json:"object"`
	Status                store.TaskStatus `json:"status"`
	User                  string           `json:"user"`
	Model                 string           `json:"model"`
	Store                 bool             `json:"store"`
	Metadata              json.RawMessage  `json:"metadata"`
	CreatedAt             time.Time        `json:"created_at"`
	UpdatedAt             time.Time        `json:"updated_at"`
	CompletedAt           *time.Time       `json:"completed_at"`
	ExpiresAt             *time.Time       `json:"expires_at"`
	RetryingAt            *time.Time       `json:"retrying_at"` // next try of a failing model call
	ResultURLs            ResultURLs       `json:"result_urls"`
	AuthorizationRequired json.RawMessage  `json:"authorization_required"`
	// PendingApprovals are the tool calls waiting for a person's decision
	// (always a list).
	PendingApprovals []PendingApproval `json:"pending_approvals"`
	// PendingInputs are the inputs an MCP server waits for (elicitation),
	// []PendingInput; [] when none.
	PendingInputs json.RawMessage  `json:"pending_inputs"`
	Steps         []agentloop.Step `json:"steps,omitempty"`
	Output        *Output          `json:"output"`
	Usage         json.RawMessage  `json:"usage"`
	Error         *Error           `json:"error"`

	// Initial is the conversation the task started from, for markdown.
	Initial []json.RawMessage `json:"-"`
}

// ResultURLs are the public, unauthenticated result links.
type ResultURLs struct {
	Markdown string `json:"markdown"`
	JSON     string `json:"json"`
}

// ImageURL is the public URL of image n (from 0) of the task's step (its
// index among the task's steps), under the task's result token.
func ImageURL(publicURL, resultToken string, step, n int) string {
	return fmt.Sprintf("%s/r/%s/images/%d/%d", publicURL, resultToken, step, n)
}

// Build renders a task; steps are included when not nil. publicURL is the
// deployment's base URL, without a trailing slash.
func Build(t *store.Task, steps []store.Step, publicURL string) *Object {
	var initial []json.RawMessage
	var req Request
	if json.Unmarshal(t.Request, &req) == nil {
		initial = req.Messages
	}
	return build(t, steps, publicURL, initial)
}

// build is Build with the task's initial messages given: a caller that
// has just made the task has them already, and decoding its whole
// request again costs more than the rest of the rendering.
func build(t *store.Task, steps []store.Step, publicURL string, initial []json.RawMessage) *Object {
	o := &Object{
		ID: t.ID, Object: "task", Status: t.Status, User: t.UserID, Model: t.Model, Store: t.Store,
		Metadata: t.Metadata, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, CompletedAt: t.CompletedAt, ExpiresAt: t.ExpiresAt,
		ResultURLs: ResultURLs{
			Markdown: publicURL + "/r/" + t.ResultToken + ".md",
			JSON:     publicURL + "/r/" + t.ResultToken + ".json",
		},
		AuthorizationRequired: t.AuthorizationRequired,
		PendingInputs:         t.PendingInputs,
		Usage:                 t.Usage,
		Initial:               initial,
	}
	if t.Status == store.TaskRunning {
		o.RetryingAt = t.RetryingAt
	}
	if o.AuthorizationRequired == nil {
		o.AuthorizationRequired = json.RawMessage(`[]`)
	}
	o.PendingApprovals = []PendingApproval{}
	if t.Status.Paused() {
		_ = json.Unmarshal(t.PendingApprovals, &o.PendingApprovals)
		for i := range o.PendingApprovals {
			o.PendingApprovals[i].ApproveURL = publicURL + ApprovalPathPrefix + ApprovalToken(t.ResultToken, o.PendingApprovals[i].ID)
		}
	}
	if o.PendingInputs == nil {
		o.PendingInputs = json.RawMessage(`[]`)
	}
	if o.Usage == nil {
		o.Usage = json.RawMessage(`{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`)
	}
	if steps != nil {
		o.Steps = make([]agentloop.Step, 0, len(steps))
		for _, s := range steps {
			var st agentloop.Step
			if json.Unmarshal(s.Data, &st) != nil {
				continue
			}
			// Images are fetched by URL: task objects and webhooks stay small.
			for n := range st.Images {
				st.Images[n].URL = ImageURL(publicURL, t.ResultToken, s.Index, n)
				st.Images[n].Data = nil
			}
			o.Steps = append(o.Steps, st)
		}
	}
	if t.Output != nil {
		o.Output = &Output{}
		_ = json.Unmarshal(t.Output, o.Output)
	}
	if t.Error != nil {
		o.Error = &Error{}
		_ = json.Unmarshal(t.Error, o.Error)
	}
	return o
}
