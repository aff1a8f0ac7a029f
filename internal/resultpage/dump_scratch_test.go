package resultpage

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

func TestScratchDump(t *testing.T) {
	for _, st := range []string{"completed", "running", "awaiting_authorization"} {
		o := sampleTask(store.TaskStatus(st))
		_, body := render(t, o, nil)
		os.WriteFile("/tmp/htmlpage-"+st+".html", []byte(body), 0o644)
	}
	o := sampleTask("awaiting_approval")
	o.AuthorizationRequired = json.RawMessage(`[{"server_url":"https://mcp.notion.com/mcp","authorization_url":"https://x.example.com/oauth/start/1","expires_at":"2026-12-03T10:00:00Z"}]`)
	src := withPending{Object: o,
		PendingApprovals: []map[string]any{{"id": "appr_1", "server_url": "https://mcp.linear.app/mcp", "name": "delete_issue",
			"arguments": map[string]any{"id": "LIN-42"}, "approve_url": publicURL + "/approve/appr_1", "expires_at": "2026-12-02T10:30:00Z"}},
		PendingInputs: []map[string]any{{"id": "in_1", "server_url": "https://mcp.github.com/mcp", "mode": "form", "message": "Which repository should I use?",
			"form_url": publicURL + "/input/in_1", "expires_at": "2026-12-02T10:30:00Z"},
			{"id": "in_2", "server_url": "https://mcp.github.com/mcp", "mode": "url", "message": "Confirm the device code on GitHub",
				"url": "https://github.com/login/device"}}}
	_, body := render(t, o, src)
	os.WriteFile("/tmp/htmlpage-approval.html", []byte(body), 0o644)
	f := sampleTask("failed")
	f.Error = &task.Error{Code: "authorization_timeout", Message: "nobody logged in to mcp.notion.com within 24h0m0s"}
	_, body = render(t, f, nil)
	os.WriteFile("/tmp/htmlpage-failed.html", []byte(body), 0o644)
}
