package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Limits bound what one request may ask for; see chatreq.Limits for the
// fields and their defaults.
type Limits = chatreq.Limits

// DefaultMaxSteps is used when a request names none.
const DefaultMaxSteps = chatreq.DefaultMaxSteps

// taskFields are the fields of a task request that mcpidp consumes; every
// other top-level field passes through to the model.
var taskFields = []string{
	"user", "messages", "input", "tools", "store",
	"authorizationRequestCallback", "authorization_request_callback",
	"webhook", "max_steps", "stop_when", "metadata", "stream",
}

// createTaskRequest is a parsed, validated POST /v1/tasks body.
type createTaskRequest struct {
	User     string
	Model    string
	Store    bool
	Metadata json.RawMessage
	Request  task.Request
	Headers  map[string]map[string]string
	// ConnectURLs are the secret full URLs of servers whose URL has a
	// query (sealed, like Headers).
	ConnectURLs map[string]string
}

func parseObject(body []byte) (map[string]json.RawMessage, error) { return chatreq.ParseObject(body) }

func parseCreateTask(body []byte, lim Limits) (*createTaskRequest, error) {
	obj, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	cl := chatreq.Limits(lim)
	out := &createTaskRequest{}
	if out.User, err = requiredString(obj, "user", lim.MaxUserLength); err != nil {
		return nil, err
	}
	if out.Model, err = requiredString(obj, "model", 256); err != nil {
		return nil, err
	}
	msgs, err := chatreq.ParseMessages(obj, cl, true)
	if err != nil {
		return nil, err
	}
	out.Request.Messages = msgs
	if raw, ok := obj["store"]; ok {
		if err := json.Unmarshal(raw, &out.Store); err != nil {
			return nil, invalid("store", "store must be true or false")
		}
	}
	tools, err := chatreq.ParseTools(obj["tools"], cl, false)
	if err != nil {
		return nil, err
	}
	for _, t := range tools.MCP {
		srv := task.Server{URL: t.URL, AllowedTools: t.AllowedTools, HeaderNames: sortedKeys(t.Headers)}
		if p, ok := tools.Approvals[t.URL]; ok {
			srv.RequireApproval = &p
		}
		out.Request.Servers = append(out.Request.Servers, srv)
		if len(t.Headers) > 0 {
			if out.Headers == nil {
				out.Headers = map[string]map[string]string{}
			}
			out.Headers[t.URL] = t.Headers
		}
		if t.ConnectURL != "" {
			if out.ConnectURLs == nil {
				out.ConnectURLs = map[string]string{}
			}
			out.ConnectURLs[t.URL] = t.ConnectURL
		}
	}
	if out.Request.MaxSteps, err = chatreq.ParseMaxSteps(obj["max_steps"], cl); err != nil {
		return nil, err
	}
	if out.Request.StopWhen, err = chatreq.ParseStopWhen(obj["stop_when"], cl); err != nil {
		return nil, err
	}
	cb := obj["authorizationRequestCallback"]
	if cb == nil {
		cb = obj["authorization_request_callback"]
	}
	if cb != nil && string(cb) != "null" {
		var u string
		if json.Unmarshal(cb, &u) != nil {
			return nil, invalid("authorizationRequestCallback", "authorizationRequestCallback must be a URL string")
		}
		if _, err := netguard.ValidateURL(u); err != nil {
			return nil, invalid("authorizationRequestCallback", "authorizationRequestCallback: "+err.Error())
		}
		out.Request.AuthorizationRequestCallback = u
	}
	if raw, ok := obj["webhook"]; ok && string(raw) != "null" {
		var wh task.Webhook
		if json.Unmarshal(raw, &wh) != nil || wh.URL == "" {
			return nil, invalid("webhook", `webhook must be an object like {"url":"https://…"}`)
		}
		if _, err := netguard.ValidateURL(wh.URL); err != nil {
			return nil, invalid("webhook.url", "webhook.url: "+err.Error())
		}
		out.Request.Webhook = &wh
	}
	if raw, ok := obj["metadata"]; ok && string(raw) != "null" {
		if len(raw) > lim.MaxMetadata {
			return nil, invalid("metadata", fmt.Sprintf("metadata is larger than %d bytes", lim.MaxMetadata))
		}
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			return nil, invalid("metadata", "metadata must be a JSON object")
		}
		// Receivers often keep metadata in JSON columns that refuse \u0000.
		if err := chatreq.CheckJSONText("metadata", m); err != nil {
			return nil, err
		}
		out.Metadata = raw
	}
	// Everything else passes through to the model untouched.
	if out.Request.Body, err = llm.WithoutFields(body, taskFields...); err != nil {
		return nil, chatreq.InvalidJSON(err.Error())
	}
	return out, nil
}

func requiredString(obj map[string]json.RawMessage, name string, maxLen int) (string, error) {
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return "", missing(name)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", invalid(name, name+" must be a string")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid(name, name+" must not be empty")
	}
	if err := chatreq.CheckText(name, s); err != nil {
		return "", err
	}
	if len(s) > maxLen {
		return "", invalid(name, fmt.Sprintf("%s is longer than %d characters", name, maxLen))
	}
	return s, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
