package api

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// maxReasonLength bounds a decision's reason (characters).
const maxReasonLength = 2000

// ApprovalDecision is POST /v1/tasks/{id}/approvals/{approval_id}:
// {"approve": true|false, "reason": "…"}.
type ApprovalDecision struct {
	Tenant     string
	TaskID     string
	ApprovalID string
	Approve    bool
	Reason     string
}

func (r *ApprovalDecision) bind(c *gin.Context) error {
	r.Tenant, r.TaskID, r.ApprovalID = tenantOf(c), c.Param("id"), c.Param("approval_id")
	body, err := readBody(c)
	if err != nil {
		return err
	}
	obj, err := chatreq.ParseObject(body)
	if err != nil {
		return err
	}
	raw, ok := obj["approve"]
	if !ok || chatreq.IsNull(raw) {
		return missing("approve")
	}
	if json.Unmarshal(raw, &r.Approve) != nil {
		return invalid("approve", "approve must be true or false")
	}
	if raw, ok := obj["reason"]; ok && !chatreq.IsNull(raw) {
		if json.Unmarshal(raw, &r.Reason) != nil {
			return invalid("reason", "reason must be a string")
		}
	}
	return checkReason(r.Reason)
}

func checkReason(reason string) error {
	if len([]rune(reason)) > maxReasonLength {
		return invalid("reason", "reason is longer than "+strconv.Itoa(maxReasonLength)+" characters")
	}
	return chatreq.CheckText("reason", reason)
}

// DecideApproval approves or denies one tool call a task holds back, once.
// The last decision resumes the task: approved calls run, denied ones are
// told to the model.
func (a *API) DecideApproval(ctx context.Context, r *ApprovalDecision) (*task.Object, error) {
	o, err := a.cfg.Tasks.Decide(ctx, task.DecideParams{Tenant: r.Tenant, TaskID: r.TaskID, ApprovalID: r.ApprovalID, Approve: r.Approve, Reason: r.Reason})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("approval " + strconv.Quote(r.ApprovalID) + " of task " + strconv.Quote(r.TaskID))
	}
	return o, decisionError(err)
}

// decisionError maps the refusals of task.Service.Decide to 409s.
func decisionError(err error) error {
	switch {
	case errors.Is(err, task.ErrApprovalDecided):
		return &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "approval_already_decided", Message: err.Error()}
	case errors.Is(err, task.ErrApprovalClosed):
		return &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "approval_closed", Message: err.Error()}
	}
	return err
}

// handleApprovalPage serves an approve link. GET only shows what would be
// approved, with Approve and Deny buttons (link scanners and previews must
// not decide); POST, with the form field approve=true or false and an
// optional reason, decides once.
func (a *API) handleApprovalPage(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	ctx := c.Request.Context()
	token := c.Param("token")
	ap, err := a.cfg.Tasks.ApprovalByToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		writeApprovalPage(c, http.StatusNotFound, approvalPage{Title: "Link not found", Message: "This approval link is unknown or its task was deleted."})
		return
	}
	if err != nil {
		a.cfg.Logger.ErrorContext(ctx, "approval page failed", slog.String("error", err.Error()))
		writeApprovalPage(c, http.StatusInternalServerError, approvalPage{Title: "Something went wrong", Message: "Please try again in a moment."})
		return
	}
	page := approvalPage{Tool: ap.Tool, Server: ap.ServerURL, Arguments: prettyJSON(ap.Arguments), Task: ap.TaskID}
	if c.Request.Method == http.MethodGet {
		switch {
		case ap.DecidedAt != nil:
			page.Title, page.Message = "Already decided", decidedMessage(&ap.Approval)
		case ap.Task.Status != task.StatusAwaitingApproval || !a.cfg.Store.Now().Before(ap.ExpiresAt):
			page.Title, page.Message = "No longer waiting", "The task no longer waits for this approval."
		default:
			page.Title, page.Ask = "Approve a tool call?", true
		}
		writeApprovalPage(c, http.StatusOK, page)
		return
	}
	approve, err := strconv.ParseBool(c.PostForm("approve"))
	if err != nil {
		writeApprovalPage(c, http.StatusBadRequest, approvalPage{Title: "Bad request", Message: `The form must send approve=true or approve=false.`})
		return
	}
	reason := strings.TrimSpace(c.PostForm("reason"))
	if err := checkReason(reason); err != nil {
		writeApprovalPage(c, http.StatusBadRequest, approvalPage{Title: "Bad request", Message: err.Error()})
		return
	}
	_, err = a.cfg.Tasks.Decide(ctx, task.DecideParams{Token: token, Approve: approve, Reason: reason})
	switch {
	case errors.Is(err, task.ErrApprovalDecided):
		if cur, lerr := a.cfg.Tasks.ApprovalByToken(ctx, token); lerr == nil {
			page.Message = decidedMessage(&cur.Approval)
		}
		page.Title = "Already decided"
		writeApprovalPage(c, http.StatusConflict, page)
	case errors.Is(err, task.ErrApprovalClosed):
		page.Title, page.Message = "No longer waiting", "The task no longer waits for this approval."
		writeApprovalPage(c, http.StatusConflict, page)
	case errors.Is(err, store.ErrNotFound):
		writeApprovalPage(c, http.StatusNotFound, approvalPage{Title: "Link not found", Message: "This approval link is unknown or its task was deleted."})
	case err != nil:
		a.cfg.Logger.ErrorContext(ctx, "approval decision failed", slog.String("error", err.Error()))
		writeApprovalPage(c, http.StatusInternalServerError, approvalPage{Title: "Something went wrong", Message: "Nothing was decided. Please try again in a moment."})
	case approve:
		page.Title, page.Message = "Approved", "The call was approved; the task goes on."
		writeApprovalPage(c, http.StatusOK, page)
	default:
		page.Title, page.Message = "Denied", "The call was denied; the task goes on without it."
		writeApprovalPage(c, http.StatusOK, page)
	}
}

func decidedMessage(a *store.Approval) string {
	if a.Approved {
		return "This tool call was already approved."
	}
	return "This tool call was already denied."
}

func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

type approvalPage struct {
	Title, Message          string
	Tool, Server, Arguments string
	Task                    string
	// Ask shows the Approve and Deny buttons.
	Ask bool
}

var approvalTemplate = template.Must(template.New("approval").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
pre{background:#f4f4f4;padding:.75rem;overflow:auto}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}
input[type=text]{width:100%;padding:.4rem;margin:.25rem 0 1rem}</style></head><body>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Tool}}<p>Tool <code>{{.Tool}}</code> on <code>{{.Server}}</code>{{if .Task}} (task <code>{{.Task}}</code>){{end}}, with arguments:</p>
<pre>{{.Arguments}}</pre>{{end}}
{{if .Ask}}<form method="post">
<label for="reason">Reason (optional, shown to the model)</label>
<input type="text" id="reason" name="reason" maxlength="2000">
<button type="submit" name="approve" value="true">Approve</button>
<button type="submit" name="approve" value="false">Deny</button>
</form>{{end}}
</body></html>
`))

func writeApprovalPage(c *gin.Context, status int, p approvalPage) {
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	_ = approvalTemplate.Execute(c.Writer, p)
}
