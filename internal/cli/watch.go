package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Watcher follows a task until it ends, writing its progress as it
// happens: status changes, each new step, and the login and approval links
// the task waits on.
type Watcher struct {
	// Client is the API client.
	Client *Client
	// Progress receives the progress lines.
	Progress io.Writer
	// Interval is the time between two looks at the task; default 500ms.
	Interval time.Duration
}

// Wait follows the task id until it is completed, failed or canceled, and
// returns it.
func (w *Watcher) Wait(ctx context.Context, id string) (*Task, error) {
	interval := w.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	var p progress
	for {
		t, err := w.Client.GetTask(ctx, id)
		if err != nil {
			return nil, err
		}
		p.report(w.Progress, t)
		if t.Ended() {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// progress is what a Watcher has shown of a task so far.
type progress struct {
	status string
	steps  int
	shown  map[string]bool // login, approval and input links
}

// report writes what changed in t since the last report: the new status,
// the new steps, and the links it waits on that were not shown yet.
func (p *progress) report(out io.Writer, t *Task) {
	if p.shown == nil {
		p.shown = map[string]bool{}
	}
	changed := t.Status != p.status
	switch {
	case changed && p.status == "awaiting_authorization":
		fmt.Fprintln(out, "  logged in: the task resumes")
	case changed && p.status == "awaiting_approval":
		fmt.Fprintln(out, "  decided: the task resumes")
	case changed && p.status == "awaiting_input":
		fmt.Fprintln(out, "  answered: the task resumes")
	}
	if changed && !t.Ended() {
		fmt.Fprintf(out, "task %s: %s\n", t.ID, t.Status)
	}
	for ; p.steps < len(t.Steps); p.steps++ {
		fmt.Fprintln(out, "  "+describeStep(t.Steps[p.steps]))
	}
	if t.Status == "awaiting_authorization" {
		for _, a := range t.AuthorizationRequired {
			if !p.shown[a.AuthorizationURL] {
				p.shown[a.AuthorizationURL] = true
				fmt.Fprintf(out, "  log in to %s to continue:\n    %s\n", a.ServerURL, a.AuthorizationURL)
			}
		}
	}
	for _, a := range t.PendingApprovals {
		if a.ApproveURL != "" && !p.shown[a.ApproveURL] {
			p.shown[a.ApproveURL] = true
			fmt.Fprintf(out, "  approve the call of %s on %s to continue:\n    %s\n", a.Name, a.ServerURL, a.ApproveURL)
		}
	}
	for _, in := range t.PendingInputs {
		if in.FormURL != "" && !p.shown[in.FormURL] {
			p.shown[in.FormURL] = true
			fmt.Fprintf(out, "  %s asks: %s Answer to continue:\n    %s\n", in.ServerURL, oneLine(in.Message, 160), in.FormURL)
		}
	}
	if changed && t.Ended() {
		fmt.Fprintf(out, "task %s: %s\n", t.ID, t.Status)
	}
	p.status = t.Status
}

// describeStep is one line about a step.
func describeStep(s Step) string {
	switch s.Type {
	case "model":
		if len(s.ToolCalls) > 0 {
			calls := make([]string, len(s.ToolCalls))
			for i, c := range s.ToolCalls {
				calls[i] = c.Function.Name + "(" + oneLine(c.Function.Arguments, 80) + ")"
			}
			return "model calls " + strings.Join(calls, ", ")
		}
		return "model: " + oneLine(s.Content, 160)
	case "tool":
		verb := "returned"
		if s.IsError {
			verb = "failed"
		}
		return fmt.Sprintf("tool %s %s in %d ms: %s", s.Tool, verb, s.DurationMS, oneLine(s.Output, 160))
	case "sampling":
		return fmt.Sprintf("sampling for %s in %d ms: %s", s.ServerURL, s.DurationMS, oneLine(s.Content, 160))
	}
	raw, _ := json.Marshal(s)
	return s.Type + " " + oneLine(string(raw), 160)
}

// oneLine squeezes s onto one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Finish reports how a watched task ended: the answer on out, and an error
// (for a non-zero exit) when it failed or was canceled.
func Finish(t *Task, out io.Writer) error {
	switch t.Status {
	case "completed":
		if t.Output != nil {
			fmt.Fprintln(out, t.Output.Content)
		}
		return nil
	case "failed":
		if t.Error != nil {
			return fmt.Errorf("task %s failed (%s): %s", t.ID, t.Error.Code, t.Error.Message)
		}
		return fmt.Errorf("task %s failed", t.ID)
	}
	return fmt.Errorf("task %s was %s", t.ID, t.Status)
}
