package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// AnswerInputRequest is POST /v1/tasks/{id}/inputs/{input_id}.
type AnswerInputRequest struct {
	Tenant  string
	TaskID  string
	InputID string
	Body    []byte
}

func (r *AnswerInputRequest) bind(c *gin.Context) error {
	r.Tenant, r.TaskID, r.InputID = tenantOf(c), c.Param("id"), c.Param("input_id")
	var err error
	r.Body, err = readBody(c)
	return err
}

// AnswerInput answers what a task's MCP server asked its user for:
// {"action":"accept"|"decline"|"cancel","content":{…}}. Accepted content is
// checked against the requested schema, with its defaults applied; a bad
// answer is a 400 and changes nothing, an answered or expired input a 409.
// The job holding the call picks the answer up; the task object is returned.
func (a *API) AnswerInput(ctx context.Context, r *AnswerInputRequest) (*task.Object, error) {
	var body struct {
		Action  string          `json:"action"`
		Content json.RawMessage `json:"content"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, invalid("", "the body must be a JSON object {\"action\": \"accept\" | \"decline\" | \"cancel\", \"content\": {…}}: "+err.Error())
	}
	o, err := a.cfg.Tasks.AnswerInput(ctx, task.AnswerParams{Tenant: r.Tenant, TaskID: r.TaskID, InputID: r.InputID, Action: body.Action, Content: body.Content})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("input " + strconv.Quote(r.InputID) + " of task " + strconv.Quote(r.TaskID))
	}
	return o, inputError(err)
}

// inputError maps the task service's answer errors.
func inputError(err error) error {
	var bad *task.InvalidAnswerError
	var closed *task.InputClosedError
	switch {
	case errors.As(err, &bad):
		return invalid(bad.Param, bad.Message)
	case errors.As(err, &closed):
		return &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "input_closed", Message: closed.Error()}
	}
	return err
}

// handleInputForm serves the form page of a pending input (GET shows it,
// POST submits it) under the task's result token.
func (a *API) handleInputForm(c *gin.Context) {
	ctx := c.Request.Context()
	token, inputID := c.Param("file"), c.Param("input")
	in, err := a.cfg.Tasks.InputByToken(ctx, token, inputID)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(c, notFound("input"))
		return
	}
	if err != nil {
		a.writeError(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	page := elicitform.Page{Message: in.Message, Server: agentloop.Host(in.ServerURL)}
	status := http.StatusOK
	schema := &elicitform.Schema{}
	if in.Mode == mcpclient.ElicitModeForm {
		if schema, err = elicitform.Parse(in.RequestedSchema); err != nil {
			page.Done = "The server's form cannot be shown: " + err.Error()
		}
	} else {
		page.URL = in.URL
	}
	if c.Request.Method == http.MethodPost && page.Done == "" {
		if err := c.Request.ParseForm(); err != nil {
			a.writeError(c, invalid("", "the form could not be read: "+err.Error()))
			return
		}
		action := c.Request.PostForm.Get("_action")
		var content json.RawMessage
		if action == mcpclient.ElicitAccept && in.Mode == mcpclient.ElicitModeForm {
			content, err = schema.FromForm(c.Request.PostForm)
		}
		if err == nil {
			err = a.cfg.Tasks.AnswerInputByToken(ctx, token, task.AnswerParams{InputID: inputID, Action: action, Content: content})
		}
		var bad *task.InvalidAnswerError
		var badField *elicitform.ContentError
		var closed *task.InputClosedError
		switch {
		case err == nil && action == mcpclient.ElicitAccept && in.Mode == mcpclient.ElicitModeURL:
			page.Done = "Thank you: the task goes on."
		case err == nil && action == mcpclient.ElicitAccept:
			page.Done = "Thank you: your answer was sent."
		case err == nil:
			page.Done = "You declined: the server was told."
		case errors.As(err, &bad), errors.As(err, &badField):
			page.Error, page.Values, status = err.Error(), c.Request.PostForm, http.StatusBadRequest
		case errors.As(err, &closed):
			page.Done, status = closed.Error(), http.StatusConflict
		default:
			a.writeError(c, err)
			return
		}
	} else if page.Done == "" && (in.Status != store.InputPending || !a.cfg.Store.Now().Before(in.ExpiresAt)) {
		page.Done = (&task.InputClosedError{ID: in.ID, Status: closedStatus(in)}).Error()
	}
	var b bytes.Buffer
	if err := schema.Render(&b, page); err != nil {
		a.writeError(c, err)
		return
	}
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

func closedStatus(in *store.Input) string {
	if in.Status == store.InputPending {
		return store.InputExpired
	}
	return in.Status
}
