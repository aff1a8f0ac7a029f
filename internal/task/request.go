package task

import (
	"encoding/json"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
)

// Request is the normalized task request kept in mcpidp_task.request.
// Secrets (MCP headers, upstream key) are not in it: they are sealed in
// mcpidp_task.secrets.
type Request struct {
	// Body is the model request without messages and tools: "model" and
	// every pass-through field the caller sent.
	Body     json.RawMessage           `json:"body"`
	Messages []json.RawMessage         `json:"messages"`
	Servers  []Server                  `json:"servers,omitempty"`
	MaxSteps int                       `json:"max_steps"`
	StopWhen []agentloop.StopCondition `json:"stop_when,omitempty"`
	// ClientTools are the caller's own function tools (a background
	// response's): a call to one ends the run, and the caller answers it
	// in a new request.
	ClientTools []json.RawMessage `json:"client_tools,omitempty"`
	// MaxToolCalls bounds the MCP tool calls of the task; 0 is no bound
	// besides MaxSteps.
	MaxToolCalls int `json:"max_tool_calls,omitempty"`
	// AuthorizationRequestCallback receives login links (signed POST).
	AuthorizationRequestCallback string   `json:"authorization_request_callback,omitempty"`
	Webhook                      *Webhook `json:"webhook,omitempty"`
}

// Server is one MCP server of a task.
type Server struct {
	// URL names the server, without userinfo and with any query string
	// redacted; the full URL is sealed in Secrets.ConnectURLs.
	URL          string   `json:"url"`
	AllowedTools []string `json:"allowed_tools,omitempty"`
	// HeaderNames lists the caller's extra headers; values are sealed.
	HeaderNames []string `json:"header_names,omitempty"`
	// RequireApproval holds tool calls back for a person; nil: never.
	RequireApproval *agentloop.ApprovalPolicy `json:"require_approval,omitempty"`
}

// Webhook is where task events are delivered.
type Webhook struct {
	URL string `json:"url"`
}

// Secrets is sealed into mcpidp_task.secrets with the task id as
// associated data, so a sealed blob cannot be moved to another task.
type Secrets struct {
	// Headers by server URL.
	Headers map[string]map[string]string `json:"headers,omitempty"`
	// ConnectURLs are the URLs to dial, by server URL, for servers whose
	// URL carries a query string: Server.URL keeps it only redacted
	// ("https://mcp.example.com/mcp?…"), as it may hold a key.
	ConnectURLs map[string]string `json:"connect_urls,omitempty"`
	// UpstreamAuthorization is the caller's own model key, if it sent one.
	UpstreamAuthorization string `json:"upstream_authorization,omitempty"`
}

// Output is the task object's "output".
type Output struct {
	Content    string `json:"content"`
	Markdown   string `json:"markdown"`
	StopReason string `json:"stop_reason,omitempty"`
}

// Error is the task object's "error".
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// AuthorizationRequest is one login a task needs.
type AuthorizationRequest struct {
	ServerURL        string    `json:"server_url"`
	AuthorizationURL string    `json:"authorization_url"`
	ExpiresAt        time.Time `json:"expires_at"`
}
