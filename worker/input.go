package worker

import (
	"context"
	"time"

	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// elicitFunc answers a task's MCP server asking its user for input. Form
// mode: the call stays open while the task shows awaiting_input; the answer
// comes through the API or the form page (any process, via the database),
// or the hold ends and the server is told the user declined. URL mode is
// declined: the server may ask again through the error path
// (URLElicitationRequired), which is not supported yet.
//
// runCtx is the segment's: its deadline (MCPIDP_JOB_TIMEOUT) bounds the hold.
func (w *TaskRunner) elicitFunc(runCtx context.Context, t *store.Task, req *task.Request) mcpclient.ElicitFunc {
	return func(ctx context.Context, ask mcpclient.ElicitRequest) (*mcpclient.ElicitResult, error) {
		if ask.Mode != mcpclient.ElicitModeForm {
			return &mcpclient.ElicitResult{Action: mcpclient.ElicitDecline}, nil
		}
		if _, err := elicitform.Parse(ask.RequestedSchema); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(runCtx, cancel) // the segment ended: nobody holds the call
		defer stop()
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
