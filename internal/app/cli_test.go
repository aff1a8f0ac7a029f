package app_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// The compose topology: `mcpidp migrate`, then one `mcpidp api` and two
// `mcpidp worker` processes sharing PostgreSQL. Tasks submitted to the API
// run on the workers, and a login finished at the API resumes a task that
// paused on a worker.
func TestSplitAPIAndWorkerProcesses(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	databaseURL := storetest.DatabaseURL(t, storetest.Postgres)
	model := llmtest.NewServer(t)
	mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := processEnv(databaseURL, port, model.URL(),
		"MCPIDP_WEBHOOK_SECRET="+testWebhookSecret,
	)
	hooks := newHookReceiver(t, "")

	// api and worker do not migrate; `migrate` does.
	out, err := runCommand(bin, env, "migrate", "up")
	require.NoError(t, err, out)
	require.Contains(t, out, "migrations are current")

	testenv.StartProcess(t, bin, []string{"api"}, env, testenv.PortReady(port))
	for i := 0; i < 2; i++ {
		testenv.StartProcess(t, bin, []string{"worker"}, env, func() bool { return true })
	}
	e := &testEnv{URL: base}
	status, raw, _ := call(t, "GET", base+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, status, string(raw))

	model.Handle(func(req llmtest.Request) llmtest.Response {
		if len(req.Messages) > 0 && strings.HasPrefix(req.Messages[0].Content, "plain") {
			return llmtest.Response{Content: "done " + req.Messages[0].Content}
		}
		return echoOnce(t)(req)
	})
	var tasks []task
	for i := 0; i < 10; i++ {
		tasks = append(tasks, e.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": fmt.Sprintf("plain %d", i),
			"webhook": map[string]string{"url": hooks.URL}}))
	}
	for _, tk := range tasks {
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
	}
	// The workers work the webhook queue too.
	hooks.wait(t, "task.completed", 9)

	waiting := waitStatus(t, e.submit(t, keyAcme, map[string]any{"user": "v", "model": "m", "input": "login first",
		"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}), "awaiting_authorization")
	status, page := testenv.FollowLogin(t, waiting.AuthorizationRequired[0].AuthorizationURL)
	require.Equal(t, http.StatusOK, status, page)
	done := waitDone(t, waiting)
	require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
	require.Equal(t, []string{"login first"}, mcp.Calls("echo"))
}

// `mcpidp keys create` prints a key (stored hashed) that a running server
// accepts, and the tenant's webhook secret, the same on every call.
func TestKeysCreateCommand(t *testing.T) {
	t.Parallel()
	bin := mcpidpBinary(t)
	databaseURL := storetest.DatabaseURL(t, storetest.SQLite)
	env := []string{"MCPIDP_DATABASE_URL=" + databaseURL}
	keyRe := regexp.MustCompile(`api_key: +(mcpidp_\S+)`)
	secretRe := regexp.MustCompile(`webhook_secret: +(whsec_\S+)`)

	out, err := runCommand(bin, env, "keys", "create", "--tenant", "initech", "--webhook-url", "https://hooks.example.com/x")
	require.NoError(t, err, out)
	key1, secret1 := keyRe.FindStringSubmatch(out), secretRe.FindStringSubmatch(out)
	require.NotNil(t, key1, out)
	require.NotNil(t, secret1, out)
	out, err = runCommand(bin, env, "keys", "create", "--tenant", "initech")
	require.NoError(t, err, out)
	key2, secret2 := keyRe.FindStringSubmatch(out), secretRe.FindStringSubmatch(out)
	require.NotEqual(t, key1[1], key2[1], "a new key each time")
	require.Equal(t, secret1[1], secret2[1], "one webhook secret per tenant")

	out, err = runCommand(bin, env, "keys", "create")
	require.Error(t, err)
	require.Contains(t, out, "--tenant is required")
	out, err = runCommand(bin, env, "serve", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "MCPIDP_DATABASE_URL")
	require.Contains(t, out, "-listen")
	require.Contains(t, out, "MCPIDP_WEBHOOK_WORKERS")
	require.Contains(t, out, "MCPIDP_WEBHOOK_PER_HOST")

	port := testenv.FreePort(t)
	testenv.StartProcess(t, bin, []string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port)}, env, testenv.PortReady(port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, k := range []string{key1[1], key2[1]} {
		status, raw, _ := call(t, "GET", base+"/v1/tasks", k, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
	}
	status, _, _ := call(t, "GET", base+"/v1/tasks", "mcpidp_not-a-key", nil)
	require.Equal(t, http.StatusUnauthorized, status)
}

func runCommand(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
