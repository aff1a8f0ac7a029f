package worker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// elicitFunc answers a task's MCP server asking its user for input. Form
// mode: the call stays open while the task shows awaiting_input; the answer
// comes through the API or the form page (any process, via the database),
// or the hold ends and the server is told the user declined. URL mode: the
// server is answered cancel, and the call ends as refused (urlTools), so
// the task pauses durably until the user is done at the URL and sends the
// call again then.
//
// A task waits for one form at a time: forms a server sends at once (each
// server request has its own goroutine) are asked one after the other.
//
// runCtx is the segment's: its deadline (MCPIDP_JOB_TIMEOUT) bounds the hold.
func (w *TaskRunner) elicitFunc(runCtx context.Context, t *store.Task, req *task.Request, urls *urlAsks) mcpclient.ElicitFunc {
	turn := make(chan struct{}, 1) // held while a form waits for its answer
	return func(ctx context.Context, ask mcpclient.ElicitRequest) (*mcpclient.ElicitResult, error) {
		if ask.Mode != mcpclient.ElicitModeForm {
			// The call sent again after the pause asks for the URL the user
			// completed: they are done there.
			done, err := w.cfg.Store.URLInputAccepted(ctx, w.cfg.Store.DB(), t.ID, ask.ServerURL, ask.URL)
			if err != nil {
				return nil, err
			}
			if done {
				return &mcpclient.ElicitResult{Action: mcpclient.ElicitAccept}, nil
			}
			urls.add(ask)
			return &mcpclient.ElicitResult{Action: mcpclient.ElicitCancel}, nil
		}
		if _, err := elicitform.Parse(ask.RequestedSchema); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(runCtx, cancel) // the segment ended: nobody holds the call
		defer stop()
		select {
		case turn <- struct{}{}:
			defer func() { <-turn }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		hold := w.cfg.ElicitationHold
		if deadline, ok := runCtx.Deadline(); ok {
			// Leave the segment a tenth of what is left to go on after the answer.
			hold = min(hold, time.Until(deadline)*9/10)
		}
		in, err := w.cfg.Tasks.AskInput(ctx, task.AskParams{Task: t, Request: req, Ask: ask, ExpiresAt: w.cfg.Store.Now().Add(hold)})
		if err != nil {
			return nil, err
		}
		return w.cfg.Tasks.WaitInput(ctx, task.WaitInputParams{TaskID: t.ID, InputID: in.ID, PollInterval: w.cfg.InputPollInterval})
	}
}

// urlAsks collects the URL elicitations servers send during a tool call.
type urlAsks struct {
	mu   sync.Mutex
	asks []mcpclient.ElicitRequest
}

func (u *urlAsks) add(a mcpclient.ElicitRequest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asks = append(u.asks, a)
}

func (u *urlAsks) take() []mcpclient.ElicitRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	a := u.asks
	u.asks = nil
	return a
}

// urlTools ends a tool call during which a server asked for a URL
// elicitation as refused (*mcpclient.URLElicitationRequiredError), the way
// the server's own -32042 answer does: the task pauses, and the call is
// sent again after the user is done.
type urlTools struct {
	agentloop.Tools
	urls *urlAsks
}

func (t *urlTools) Call(ctx context.Context, function string, arguments json.RawMessage) (*agentloop.ToolResult, error) {
	t.urls.take()
	res, err := t.Tools.Call(ctx, function, arguments)
	if asks := t.urls.take(); len(asks) > 0 {
		return nil, &mcpclient.URLElicitationRequiredError{ServerURL: asks[0].ServerURL, Elicitations: asks}
	}
	return res, err
}

// SafeToRepeat passes the inner tools' hints on.
func (t *urlTools) SafeToRepeat(function string) bool {
	rc, ok := t.Tools.(agentloop.RepeatChecker)
	return ok && rc.SafeToRepeat(function)
}

// ReadOnly passes the inner tools' readOnlyHint on, which require_approval
// "auto" reads: without it every tool would look like a writer.
func (t *urlTools) ReadOnly(function string) bool {
	ro, ok := t.Tools.(agentloop.ReadOnlyChecker)
	return ok && ro.ReadOnly(function)
}
