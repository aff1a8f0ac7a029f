package responses

import (
	"encoding/json"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Response statuses, as OpenAI names them.
const (
	StatusQueued     = "queued"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
	StatusIncomplete = "incomplete"
)

// Incomplete reasons mcpidp adds to OpenAI's.
const (
	// ReasonAuthorization: an MCP server needs the user to log in; the
	// output holds mcp_authorization_request items with the links.
	ReasonAuthorization = "mcp_authorization_required"
	// ReasonMaxSteps: the run took max_steps model turns without a final
	// answer.
	ReasonMaxSteps = "max_steps"
)

// Object is a response as the API shows it.
type Object struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              *ObjectError      `json:"error"`
	IncompleteDetails  *Incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    json.RawMessage   `json:"max_output_tokens"`
	MaxToolCalls       *int              `json:"max_tool_calls"`
	Model              string            `json:"model"`
	Output             []any             `json:"output"`
	ParallelToolCalls  json.RawMessage   `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	Store              bool              `json:"store"`
	Temperature        json.RawMessage   `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              []json.RawMessage `json:"tools"`
	TopP               json.RawMessage   `json:"top_p"`
	Truncation         json.RawMessage   `json:"truncation"`
	Usage              *Usage            `json:"usage"`
	User               *string           `json:"user"`
	Metadata           json.RawMessage   `json:"metadata"`

	// run is the stored run a response that waits for approvals keeps.
	run *runState
}

// ObjectError is a failed response's "error".
type ObjectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Incomplete is a response's "incomplete_details".
type Incomplete struct {
	Reason string `json:"reason"`
}

// stored is what mcpidp_response.request keeps of a request: what the
// response object repeats, and what a later request that continues from it
// (previous_response_id) needs.
type stored struct {
	// Conversation is every item before this response's output: the
	// previous responses' input and output, then this request's input.
	Conversation []json.RawMessage `json:"conversation"`
	// Inputs is how many of Conversation's last items are this request's
	// own input (GET /v1/responses/{id}/input_items).
	Inputs             int                        `json:"inputs"`
	Instructions       *string                    `json:"instructions,omitempty"`
	Tools              []json.RawMessage          `json:"tools,omitempty"`
	Functions          []json.RawMessage          `json:"functions,omitempty"`
	Labels             map[string]string          `json:"labels,omitempty"`
	MaxToolCalls       int                        `json:"max_tool_calls,omitempty"`
	PreviousResponseID string                     `json:"previous_response_id,omitempty"`
	Metadata           json.RawMessage            `json:"metadata,omitempty"`
	Echo               map[string]json.RawMessage `json:"echo,omitempty"`
	// Run is kept while the response waits for approvals: what the run's
	// messages were made from and its steps, so that the response that
	// answers them goes on from there.
	Run *runState `json:"run,omitempty"`
}

// runState is a run that stopped for approvals.
type runState struct {
	Conversation []json.RawMessage `json:"conversation"`
	Steps        []agentloop.Step  `json:"steps"`
	// Pending are the approval request ids the run waits on.
	Pending []string `json:"pending"`
}

func storedOf(req *Request, conversation []json.RawMessage) *stored {
	return &stored{
		Conversation: conversation, Inputs: len(req.Input), Instructions: req.Instructions, Tools: req.Tools, Functions: req.Functions,
		Labels: req.Labels, MaxToolCalls: req.MaxToolCalls, PreviousResponseID: req.PreviousResponseID,
		Metadata: req.Metadata, Echo: req.Echo,
	}
}

// newObject is the response object of a request, before any output.
func newObject(id string, created time.Time, model, user string, background, store bool, s *stored) *Object {
	o := &Object{
		ID: id, Object: "response", CreatedAt: created.Unix(), Status: StatusInProgress, Background: background,
		Instructions: s.Instructions, Model: model, Output: []any{}, Store: store, Tools: s.Tools, Metadata: s.Metadata,
		MaxOutputTokens: s.Echo["max_output_tokens"], Reasoning: s.Echo["reasoning"], Temperature: s.Echo["temperature"],
		TopP: s.Echo["top_p"], ParallelToolCalls: s.Echo["parallel_tool_calls"], ToolChoice: s.Echo["tool_choice"],
		Text: s.Echo["text"], Truncation: s.Echo["truncation"],
	}
	if o.Tools == nil {
		o.Tools = []json.RawMessage{}
	}
	if o.Metadata == nil {
		o.Metadata = json.RawMessage(`{}`)
	}
	if o.ParallelToolCalls == nil {
		o.ParallelToolCalls = json.RawMessage(`true`)
	}
	if o.ToolChoice == nil {
		o.ToolChoice = json.RawMessage(`"auto"`)
	}
	if o.Text == nil {
		o.Text = json.RawMessage(`{"format":{"type":"text"}}`)
	}
	if o.Truncation == nil {
		o.Truncation = json.RawMessage(`"disabled"`)
	}
	if s.MaxToolCalls > 0 {
		n := s.MaxToolCalls
		o.MaxToolCalls = &n
	}
	if s.PreviousResponseID != "" {
		p := s.PreviousResponseID
		o.PreviousResponseID = &p
	}
	if user != "" {
		o.User = &user
	}
	return o
}

// fromRow is a stored response as the API shows it. A background
// response's status, output and usage come from its task (t, with its
// steps); t is nil for a response answered in its request.
func fromRow(r *store.Response, t *task.Object) (*Object, *stored, error) {
	var s stored
	if err := json.Unmarshal(r.Request, &s); err != nil {
		return nil, nil, err
	}
	o := newObject(r.ID, r.CreatedAt, r.Model, r.UserID, r.Background, true, &s)
	if t == nil {
		o.Status = r.Status
		if r.Output != nil {
			var out []any
			if err := json.Unmarshal(r.Output, &out); err != nil {
				return nil, nil, err
			}
			o.Output = out
		}
		if r.Usage != nil {
			o.Usage = &Usage{}
			_ = json.Unmarshal(r.Usage, o.Usage)
		}
		if r.Error != nil {
			var e struct {
				ObjectError
				Incomplete string `json:"incomplete,omitempty"`
			}
			_ = json.Unmarshal(r.Error, &e)
			if e.Incomplete != "" {
				o.IncompleteDetails = &Incomplete{Reason: e.Incomplete}
			} else {
				o.Error = &e.ObjectError
			}
		}
		return o, &s, nil
	}
	fromTask(o, &s, t)
	return o, &s, nil
}

// fromTask fills a background response from its task: status, output items
// rebuilt from the steps (so they carry the ids they would have carried in
// a stream), the login links of a task waiting for them, usage and error.
func fromTask(o *Object, s *stored, t *task.Object) {
	b := newBuilder(o.ID, s.Labels, s.Functions)
	o.Output = b.items(t.Steps, 0)
	if o.Output == nil {
		o.Output = []any{}
	}
	switch t.Status {
	case task.StatusQueued:
		o.Status = StatusQueued
	case task.StatusRunning:
		o.Status = StatusInProgress
	case task.StatusAwaitingAuthorization:
		o.Status = StatusInProgress
		var links []task.AuthorizationRequest
		_ = json.Unmarshal(t.AuthorizationRequired, &links)
		o.Output = append(o.Output, loginItems(b, links)...)
	case task.StatusAwaitingApproval:
		o.Status = StatusInProgress
		for _, a := range t.PendingApprovals {
			o.Output = append(o.Output, ApprovalRequestItem{ID: a.ID, Type: "mcp_approval_request", ServerLabel: b.labels[a.ServerURL],
				Name: a.Name, Arguments: string(a.Arguments), ApproveURL: a.ApproveURL})
		}
	case task.StatusAwaitingInput:
		o.Status = StatusInProgress
		var inputs []task.PendingInput
		_ = json.Unmarshal(t.PendingInputs, &inputs)
		for _, in := range inputs {
			it := InputRequestItem{ID: in.ID, Type: TypeInputRequest, ServerLabel: b.labels[in.ServerURL], ServerURL: in.ServerURL,
				Mode: in.Mode, Message: in.Message, RequestedSchema: in.RequestedSchema, URL: in.URL, FormURL: in.FormURL}
			if !in.ExpiresAt.IsZero() {
				it.ExpiresAt = in.ExpiresAt.Unix()
			}
			o.Output = append(o.Output, it)
		}
	case task.StatusCompleted:
		o.Status = StatusCompleted
		if t.Output != nil && t.Output.StopReason == agentloop.ReasonMaxSteps {
			o.Status, o.IncompleteDetails = StatusIncomplete, &Incomplete{Reason: ReasonMaxSteps}
		}
	case task.StatusFailed:
		o.Status = StatusFailed
	case task.StatusCanceled:
		o.Status = StatusCancelled
	}
	if t.Error != nil {
		o.Error = &ObjectError{Code: t.Error.Code, Message: t.Error.Message}
	}
	var u llm.Usage
	if t.Status.Terminal() && json.Unmarshal(t.Usage, &u) == nil {
		o.Usage = usageOf(u)
	}
}

func loginItems(b *builder, links []task.AuthorizationRequest) []any {
	var out []any
	for n, l := range links {
		it := AuthorizationRequestItem{ID: b.ids.login(n), Type: TypeAuthorizationRequest, ServerLabel: b.labels[l.ServerURL],
			ServerURL: l.ServerURL, AuthorizationURL: l.AuthorizationURL}
		if !l.ExpiresAt.IsZero() {
			it.ExpiresAt = l.ExpiresAt.Unix()
		}
		out = append(out, it)
	}
	return out
}
