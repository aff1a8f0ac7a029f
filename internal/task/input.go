package task

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
)

// StatusAwaitingInput is a task whose MCP server asked its user for input
// (form elicitation): the run's job holds the call open until the answer
// comes or the hold ends.
const StatusAwaitingInput = store.TaskAwaitingInput

// Input events.
const (
	// EventInputRequired is the webhook announcing that a task waits for
	// its user's input.
	EventInputRequired = "task.input_required"
	// CallbackInputRequired is the body type POSTed to a task's
	// authorizationRequestCallback when a server asks for input.
	CallbackInputRequired = "input.required"
)

// DefaultElicitationHold is how long a held call waits for an answer
// (MCPIDP_ELICITATION_HOLD) before it is declined.
const DefaultElicitationHold = 10 * time.Minute

// PendingInput is one entry of the task object's pending_inputs.
type PendingInput struct {
	ID              string          `json:"id"`
	ServerURL       string          `json:"server_url"`
	Mode            string          `json:"mode"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema"`
	URL             string          `json:"url"`
	FormURL         string          `json:"form_url"`
	ExpiresAt       time.Time       `json:"expires_at"`
}

// InputFormURL is the public page where a person answers input id of the
// task whose result token is resultToken. It lives under the result URL:
// whoever holds the task's result links sees its pending inputs anyway, so
// the form gives no one a new capability, and needs no secret of its own.
func InputFormURL(publicURL, resultToken, inputID string) string {
	return publicURL + "/r/" + resultToken + "/inputs/" + inputID
}

// AskParams is a running task whose MCP server asks its user for input.
type AskParams struct {
	Task    *store.Task
	Request *Request
	Ask     mcpclient.ElicitRequest
	// ExpiresAt is when the hold ends and the input is declined.
	ExpiresAt time.Time
}

// AskInput records what the server asks for and, in one transaction, moves
// the task to awaiting_input with the input in pending_inputs, queues the
// signed input.required callback and the task.input_required webhook. The
// caller then waits for the answer (WaitInput). ErrCanceled when the task
// stopped running.
func (s *Service) AskInput(ctx context.Context, p AskParams) (*store.Input, error) {
	st := s.cfg.Store
	rc, err := s.river(ctx)
	if err != nil {
		return nil, err
	}
	in := &store.Input{TaskID: p.Task.ID, ServerURL: p.Ask.ServerURL, Mode: p.Ask.Mode, Message: p.Ask.Message,
		RequestedSchema: p.Ask.RequestedSchema, URL: p.Ask.URL, ExpiresAt: p.ExpiresAt}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		if err := st.CreateInput(ctx, tx, in); err != nil {
			return err
		}
		pending := s.pendingInput(p.Task, in)
		list, _ := json.Marshal([]PendingInput{pending})
		ok, err := st.SetTaskInputs(ctx, tx, p.Task.ID, StatusRunning, StatusAwaitingInput, list)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCanceled
		}
		if p.Request.AuthorizationRequestCallback != "" {
			data, _ := json.Marshal(map[string]any{
				"task_id": p.Task.ID, "user": p.Task.UserID, "input_id": in.ID, "server_url": in.ServerURL, "mode": in.Mode,
				"message": in.Message, "requested_schema": pending.RequestedSchema, "url": in.URL, "form_url": pending.FormURL,
				"expires_at": in.ExpiresAt, "result_urls": Build(p.Task, nil, s.cfg.PublicURL).ResultURLs,
			})
			if _, err := delivery.Enqueue(ctx, tx, rc, st, delivery.Event{TenantID: p.Task.TenantID, TaskID: p.Task.ID,
				Type: CallbackInputRequired, URL: p.Request.AuthorizationRequestCallback, Data: data}); err != nil {
				return err
			}
		}
		return s.announceTx(ctx, tx, rc, p.Task.ID, EventInputRequired)
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

func (s *Service) pendingInput(t *store.Task, in *store.Input) PendingInput {
	schema := in.RequestedSchema
	if len(schema) == 0 {
		schema = json.RawMessage(`null`)
	}
	return PendingInput{ID: in.ID, ServerURL: in.ServerURL, Mode: in.Mode, Message: in.Message, RequestedSchema: schema,
		URL: in.URL, FormURL: InputFormURL(s.cfg.PublicURL, t.ResultToken, in.ID), ExpiresAt: in.ExpiresAt}
}

// WaitInputParams names the input a held call waits for.
type WaitInputParams struct {
	TaskID  string
	InputID string
	// PollInterval is how often the row is read (an answer received by
	// another process); default 200ms. One received by this process wakes
	// the wait at once.
	PollInterval time.Duration
}

// WaitInput waits until the input is answered or expires (then it is
// declined), moves the task back to running and returns the answer the
// server gets. ErrCanceled when the task ended meanwhile.
func (s *Service) WaitInput(ctx context.Context, p WaitInputParams) (*mcpclient.ElicitResult, error) {
	st := s.cfg.Store
	interval := p.PollInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	notify, stop := s.answered.listen(p.InputID)
	defer stop()
	for {
		in, err := st.GetInput(ctx, st.DB(), p.TaskID, p.InputID)
		if err != nil {
			return nil, err
		}
		if in.Status != store.InputPending || !st.Now().Before(in.ExpiresAt) {
			return s.endInput(ctx, in)
		}
		t, err := st.GetTaskByID(ctx, st.DB(), p.TaskID)
		if err != nil {
			return nil, err
		}
		if t.Status != StatusAwaitingInput {
			return nil, ErrCanceled
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		case <-notify:
		}
	}
}

// endInput expires the input if nobody answered it, and moves the task
// back to running, in one transaction.
func (s *Service) endInput(ctx context.Context, in *store.Input) (*mcpclient.ElicitResult, error) {
	st := s.cfg.Store
	var res *mcpclient.ElicitResult
	err := st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := st.ExpireInput(ctx, tx, in.TaskID, in.ID); err != nil {
			return err
		}
		cur, err := st.GetInput(ctx, tx, in.TaskID, in.ID)
		if err != nil {
			return err
		}
		ok, err := st.SetTaskInputs(ctx, tx, in.TaskID, StatusAwaitingInput, StatusRunning, nil)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCanceled
		}
		res = &mcpclient.ElicitResult{Action: mcpclient.ElicitDecline}
		if cur.Status == store.InputAnswered {
			res = &mcpclient.ElicitResult{Action: cur.Action, Content: cur.Content}
		}
		return nil
	})
	return res, err
}

// AnswerParams is an answer to a pending input.
type AnswerParams struct {
	Tenant  string
	TaskID  string
	InputID string
	// Action is accept, decline or cancel.
	Action string
	// Content is the accepted form's values (a JSON object); the schema's
	// defaults fill what it leaves out.
	Content json.RawMessage
}

// InvalidAnswerError is an answer that cannot be taken as it is; nothing
// was stored.
type InvalidAnswerError struct {
	Param   string
	Message string
}

func (e *InvalidAnswerError) Error() string { return e.Message }

// InputClosedError is an answer to an input that no longer waits for one.
type InputClosedError struct {
	ID     string
	Status string
}

func (e *InputClosedError) Error() string {
	if e.Status == store.InputExpired {
		return fmt.Sprintf("input %s has expired (the server was told the user declined) or its task has ended", e.ID)
	}
	return fmt.Sprintf("input %s is already answered", e.ID)
}

// AnswerInput validates an answer and stores it; the job holding the call
// picks it up. store.ErrNotFound for an unknown task or input,
// *InvalidAnswerError for an answer the schema refuses, *InputClosedError
// when the input was answered or expired. It returns the task object.
func (s *Service) AnswerInput(ctx context.Context, p AnswerParams) (*Object, error) {
	st := s.cfg.Store
	t, err := st.GetTask(ctx, st.DB(), p.Tenant, p.TaskID)
	if err != nil {
		return nil, err
	}
	if err := s.answer(ctx, t, p); err != nil {
		return nil, err
	}
	return s.Get(ctx, GetParams{Tenant: p.Tenant, ID: p.TaskID})
}

// AnswerInputByToken is AnswerInput for the public form page: the task is
// the one behind a result token.
func (s *Service) AnswerInputByToken(ctx context.Context, resultToken string, p AnswerParams) error {
	st := s.cfg.Store
	t, err := st.GetTaskByResultToken(ctx, st.DB(), resultToken)
	if err != nil {
		return err
	}
	p.TaskID = t.ID
	return s.answer(ctx, t, p)
}

// InputByToken returns the input of the task behind a result token, for the
// form page.
func (s *Service) InputByToken(ctx context.Context, resultToken, inputID string) (*store.Input, error) {
	st := s.cfg.Store
	t, err := st.GetTaskByResultToken(ctx, st.DB(), resultToken)
	if err != nil {
		return nil, err
	}
	return st.GetInput(ctx, st.DB(), t.ID, inputID)
}

func (s *Service) answer(ctx context.Context, t *store.Task, p AnswerParams) error {
	st := s.cfg.Store
	in, err := st.GetInput(ctx, st.DB(), t.ID, p.InputID)
	if err != nil {
		return err
	}
	content, err := CheckAnswer(in, p.Action, p.Content)
	if err != nil {
		return err
	}
	if in.Status != store.InputPending || !st.Now().Before(in.ExpiresAt) {
		return &InputClosedError{ID: in.ID, Status: closedStatus(in, st.Now())}
	}
	var ok, declined bool
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		ok, err = st.AnswerInput(ctx, tx, t.ID, in.ID, p.Action, content)
		if err != nil || !ok || in.Mode != mcpclient.ElicitModeURL {
			return err
		}
		declined, err = s.answerURLTx(ctx, tx, t, p.Action)
		return err
	})
	if err != nil {
		return err
	}
	if ok {
		s.answered.signal(in.ID)
	}
	if declined {
		_, err := s.Finish(ctx, FinishParams{TaskID: t.ID, Status: StatusFailed, OnlyFrom: StatusAwaitingInput,
			Error: &Error{Code: CodeInputDeclined, Message: fmt.Sprintf("the user declined to open %s (asked by %s)", in.URL, in.ServerURL)}})
		return err
	}
	if !ok {
		cur, err := st.GetInput(ctx, st.DB(), t.ID, in.ID)
		if err != nil {
			return err
		}
		return &InputClosedError{ID: in.ID, Status: closedStatus(cur, st.Now())}
	}
	return nil
}

func closedStatus(in *store.Input, now time.Time) string {
	if in.Status == store.InputPending && !now.Before(in.ExpiresAt) {
		return store.InputExpired
	}
	return in.Status
}

// CheckAnswer validates an answer to in and returns the content to send:
// for an accepted form, content checked against the requested schema with
// its defaults applied; nothing otherwise.
func CheckAnswer(in *store.Input, action string, content json.RawMessage) (json.RawMessage, error) {
	switch action {
	case mcpclient.ElicitAccept:
	case mcpclient.ElicitDecline, mcpclient.ElicitCancel:
		return nil, nil
	case "":
		return nil, &InvalidAnswerError{Param: "action", Message: "action is required: accept, decline or cancel"}
	default:
		return nil, &InvalidAnswerError{Param: "action", Message: fmt.Sprintf("action must be accept, decline or cancel, not %q", action)}
	}
	if in.Mode != mcpclient.ElicitModeForm {
		if len(strings.TrimSpace(string(content))) > 0 && string(content) != "null" {
			return nil, &InvalidAnswerError{Param: "content", Message: "a URL-mode input takes no content: accept means the user finished at the URL"}
		}
		return nil, nil
	}
	schema, err := elicitform.Parse(in.RequestedSchema)
	if err != nil {
		return nil, &InvalidAnswerError{Param: "content", Message: "the server's requested schema cannot be used: " + err.Error()}
	}
	out, err := schema.Apply(content)
	var ce *elicitform.ContentError
	if errors.As(err, &ce) {
		param := "content"
		if ce.Field != "" {
			param += "." + ce.Field
		}
		return nil, &InvalidAnswerError{Param: param, Message: ce.Error()}
	}
	return out, err
}

// inputSignals wakes the held calls of this process whose input was
// answered.
type inputSignals struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (n *inputSignals) listen(id string) (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]chan struct{}{}
	}
	ch := make(chan struct{}, 1)
	n.m[id] = ch
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.m, id)
	}
}

func (n *inputSignals) signal(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case n.m[id] <- struct{}{}:
	default:
	}
}
