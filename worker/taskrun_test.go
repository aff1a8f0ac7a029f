package worker_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/task"
	"github.com/mcpidp/mcpidp/worker"
)

// When the last attempt of a segment runs out of time, the task ends as
// failed instead of staying "running" with no job left to finish it.
func TestLastAttemptTimeoutFailsTheTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db := storetest.OpenStore(t, storetest.DatabaseURL(t, storetest.Postgres), nil)
	driver := riverdatabasesql.New(db.SQL)
	migrator, err := rivermigrate.New(driver, nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)

	model := llmtest.NewServer(t)
	model.Enqueue(llmtest.Response{Block: true})
	client, err := llm.New(llm.Config{BaseURL: model.URL()})
	require.NoError(t, err)
	keyring, err := secretbox.ParseKeyring("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	require.NoError(t, err)
	oauth, err := mcpauth.New(mcpauth.Config{Store: st, Keyring: keyring, HTTPClient: http.DefaultClient, PublicURL: "http://localhost"})
	require.NoError(t, err)
	tasks, err := task.NewService(task.ServiceConfig{Store: st, Keyring: keyring, OAuth: oauth,
		RiverFunc: func() *river.Client[*sql.Tx] { return nil }, PublicURL: "http://localhost", Retention: time.Hour})
	require.NoError(t, err)
	runner, err := worker.NewTaskRunner(worker.TaskRunnerConfig{Store: st, Keyring: keyring, Model: client, HTTPClient: http.DefaultClient,
		OAuth: oauth, Tasks: tasks, JobTimeout: 300 * time.Millisecond})
	require.NoError(t, err)

	require.NoError(t, st.UpsertTenant(ctx, st.DB(), "acme", ""))
	req, _ := json.Marshal(task.Request{Body: json.RawMessage(`{"model":"m"}`), Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}, MaxSteps: 3})
	row := &store.Task{TenantID: "acme", UserID: "u", Model: "m", Request: req}
	require.NoError(t, st.CreateTask(ctx, st.DB(), row))

	tw := rivertest.NewWorker(t, driver, &river.Config{}, runner)
	tx, err := db.SQL.BeginTx(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	_, err = tw.Work(ctx, t, tx, task.RunArgs{TaskID: row.ID}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)

	got, err := st.GetTask(ctx, st.DB(), "acme", row.ID)
	require.NoError(t, err)
	require.Equal(t, store.TaskFailed, got.Status)
	require.Contains(t, string(got.Error), `"code":"timeout"`)
	require.Equal(t, 1, model.Canceled(), "the model call was abandoned at the timeout")
}
