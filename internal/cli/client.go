// Package cli is mcpidp's command-line client of its own HTTP API: the
// `mcpidp tasks`, `mcpidp connections` and `mcpidp run FILE.md` commands,
// and the progress display `mcpidp demo` shows too. It speaks only HTTP to
// a running mcpidp, like any other application would.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpidp/mcpidp/api"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// Client calls an mcpidp's HTTP API with one API key.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
}

// NewClient returns a Client of the mcpidp at baseURL. httpClient may be
// nil for http.DefaultClient.
func NewClient(baseURL, apiKey string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, http: httpClient}
}

// APIError is an error answer of the API (the OpenAI error shape).
type APIError struct {
	Status  int
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"`
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Task is the task object as the API returns it; the fields the commands
// read are typed, Raw keeps the whole object for printing.
type Task struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	User       string `json:"user"`
	Model      string `json:"model"`
	CreatedAt  string `json:"created_at"`
	ResultURLs struct {
		Markdown string `json:"markdown"`
		JSON     string `json:"json"`
	} `json:"result_urls"`
	AuthorizationRequired []struct {
		ServerURL        string `json:"server_url"`
		AuthorizationURL string `json:"authorization_url"`
	} `json:"authorization_required"`
	// PendingApprovals are tool calls waiting for someone to approve them.
	PendingApprovals []struct {
		Name       string `json:"name"`
		ServerURL  string `json:"server_url"`
		ApproveURL string `json:"approve_url"`
	} `json:"pending_approvals"`
	// PendingInputs are what MCP servers ask the user (elicitation);
	// FormURL is mcpidp's page where it is answered.
	PendingInputs []struct {
		ServerURL string `json:"server_url"`
		Message   string `json:"message"`
		FormURL   string `json:"form_url"`
	} `json:"pending_inputs"`
	Steps  []Step `json:"steps"`
	Output *struct {
		Content string `json:"content"`
	} `json:"output"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`

	Raw json.RawMessage `json:"-"`
}

// Step is one step of a task: a model turn or a tool call.
type Step struct {
	Type      string `json:"type"`
	Content   string `json:"content"`
	ToolCalls []struct {
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
	ServerURL  string          `json:"server_url"`
	Tool       string          `json:"tool"`
	Arguments  json.RawMessage `json:"arguments"`
	Output     string          `json:"output"`
	IsError    bool            `json:"is_error"`
	DurationMS int64           `json:"duration_ms"`
}

// Ended reports whether the task reached a final status.
func (t *Task) Ended() bool {
	return t.Status == "completed" || t.Status == "failed" || t.Status == "canceled"
}

// TaskList is a page of GET /v1/tasks.
type TaskList struct {
	Data    []Task `json:"data"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

// CreateTask submits a task; body is the POST /v1/tasks request.
func (c *Client) CreateTask(ctx context.Context, body map[string]any) (*Task, error) {
	var t Task
	return &t, c.do(ctx, http.MethodPost, "/v1/tasks", body, &t)
}

// GetTask returns a task with its steps.
func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	var t Task
	return &t, c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil, &t)
}

// ListTasks returns a page of tasks; query holds user, status, limit, after.
func (c *Client) ListTasks(ctx context.Context, query url.Values) (*TaskList, error) {
	var l TaskList
	return &l, c.do(ctx, http.MethodGet, "/v1/tasks?"+query.Encode(), nil, &l)
}

// CancelTask cancels a task.
func (c *Client) CancelTask(ctx context.Context, id string) (*Task, error) {
	var t Task
	return &t, c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/cancel", nil, &t)
}

// Connections lists a user's MCP logins.
func (c *Client) Connections(ctx context.Context, user string) ([]mcpauth.Connection, error) {
	var l api.ConnectionList
	err := c.do(ctx, http.MethodGet, "/v1/connections?"+url.Values{"user": {user}}.Encode(), nil, &l)
	return l.Data, err
}

// Connect starts a login of user to the MCP server ahead of any task.
func (c *Client) Connect(ctx context.Context, user, serverURL string, scopes []string) (*api.ConnectResponse, error) {
	body := map[string]any{"user": user, "server_url": serverURL}
	if len(scopes) > 0 {
		body["scopes"] = scopes
	}
	var l api.ConnectResponse
	return &l, c.do(ctx, http.MethodPost, "/v1/connections", body, &l)
}

// DeleteConnection revokes and forgets a connection.
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/connections/"+url.PathEscape(id), nil, nil)
}

// do sends one request and decodes a 2xx answer into out (a *Task also
// keeps the raw object), or returns the API's error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("error encoding the request: %w", err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, r)
	if err != nil {
		return fmt.Errorf("error making the request: %w", err)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("error calling mcpidp at %s: %w", c.baseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("error reading mcpidp's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &APIError{Status: resp.StatusCode}
		var wrapped struct {
			Error *APIError `json:"error"`
		}
		wrapped.Error = apiErr
		if json.Unmarshal(raw, &wrapped) != nil || apiErr.Message == "" {
			apiErr.Message = strings.TrimSpace(string(raw))
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("error decoding mcpidp's answer to %s %s: %w", method, path, err)
	}
	if t, ok := out.(*Task); ok {
		t.Raw = raw
	}
	return nil
}
