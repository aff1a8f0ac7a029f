package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
)

// ExerciseInputs runs the conformance suite of the inputs MCP servers ask
// tasks' users for (elicitation) against databases made by databaseURL.
func ExerciseInputs(t *testing.T, databaseURL func(t testing.TB) string) {
	t.Helper()
	ctx := context.Background()

	setup := func(t *testing.T) (*store.Store, *Clock, *store.Task) {
		t.Helper()
		clock := NewClock()
		s, _ := OpenStore(t, databaseURL(t), clock.Now)
		require.NoError(t, s.UpsertTenant(ctx, s.DB(), "acme", ""))
		task := &store.Task{TenantID: "acme", UserID: "alice", Model: "gpt-test", Request: json.RawMessage(`{"messages":[]}`)}
		require.NoError(t, s.CreateTask(ctx, s.DB(), task))
		ok, err := s.ClaimTask(ctx, s.DB(), task.ID, 0, 7)
		require.NoError(t, err)
		require.True(t, ok)
		return s, clock, task
	}
	newInput := func(s *store.Store, taskID string) *store.Input {
		return &store.Input{TaskID: taskID, ServerURL: "https://mcp.example.com/mcp", Mode: "form", Message: "Your name?",
			RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`), ExpiresAt: s.Now().Add(time.Minute)}
	}

	t.Run("AnsweredOnceThenNotExpired", func(t *testing.T) {
		t.Parallel()
		s, _, task := setup(t)
		in := newInput(s, task.ID)
		require.NoError(t, s.CreateInput(ctx, s.DB(), in))
		ok, err := s.SetTaskInputs(ctx, s.DB(), task.ID, store.TaskRunning, store.TaskAwaitingInput, json.RawMessage(`[{"id":"`+in.ID+`"}]`))
		require.NoError(t, err)
		require.True(t, ok)
		got, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskAwaitingInput, got.Status)
		require.JSONEq(t, `[{"id":"`+in.ID+`"}]`, string(got.PendingInputs))

		_, err = s.GetInput(ctx, s.DB(), "task_other", in.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "an input is found only with its task")

		ok, err = s.AnswerInput(ctx, s.DB(), task.ID, in.ID, "accept", json.RawMessage(`{"name":"Ada"}`))
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.AnswerInput(ctx, s.DB(), task.ID, in.ID, "decline", nil)
		require.NoError(t, err)
		require.False(t, ok, "a second answer loses")
		ok, err = s.ExpireInput(ctx, s.DB(), task.ID, in.ID)
		require.NoError(t, err)
		require.False(t, ok, "an answered input does not expire")
		got2, err := s.GetInput(ctx, s.DB(), task.ID, in.ID)
		require.NoError(t, err)
		require.Equal(t, store.InputAnswered, got2.Status)
		require.Equal(t, "accept", got2.Action)
		require.JSONEq(t, `{"name":"Ada"}`, string(got2.Content))
		require.NotNil(t, got2.AnsweredAt)

		ok, err = s.SetTaskInputs(ctx, s.DB(), task.ID, store.TaskAwaitingInput, store.TaskRunning, nil)
		require.NoError(t, err)
		require.True(t, ok)
		got, err = s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskRunning, got.Status)
		require.Nil(t, got.PendingInputs)
	})

	t.Run("ExpiredInputTakesNoAnswer", func(t *testing.T) {
		t.Parallel()
		s, clock, task := setup(t)
		in := newInput(s, task.ID)
		require.NoError(t, s.CreateInput(ctx, s.DB(), in))
		clock.Add(2 * time.Minute)
		ok, err := s.AnswerInput(ctx, s.DB(), task.ID, in.ID, "accept", nil)
		require.NoError(t, err)
		require.False(t, ok, "past its expiry an input takes no answer")
		ok, err = s.ExpireInput(ctx, s.DB(), task.ID, in.ID)
		require.NoError(t, err)
		require.True(t, ok)
	})

	t.Run("RescuedJobReclaimsHeldTask", func(t *testing.T) {
		t.Parallel()
		s, _, task := setup(t)
		in := newInput(s, task.ID)
		require.NoError(t, s.CreateInput(ctx, s.DB(), in))
		ok, err := s.SetTaskInputs(ctx, s.DB(), task.ID, store.TaskRunning, store.TaskAwaitingInput, json.RawMessage(`[]`))
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.ClaimTask(ctx, s.DB(), task.ID, 0, 8)
		require.NoError(t, err)
		require.False(t, ok, "another job cannot take it")
		ok, err = s.ClaimTask(ctx, s.DB(), task.ID, 0, 7)
		require.NoError(t, err)
		require.True(t, ok, "the job that held it takes it back")
		require.NoError(t, s.ExpireTaskInputs(ctx, s.DB(), task.ID))
		got, err := s.GetInput(ctx, s.DB(), task.ID, in.ID)
		require.NoError(t, err)
		require.Equal(t, store.InputExpired, got.Status)
		tk, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskRunning, tk.Status)
		require.Nil(t, tk.PendingInputs)
	})

	t.Run("URLPauseResumesOnce", func(t *testing.T) {
		t.Parallel()
		s, _, task := setup(t)
		in := newInput(s, task.ID)
		in.Mode, in.URL, in.RequestedSchema = "url", "https://example.com/go", nil
		require.NoError(t, s.CreateInput(ctx, s.DB(), in))
		park := store.ParkParams{TaskID: task.ID, Segment: 0, Status: store.TaskAwaitingInput, PendingInputs: json.RawMessage(`[{"id":"` + in.ID + `"}]`)}
		ok, err := s.ParkTask(ctx, s.DB(), park)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.ParkTask(ctx, s.DB(), park)
		require.NoError(t, err)
		require.False(t, ok, "no longer running that segment")
		got, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskAwaitingInput, got.Status)
		require.Equal(t, 1, got.Segment)
		require.JSONEq(t, `[{"id":"`+in.ID+`"}]`, string(got.PendingInputs))
		pending, err := s.PendingTaskInputs(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, in.ID, pending[0].ID)
		require.Equal(t, "https://example.com/go", pending[0].URL)
		ok, err = s.AnswerInput(ctx, s.DB(), task.ID, in.ID, "accept", nil)
		require.NoError(t, err)
		require.True(t, ok)
		accepted, err := s.URLInputAccepted(ctx, s.DB(), task.ID, in.ServerURL, in.URL)
		require.NoError(t, err)
		require.True(t, accepted)
		accepted, err = s.URLInputAccepted(ctx, s.DB(), task.ID, in.ServerURL, "https://example.com/other")
		require.NoError(t, err)
		require.False(t, accepted)

		pending, err = s.PendingTaskInputs(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Empty(t, pending)

		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 0)
		require.NoError(t, err)
		require.False(t, ok, "parked in segment 1, not 0")
		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 1)
		require.NoError(t, err)
		require.True(t, ok)
		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 1)
		require.NoError(t, err)
		require.False(t, ok, "resumed once")
		got, err = s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskQueued, got.Status)
		require.Nil(t, got.PendingInputs)
	})

	t.Run("HeldFormIsNotResumedAsAPause", func(t *testing.T) {
		t.Parallel()
		s, _, task := setup(t)
		ok, err := s.SetTaskInputs(ctx, s.DB(), task.ID, store.TaskRunning, store.TaskAwaitingInput, json.RawMessage(`[]`))
		require.NoError(t, err)
		require.True(t, ok)
		ok, _, err = s.ResumeTask(ctx, s.DB(), task.ID, 0)
		require.NoError(t, err)
		require.False(t, ok, "a job still holds the call")
		got, err := s.GetTaskByID(ctx, s.DB(), task.ID)
		require.NoError(t, err)
		require.Equal(t, store.TaskAwaitingInput, got.Status)
		require.JSONEq(t, `[]`, string(got.PendingInputs), "the held form's list stays")
	})
}
