package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Completion is a chat completion, either decoded from a non-streaming answer or assembled from the
// chunks of a stream. It marshals in the OpenAI "chat.completion" shape.
type Completion struct {
	ID      string   `json:"id"`
	Model   string   `json:"model"`
	Created int64    `json:"created"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`

	// Raw is the upstream's answer as received for Complete, and the assembled completion marshaled
	// in the OpenAI shape for Stream. It is never marshaled itself.
	Raw json.RawMessage `json:"-"`
}

// MarshalJSON adds the "object" field OpenAI clients expect.
func (c Completion) MarshalJSON() ([]byte, error) {
	type plain Completion
	return json.Marshal(struct {
		Object string `json:"object"`
		plain
	}{Object: "chat.completion", plain: plain(c)})
}

// Content returns the message content of the first choice, or "" when there is no choice.
func (c *Completion) Content() string {
	if c == nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Message.Content
}

// Choice is one alternative of a completion.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Message is a chat message as sent to and received from the model.
//
// Content is a plain string. When decoding, a content given as an array of parts (the multimodal
// form) keeps the text of its "text" parts, joined by newlines; other parts are dropped. When
// encoding, an empty Content is written as null if the message carries tool calls (some
// OpenAI-compatible upstreams reject an empty text next to tool calls), and as "" otherwise.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Name       string     `json:"name,omitempty"`
}

// MarshalJSON writes a null content for an assistant message that only carries tool calls.
func (m Message) MarshalJSON() ([]byte, error) {
	type plain Message
	if m.Content == "" && len(m.ToolCalls) > 0 {
		return json.Marshal(struct {
			plain
			Content *string `json:"content"`
		}{plain: plain(m)})
	}
	return json.Marshal(plain(m))
}

// UnmarshalJSON accepts a content that is a string, null, or an array of content parts.
func (m *Message) UnmarshalJSON(data []byte) error {
	type plain Message
	var aux struct {
		plain
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*m = Message(aux.plain)
	content, err := decodeContent(aux.Content)
	if err != nil {
		return err
	}
	m.Content = content
	return nil
}

func decodeContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("error decoding message content: %w", err)
		}
		return s, nil
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf("error decoding message content parts: %w", err)
		}
		texts := make([]string, 0, len(parts))
		for _, p := range parts {
			if p.Type == "text" {
				texts = append(texts, p.Text)
			}
		}
		return strings.Join(texts, "\n"), nil
	default:
		return "", fmt.Errorf("message content must be a string, null or an array of parts, got %.20s", raw)
	}
}

// ToolCall is a function call requested by the model.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function to call and carries its arguments as a JSON text.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Usage counts the tokens of one or more model calls.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Add adds o to u. A nil o adds nothing; u must not be nil.
func (u *Usage) Add(o *Usage) {
	if o == nil {
		return
	}
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.TotalTokens += o.TotalTokens
}

// Chunk is one "chat.completion.chunk" event of a stream.
type Chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object,omitempty"`
	Created int64         `json:"created,omitempty"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is the part of a chunk for one choice index.
type ChunkChoice struct {
	Index        int        `json:"index"`
	Delta        ChunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

// ChunkDelta is what a chunk adds to a choice's message.
type ChunkDelta struct {
	Role      string          `json:"role,omitempty"`
	Content   string          `json:"content,omitempty"`
	ToolCalls []ToolCallDelta `json:"tool_calls,omitempty"`
}

// ToolCallDelta is a fragment of a tool call. Fragments with the same Index belong to the same call:
// the first usually brings ID, Type and Function.Name, the following ones pieces of
// Function.Arguments. Index is -1 when the upstream left it out (some OpenAI-compatible servers do).
type ToolCallDelta struct {
	Index    int               `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function FunctionCallDelta `json:"function"`
}

// UnmarshalJSON records a missing index as -1.
func (d *ToolCallDelta) UnmarshalJSON(data []byte) error {
	type plain ToolCallDelta
	var aux struct {
		plain
		Index *int `json:"index"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*d = ToolCallDelta(aux.plain)
	d.Index = -1
	if aux.Index != nil {
		d.Index = *aux.Index
	}
	return nil
}

// FunctionCallDelta is a fragment of a FunctionCall.
type FunctionCallDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
}
