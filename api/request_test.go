package api

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// REVIEW: two tool entries for the same MCP server, spelled differently
// (host case, default port), pass the "listed twice" check, which compares
// raw strings. The worker keys what a paused task waits on by the canonical
// URL (primary key task_id, server_url), so when that server asks for a
// login the pause transaction fails with a unique violation, River retries
// the segment 5 times and the task ends as internal_error instead of
// waiting for the login. The request should be refused with a 400.
func TestSameServerSpelledTwiceIsRefused(t *testing.T) {
	t.Parallel()
	var lim Limits
	lim.ApplyDefaults()
	_, err := parseCreateTask([]byte(`{"user":"u","model":"m","input":"x","tools":[
		{"type":"mcp","url":"https://mcp.example.com/mcp"},
		{"type":"mcp","url":"https://MCP.example.com:443/mcp"}]}`), lim)
	require.Error(t, err, "the same server twice must be a 400")
	require.Equal(t, 400, toError(err).Status)
}
