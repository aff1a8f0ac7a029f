package responses

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
)

// inputItem is an input item as read for its translation to chat messages.
type inputItem struct {
	Type        string          `json:"type"`
	Role        string          `json:"role"`
	Content     json.RawMessage `json:"content"`
	ID          string          `json:"id"`
	CallID      string          `json:"call_id"`
	Name        string          `json:"name"`
	Arguments   string          `json:"arguments"`
	Output      json.RawMessage `json:"output"`
	Error       json.RawMessage `json:"error"`
	ServerLabel string          `json:"server_label"`
}

// Messages translates instructions and Responses items to Chat Completions
// messages: instructions become the first system message; message items
// keep their role (developer becomes system, which every OpenAI-compatible
// upstream knows) with text and image parts; function_call and mcp_call
// items become an assistant message's tool calls, answered by tool
// messages (a function_call_output's, or the mcp_call's own output or
// error). Items that only inform the caller (mcp_list_tools, reasoning,
// approval and login items) are left out.
func Messages(instructions *string, items []json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	add := func(v any) {
		raw, _ := json.Marshal(v)
		out = append(out, raw)
	}
	if instructions != nil && *instructions != "" {
		add(map[string]any{"role": "system", "content": *instructions})
	}
	var calls []llm.ToolCall
	var answers []llm.Message // the tool messages of mcp_call items in calls
	flush := func() {
		if len(calls) == 0 {
			return
		}
		add(llm.Message{Role: "assistant", ToolCalls: calls})
		for _, a := range answers {
			add(a)
		}
		calls, answers = nil, nil
	}
	for i, raw := range items {
		param := fmt.Sprintf("input[%d]", i)
		var it inputItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, chatreq.Invalid(param, param+": "+err.Error())
		}
		if it.Type == "" && it.Role != "" {
			it.Type = "message"
		}
		switch it.Type {
		case "message":
			flush()
			m, err := message(param, it)
			if err != nil {
				return nil, err
			}
			add(m)
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return nil, chatreq.Invalid(param, param+": a function_call item needs call_id and name")
			}
			calls = append(calls, llm.ToolCall{ID: it.CallID, Type: "function", Function: llm.FunctionCall{Name: it.Name, Arguments: orEmptyObject(it.Arguments)}})
		case "function_call_output":
			if it.CallID == "" {
				return nil, chatreq.Missing(param + ".call_id")
			}
			flush()
			add(llm.Message{Role: "tool", ToolCallID: it.CallID, Content: outputText(it.Output)})
		case "mcp_call":
			if it.ID == "" || it.Name == "" {
				return nil, chatreq.Invalid(param, param+": an mcp_call item needs id and name")
			}
			name := it.Name
			if it.ServerLabel != "" {
				name = it.ServerLabel + "__" + it.Name
			}
			calls = append(calls, llm.ToolCall{ID: it.ID, Type: "function", Function: llm.FunctionCall{Name: functionName(name), Arguments: orEmptyObject(it.Arguments)}})
			text := outputText(it.Output)
			if msg := errorText(it.Error); msg != "" {
				text = "error: " + msg
			}
			answers = append(answers, llm.Message{Role: "tool", ToolCallID: it.ID, Content: text})
		case "mcp_list_tools", "reasoning", "mcp_approval_request", "mcp_approval_response", TypeAuthorizationRequest:
		default:
			return nil, chatreq.Invalid(param+".type", fmt.Sprintf("%s.type %q is not supported: send message, function_call, function_call_output, mcp_call or mcp_approval_response items", param, it.Type))
		}
	}
	flush()
	return out, nil
}

func orEmptyObject(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}

// outputText is a function_call_output's or mcp_call's output as text: a
// string as it is, an array of parts as their text.
func outputText(raw json.RawMessage) string {
	if raw == nil || chatreq.IsNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var texts []string
		for _, p := range parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
		return strings.Join(texts, "\n")
	}
	return string(raw)
}

// message translates a message item.
func message(param string, it inputItem) (map[string]any, error) {
	role := it.Role
	switch role {
	case "user", "assistant", "system":
	case "developer":
		role = "system"
	case "":
		return nil, chatreq.Missing(param + ".role")
	default:
		return nil, chatreq.Invalid(param+".role", fmt.Sprintf(`%s.role must be "user", "assistant", "system" or "developer", got %q`, param, role))
	}
	if it.Content == nil || chatreq.IsNull(it.Content) {
		return nil, chatreq.Missing(param + ".content")
	}
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		return map[string]any{"role": role, "content": s}, nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		Refusal  string `json:"refusal"`
		ImageURL string `json:"image_url"`
		FileID   string `json:"file_id"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(it.Content, &parts) != nil {
		return nil, chatreq.Invalid(param+".content", param+".content must be a string or an array of content parts")
	}
	var chatParts []map[string]any
	var texts []string
	for j, p := range parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case "input_text", "output_text", "text":
			chatParts = append(chatParts, map[string]any{"type": "text", "text": p.Text})
			texts = append(texts, p.Text)
		case "refusal":
			chatParts = append(chatParts, map[string]any{"type": "text", "text": p.Refusal})
			texts = append(texts, p.Refusal)
		case "input_image":
			if p.ImageURL == "" {
				return nil, chatreq.Invalid(pp, pp+": only images given by image_url (an https or data URL) are supported, not file_id")
			}
			img := map[string]any{"url": p.ImageURL}
			if p.Detail != "" {
				img["detail"] = p.Detail
			}
			chatParts = append(chatParts, map[string]any{"type": "image_url", "image_url": img})
		default:
			return nil, chatreq.Invalid(pp+".type", fmt.Sprintf("%s.type %q is not supported: send input_text, output_text or input_image parts", pp, p.Type))
		}
	}
	if role != "user" || len(chatParts) == len(texts) {
		// Assistant and system messages take text only on many upstreams.
		return map[string]any{"role": role, "content": strings.Join(texts, "\n")}, nil
	}
	return map[string]any{"role": role, "content": chatParts}, nil
}

// functionName makes name a valid function name for the history of an
// MCP call: [a-zA-Z0-9_-], at most 64 characters.
func functionName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// errorText is an mcp_call error's text: a string, or an error object's
// message or content.
func errorText(raw json.RawMessage) string {
	if raw == nil || chatreq.IsNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var e struct {
		Message string          `json:"message"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &e) == nil {
		if e.Message != "" {
			return e.Message
		}
		if t := outputText(e.Content); t != "" {
			return t
		}
	}
	return string(raw)
}
