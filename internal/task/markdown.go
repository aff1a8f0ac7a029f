package task

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
)

// Markdown renders a task for people: status, the conversation, the
// login links while it waits, and the answer.
func Markdown(o *Object) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Task %s\n\n**Status:** %s  \n**Model:** %s  \n**Created:** %s\n\n", o.ID, o.Status, o.Model, o.CreatedAt.Format(time.RFC3339))
	if o.RetryingAt != nil {
		fmt.Fprintf(&b, "_The model failed for now; the task tries it again at %s._\n\n", o.RetryingAt.Format(time.RFC3339))
	}
	var logins []struct {
		ServerURL        string `json:"server_url"`
		AuthorizationURL string `json:"authorization_url"`
	}
	_ = json.Unmarshal(o.AuthorizationRequired, &logins)
	if o.Status == StatusAwaitingAuthorization && len(logins) > 0 {
		b.WriteString("## Login required\n\n")
		for _, l := range logins {
			b.WriteString("- " + agentloop.LoginMarkdown(l.ServerURL, l.AuthorizationURL) + "\n")
		}
		b.WriteString("\n")
	}
	if o.Status == StatusAwaitingApproval && len(o.PendingApprovals) > 0 {
		b.WriteString("## Approval required\n\n")
		for _, a := range o.PendingApprovals {
			fmt.Fprintf(&b, "- `%s` on %s (id `%s`), arguments `%s`: [approve or deny](%s) before %s\n",
				a.Name, a.ServerURL, a.ID, a.Arguments, a.ApproveURL, a.ExpiresAt.Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	var inputs []PendingInput
	_ = json.Unmarshal(o.PendingInputs, &inputs)
	if o.Status == StatusAwaitingInput && len(inputs) > 0 {
		b.WriteString("## Input requested\n\n")
		for _, in := range inputs {
			// A URL input resumes the task once the user says they are done,
			// which mcpidp's page for it asks.
			action := fmt.Sprintf("[answer here](%s)", in.FormURL)
			if in.Mode == "url" {
				action = fmt.Sprintf("open <%s>, then [say you are done](%s)", in.URL, in.FormURL)
			}
			fmt.Fprintf(&b, "- %s asks: %s — %s (until %s)\n", agentloop.Host(in.ServerURL), strings.TrimSpace(in.Message), action, in.ExpiresAt.Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Conversation\n\n")
	for _, raw := range o.Initial {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		var text string
		if json.Unmarshal(m.Content, &text) != nil {
			text = string(m.Content)
		}
		fmt.Fprintf(&b, "**%s:** %s\n\n", m.Role, strings.TrimSpace(text))
	}
	if len(o.Steps) > 0 {
		b.WriteString(agentloop.Markdown(o.Steps))
		b.WriteString("\n")
	}
	switch {
	case o.Output != nil && o.Status == StatusCompleted:
		b.WriteString("## Answer\n\n")
		b.WriteString(strings.TrimSpace(o.Output.Content))
		b.WriteString("\n")
	case o.Error != nil:
		fmt.Fprintf(&b, "## Error\n\n`%s`: %s\n", o.Error.Code, o.Error.Message)
	case !o.Status.Terminal():
		b.WriteString("_The task is not finished yet. Add `?wait=30` to this URL to wait for it._\n")
	}
	return b.String()
}
