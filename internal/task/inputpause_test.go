package task_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
)

// A URL input parks the task like any pause (awaiting_input in the next
// segment, nothing running, a pending continuation job, one timeout job,
// callbacks and webhook); the accept that answers the last URL resumes it
// exactly once; a form a later run holds in awaiting_input is neither
// resumed by the park machinery nor failed by the pause's timeout.
func TestPauseForInput(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o := running(t, svc, b)
		req := &task.Request{AuthorizationRequestCallback: "https://app.example.com/cb"}
		expiry := b.clock.Now().Add(time.Hour)
		err := svc.PauseForInput(ctx, task.PauseInputParams{Task: b.task(t, o.ID), Request: req, ExpiresAt: expiry,
			Asks: []mcpclient.ElicitRequest{
				{ServerURL: "https://mcp.example.com/mcp", Mode: "url", Message: "Connect", URL: "https://example.com/a"},
				{ServerURL: "https://mcp.example.com/mcp", Mode: "url", Message: "Verify", URL: "https://example.com/b"},
			}})
		require.NoError(t, err)

		row := b.task(t, o.ID)
		require.Equal(t, task.StatusAwaitingInput, row.Status)
		require.Equal(t, 1, row.Segment)
		var pending []task.PendingInput
		require.NoError(t, json.Unmarshal(row.PendingInputs, &pending))
		require.Len(t, pending, 2)
		require.Equal(t, "https://example.com/a", pending[0].URL)
		parked := b.parked(t, o.ID)
		cont, err := b.river.JobGet(ctx, parked)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStatePending, cont.State, "the continuation waits for the resume")
		timeouts := b.jobs(t, o.ID, "task_input_timeout")
		require.Len(t, timeouts, 1, "one timeout for the pause")
		require.Equal(t, float64(1), timeouts[0].Args["segment"])
		require.ElementsMatch(t, []string{task.CallbackInputRequired, task.CallbackInputRequired, task.EventInputRequired}, b.events(t, o.ID))

		wait, err := svc.TimeoutInput(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 1})
		require.NoError(t, err)
		require.InDelta(t, time.Hour, wait, float64(time.Minute), "not expired yet: snooze until it is")

		answer := func(id, action string) error {
			_, err := svc.AnswerInput(ctx, task.AnswerParams{Tenant: "acme", TaskID: o.ID, InputID: id, Action: action})
			return err
		}
		require.NoError(t, answer(pending[0].ID, "accept"))
		require.Equal(t, task.StatusAwaitingInput, b.task(t, o.ID).Status, "one URL is still pending")
		require.Equal(t, parked, b.parked(t, o.ID))
		require.NoError(t, answer(pending[1].ID, "accept"))
		var closed *task.InputClosedError
		require.ErrorAs(t, answer(pending[1].ID, "accept"), &closed, "answered once")

		row = b.task(t, o.ID)
		require.Equal(t, task.StatusQueued, row.Status)
		require.Equal(t, 1, row.Segment)
		require.Nil(t, row.PendingInputs)
		_, err = b.river.JobGet(ctx, parked)
		require.ErrorIs(t, err, river.ErrNotFound, "the parked job gives way to a fresh one")
		var fresh []job
		for _, j := range b.jobs(t, o.ID, "task_run") {
			if j.Args["segment"] == float64(1) {
				fresh = append(fresh, j)
			}
		}
		require.Len(t, fresh, 1, "exactly one run of the new segment")

		// The resumed run holds a form open in awaiting_input, same segment.
		ok, err := b.store.ClaimTask(ctx, b.store.DB(), o.ID, 1, fresh[0].ID)
		require.NoError(t, err)
		require.True(t, ok)
		_, err = svc.AskInput(ctx, task.AskParams{Task: b.task(t, o.ID), Request: req, ExpiresAt: b.clock.Now().Add(2 * time.Hour),
			Ask: mcpclient.ElicitRequest{ServerURL: "https://mcp.example.com/mcp", Mode: "form", Message: "Name?",
				RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)}})
		require.NoError(t, err)
		b.clock.Add(90 * time.Minute)
		wait, err = svc.TimeoutInput(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 1})
		require.NoError(t, err)
		require.Zero(t, wait)
		require.NoError(t, b.store.InTx(ctx, func(tx *sql.Tx) error {
			locked, err := b.store.GetTaskForUpdate(ctx, tx, o.ID)
			require.NoError(t, err)
			resumed, err := svc.ResumeParkedTx(ctx, tx, b.river, locked)
			require.False(t, resumed, "a held form is not parked")
			return err
		}))
		row = b.task(t, o.ID)
		require.Equal(t, task.StatusAwaitingInput, row.Status, "the pause's timeout leaves the held form alone")
		require.Nil(t, row.Error)
		require.NotNil(t, row.PendingInputs)
	})
}

// Nobody completing a URL in time fails the task with input_timeout, by
// the store's clock, and a late answer is refused.
func TestTimeoutInput(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		svc, b := setup(t, databaseURL)
		o := running(t, svc, b)
		err := svc.PauseForInput(ctx, task.PauseInputParams{Task: b.task(t, o.ID), Request: &task.Request{}, ExpiresAt: b.clock.Now().Add(time.Hour),
			Asks: []mcpclient.ElicitRequest{{ServerURL: "https://mcp.example.com/mcp", Mode: "url", Message: "Connect", URL: "https://example.com/a"}}})
		require.NoError(t, err)
		var pending []task.PendingInput
		require.NoError(t, json.Unmarshal(b.task(t, o.ID).PendingInputs, &pending))
		require.Len(t, pending, 1)
		parked := b.parked(t, o.ID)

		wait, err := svc.TimeoutInput(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 0})
		require.NoError(t, err)
		require.Zero(t, wait, "another segment's timeout does nothing")
		b.clock.Add(time.Hour)
		wait, err = svc.TimeoutInput(ctx, task.TimeoutParams{TaskID: o.ID, Segment: 1})
		require.NoError(t, err)
		require.Zero(t, wait)

		got, err := svc.Get(ctx, task.GetParams{Tenant: "acme", ID: o.ID})
		require.NoError(t, err)
		require.Equal(t, task.StatusFailed, got.Status)
		require.Equal(t, task.CodeInputTimeout, got.Error.Code)
		require.Contains(t, got.Error.Message, "https://example.com/a")
		_, err = b.river.JobGet(ctx, parked)
		require.ErrorIs(t, err, river.ErrNotFound, "the parked job is dropped")
		_, err = svc.AnswerInput(ctx, task.AnswerParams{Tenant: "acme", TaskID: o.ID, InputID: pending[0].ID, Action: "accept"})
		var closed *task.InputClosedError
		require.ErrorAs(t, err, &closed)
	})
}
