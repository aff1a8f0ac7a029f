package app_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// REVIEW: a login link was meant to be valid "as long as the task or
// connection request waits". After the user has logged in, the task has
// resumed and nothing waits, yet the same link still starts a login, and
// whoever completes it (with any account at the MCP server) replaces the
// user's connection. Login links are shown on the public result page and
// sent by email, so they travel further than the user.
func TestUsedLoginLinkCannotReplaceTheConnection(t *testing.T) {
	t.Parallel()
	env := startEnv(t, storetest.DatabaseURL(t, storetest.SQLite))
	mcp, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	env.Model.Handle(echoOnce(t))
	tk := waitStatus(t, env.submit(t, keyAcme, map[string]any{"user": "hana", "model": "m", "input": "x",
		"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}}), "awaiting_authorization")
	link := tk.AuthorizationRequired[0].AuthorizationURL
	status, page := testenv.FollowLogin(t, link)
	require.Equal(t, http.StatusOK, status, page)
	require.Equal(t, "completed", waitDone(t, tk).Status)

	status, raw, _ := call(t, "GET", env.URL+"/v1/connections?user=hana", keyAcme, nil)
	require.Equal(t, http.StatusOK, status)
	var before struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &before))
	require.Len(t, before.Data, 1)

	// Someone else opens the same link later.
	status, page = testenv.FollowLogin(t, link)
	require.NotEqual(t, http.StatusOK, status, "a used login link logged someone in again as hana: %s", page)
}
