package task_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
)

// A held form: AskInput commits awaiting_input with pending_inputs, the
// callback and the webhook; an answer taken by the same process wakes the
// wait at once, however long the poll interval.
func TestAskInputAndWaitWakesOnAnswer(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		params := createParams("")
		params.Request.AuthorizationRequestCallback = "https://app.example.com/cb"
		o, _, err := svc.Create(ctx, params)
		require.NoError(t, err)
		ok, err := b.store.ClaimTask(ctx, b.store.DB(), o.ID, 0, 1)
		require.NoError(t, err)
		require.True(t, ok)
		tk, err := b.store.GetTaskByID(ctx, b.store.DB(), o.ID)
		require.NoError(t, err)

		req := params.Request
		in, err := svc.AskInput(ctx, task.AskParams{Task: tk, Request: &req, ExpiresAt: b.clock.Now().Add(time.Hour),
			Ask: mcpclient.ElicitRequest{ServerURL: "https://mcp.example.com/mcp", Mode: "form", Message: "Name?",
				RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string","default":"Ada"}}}`)}})
		require.NoError(t, err)
		got, err := svc.Get(ctx, task.GetParams{Tenant: "acme", ID: o.ID})
		require.NoError(t, err)
		require.Equal(t, task.StatusAwaitingInput, got.Status)
		var pending []task.PendingInput
		require.NoError(t, json.Unmarshal(got.PendingInputs, &pending))
		require.Len(t, pending, 1)
		require.Equal(t, "https://mcpidp.example.com/r/"+tk.ResultToken+"/inputs/"+in.ID, pending[0].FormURL)
		require.ElementsMatch(t, []string{task.CallbackInputRequired, task.EventInputRequired}, b.events(t, o.ID))

		type result struct {
			res *mcpclient.ElicitResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := svc.WaitInput(ctx, task.WaitInputParams{TaskID: o.ID, InputID: in.ID, PollInterval: time.Hour})
			done <- result{res, err}
		}()
		time.Sleep(100 * time.Millisecond) // the wait has read the row once and sleeps
		_, err = svc.AnswerInput(ctx, task.AnswerParams{Tenant: "acme", TaskID: o.ID, InputID: in.ID, Action: "accept"})
		require.NoError(t, err)
		select {
		case r := <-done:
			require.NoError(t, r.err)
			require.Equal(t, "accept", r.res.Action)
			require.JSONEq(t, `{"name":"Ada"}`, string(r.res.Content), "defaults applied")
		case <-time.After(10 * time.Second):
			t.Fatal("the wait did not wake on the answer")
		}
		after, err := b.store.GetTaskByID(ctx, b.store.DB(), o.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskRunning, after.Status)
		require.Nil(t, after.PendingInputs)
	})
}
