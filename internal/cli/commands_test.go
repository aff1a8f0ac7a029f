package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Help and usage mistakes are answered without calling any server.
func TestRunUsage(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		return map[string]string{"MCPIDP_URL": "http://127.0.0.1:1"}[k] // nothing listens there
	}
	run := func(args ...string) (string, error) {
		var out strings.Builder
		err := Run(context.Background(), args, getenv, &out, &out)
		return out.String(), err
	}
	out, err := run("run", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "Usage: mcpidp run [--user USER] [--model MODEL] FILE.md")
	require.Contains(t, out, "model, user, tools, max_steps, store, metadata, webhook, stop_when")
	require.Contains(t, out, "MCPIDP_URL")
	require.Contains(t, out, DefaultURL)

	_, err = run("tasks", "frob")
	require.EqualError(t, err, "usage: mcpidp tasks create|get|list|wait|cancel")
	_, err = run("connections")
	require.EqualError(t, err, "usage: mcpidp connections list|connect|delete")
	_, err = run("run")
	require.EqualError(t, err, "usage: mcpidp run [--user USER] [--model MODEL] FILE.md (see --help)")
	_, err = run("tasks", "cancel", "a", "b")
	require.EqualError(t, err, "usage: mcpidp tasks cancel ID (see --help)")
	_, err = run("tasks", "list", "--bogus")
	require.ErrorContains(t, err, "flag provided but not defined: -bogus")
	_, err = run("tasks", "create", "--metadata", "[1]", "--user", "u")
	require.ErrorContains(t, err, "--metadata must be a JSON object")

	// A server that is not there is named.
	_, err = run("tasks", "get", "task_1")
	require.ErrorContains(t, err, "error calling mcpidp at http://127.0.0.1:1")
}
