package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// cliRun runs an mcpidp client command against e as tenant acme and
// returns its stdout, its stderr and its error.
func (e *testEnv) cliRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr testenv.SyncBuffer
	err := e.cliStart(t, &stdout, &stderr, args...)()
	return stdout.String(), stderr.String(), err
}

// cliStart starts a client command and returns a function that waits for
// its end.
func (e *testEnv) cliStart(t *testing.T, stdout, stderr *testenv.SyncBuffer, args ...string) func() error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	env := map[string]string{"MCPIDP_URL": e.URL, "MCPIDP_API_KEY": keyAcme}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, args, func(k string) string { return env[k] }, stdout, stderr) }()
	return func() error {
		defer cancel()
		return <-done
	}
}

var taskIDRe = regexp.MustCompile(`"id": "(task_[a-z0-9]+)"`)

// The tasks commands against a running mcpidp: create prints the task,
// wait follows it and prints the answer, get shows its steps, list finds
// it, cancel cancels a waiting task, and waiting on that one fails.
func TestCLITasks(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		e := startEnv(t, databaseURL)
		mcp := mcptest.New(t, mcptest.StreamableHTTP)
		e.Model.Handle(echoOnce(t))

		out, _, err := e.cliRun(t, "tasks", "create", "--user", "cli-user", "--model", "m", "--input", "hello from the CLI",
			"--tool", mcp.URL, "--metadata", `{"ticket":7}`)
		require.NoError(t, err)
		m := taskIDRe.FindStringSubmatch(out)
		require.NotNil(t, m, out)
		id := m[1]
		require.Contains(t, out, `"ticket": 7`)

		out, progress, err := e.cliRun(t, "tasks", "wait", id)
		require.NoError(t, err, progress)
		require.Equal(t, "Tool said: echo: hello from the CLI\n", out)
		require.Contains(t, progress, "task "+id+": completed")
		require.Equal(t, []string{"hello from the CLI"}, mcp.Calls("echo"))

		out, _, err = e.cliRun(t, "tasks", "get", id)
		require.NoError(t, err)
		var got struct {
			Status string `json:"status"`
			Steps  []struct {
				Type   string `json:"type"`
				Output string `json:"output"`
			} `json:"steps"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got), out)
		require.Equal(t, "completed", got.Status)
		require.Len(t, got.Steps, 3)
		require.Equal(t, "echo: hello from the CLI", got.Steps[1].Output)

		// --wait follows the new task like tasks wait.
		out, progress, err = e.cliRun(t, "tasks", "create", "--wait", "--user", "cli-user", "--model", "m", "--input", "again", "--tool", mcp.URL)
		require.NoError(t, err, progress)
		require.Equal(t, "Tool said: echo: again\n", out)
		require.Regexp(t, `(?s)tool echo returned in \d+ ms: echo: again\n.*: completed\n`, progress)

		out, _, err = e.cliRun(t, "tasks", "list", "--user", "cli-user")
		require.NoError(t, err)
		id2 := regexp.MustCompile(`task (task_\S+): `).FindStringSubmatch(progress)[1]
		require.Regexp(t, `^ID\s+STATUS\s+USER\s+MODEL\s+CREATED\n`+id2+`\s+completed\s+cli-user\s+m\s+\S+\n`+id+`\s+completed\s+cli-user\s+m\s+\S+\n$`, out,
			"a table, newest first")
		out, _, err = e.cliRun(t, "tasks", "list", "--user", "someone-else")
		require.NoError(t, err)
		require.NotContains(t, out, id)

		// A task waiting for a login: cancel it, and waiting on it fails.
		protected, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		waiting := waitStatus(t, e.submit(t, keyAcme, map[string]any{"user": "cli-user", "model": "m", "input": "x",
			"tools": []map[string]any{{"type": "mcp", "url": protected.URL}}}), "awaiting_authorization")
		out, _, err = e.cliRun(t, "tasks", "cancel", waiting.ID)
		require.NoError(t, err)
		require.Equal(t, "task "+waiting.ID+": canceled\n", out)
		out, _, err = e.cliRun(t, "tasks", "wait", waiting.ID)
		require.EqualError(t, err, "task "+waiting.ID+" was canceled")
		require.Empty(t, out)

		// The API's errors reach the user as they are.
		_, _, err = e.cliRun(t, "tasks", "get", "task_nope")
		require.ErrorContains(t, err, "404")
		require.ErrorContains(t, err, `task "task_nope" not found`)
		_, _, err = e.cliRun(t, "tasks", "create", "--model", "m", "--input", "x")
		require.ErrorContains(t, err, "400")
		require.ErrorContains(t, err, "user")
		var stdout, stderr testenv.SyncBuffer
		err = app.Run(context.Background(), []string{"tasks", "list"}, func(k string) string {
			return map[string]string{"MCPIDP_URL": e.URL}[k]
		}, &stdout, &stderr)
		require.ErrorContains(t, err, "401")
		require.ErrorContains(t, err, "(set MCPIDP_API_KEY to an API key of the mcpidp at "+e.URL+")")
		_, _, err = e.cliRun(t, "tasks", "get")
		require.EqualError(t, err, "usage: mcpidp tasks get ID (see --help)")
	})
}

// The connections commands: connect prints a login link, which a browser
// follows; list shows the connection; delete removes it.
func TestCLIConnections(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		e := startEnv(t, databaseURL)
		mcp, as := mcptest.NewProtected(t, mcpauthtest.Config{})

		out, stderr, err := e.cliRun(t, "connections", "connect", "--user", "cli-user", "--server", mcp.URL)
		require.NoError(t, err)
		require.Contains(t, stderr, "open this link to log cli-user in to "+mcp.URL)
		link := strings.TrimSpace(out)
		require.Regexp(t, loginLinkRe, link)
		status, page := testenv.FollowLogin(t, link)
		require.Equal(t, http.StatusOK, status, page)

		out, _, err = e.cliRun(t, "connections", "list", "--user", "cli-user")
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^(\S+)\s+active\s+` + regexp.QuoteMeta(mcp.URL)).FindStringSubmatch(out)
		require.NotNil(t, m, out)

		out, _, err = e.cliRun(t, "connections", "delete", m[1])
		require.NoError(t, err)
		require.Equal(t, "deleted connection "+m[1]+"\n", out)
		require.NotZero(t, as.Count("revoke"), "revoked at the authorization server")
		out, _, err = e.cliRun(t, "connections", "list", "--user", "cli-user")
		require.NoError(t, err)
		require.NotContains(t, out, mcp.URL)

		_, _, err = e.cliRun(t, "connections", "list")
		require.ErrorContains(t, err, "user")
	})
}

// `mcpidp run FILE.md`: the frontmatter gives the task's fields, the body
// its input. Progress, with the login link while the task waits, goes to
// stderr, the answer to stdout; a task that fails makes the command fail.
func TestCLIRunFile(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		e := startEnv(t, databaseURL)
		mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
		dir := t.TempDir()
		file := filepath.Join(dir, "task.md")
		require.NoError(t, os.WriteFile(file, []byte("---\nmodel: m\nuser: file-user\ntools:\n  - "+mcp.URL+
			"\nmax_steps: 4\nstore: true\nmetadata:\n  source: cli\n---\nplease echo this\n"), 0o600))
		e.Model.Handle(func(req llmtest.Request) llmtest.Response {
			if strings.Contains(req.Messages[0].Content, "fail") {
				return llmtest.Response{Status: http.StatusBadRequest, Content: "the model refuses"}
			}
			return echoOnce(t)(req)
		})

		var stdout, stderr testenv.SyncBuffer
		wait := e.cliStart(t, &stdout, &stderr, "run", file)
		link := waitForOutput(t, &stderr, loginLinkRe, nil)
		status, page := testenv.FollowLogin(t, link)
		require.Equal(t, http.StatusOK, status, page)
		require.NoError(t, wait(), stderr.String())
		require.Equal(t, "Tool said: echo: please echo this\n", stdout.String())
		progress := stderr.String()
		require.Regexp(t, `(?s)awaiting_authorization\n  log in to `+regexp.QuoteMeta(mcp.URL)+` to continue:\n.*`+
			`logged in: the task resumes.*tool echo returned in \d+ ms: echo: please echo this.*: completed\n`, progress)
		id := regexp.MustCompile(`task (task_\S+): `).FindStringSubmatch(progress)[1]
		out, _, err := e.cliRun(t, "tasks", "get", id)
		require.NoError(t, err)
		require.Contains(t, out, `"store": true`)
		require.Contains(t, out, `"source": "cli"`)

		// Flags override the frontmatter; a failed task fails the command.
		require.NoError(t, os.WriteFile(file, []byte("---\nmodel: m\nuser: file-user\n---\nplease fail\n"), 0o600))
		out, progress, err = e.cliRun(t, "run", "--user", "flag-user", file)
		require.Error(t, err)
		require.Contains(t, err.Error(), "failed (model_error)")
		require.Empty(t, out)
		require.Contains(t, progress, ": failed\n")
		out, _, err = e.cliRun(t, "tasks", "list", "--user", "flag-user")
		require.NoError(t, err)
		require.Contains(t, out, "failed")

		// A file the API refuses, and one that is not there.
		require.NoError(t, os.WriteFile(file, []byte("---\nuser: file-user\nmax_steps: 100000\nmodel: m\n---\nx\n"), 0o600))
		_, _, err = e.cliRun(t, "run", file)
		require.ErrorContains(t, err, "max_steps")
		require.NoError(t, os.WriteFile(file, []byte("---\nmodel: m\nusr: file-user\n---\nx\n"), 0o600))
		_, _, err = e.cliRun(t, "run", file)
		require.ErrorContains(t, err, file+`: line 3: unknown frontmatter field "usr"; the fields are model, user,`)
		_, _, err = e.cliRun(t, "run", filepath.Join(dir, "missing.md"))
		require.ErrorContains(t, err, "missing.md")
	})
}
