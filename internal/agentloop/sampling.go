package agentloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// StepSampling is a model call an MCP server asked for (sampling/createMessage) while one of its
// tools ran. It is answered with the run's model and upstream key, recorded as a step of its own
// (ServerURL, Arguments: the server's request, Content: the answer, Usage), counted in the run's
// usage and toward MaxSteps, and never part of the conversation the run's model sees.
const StepSampling = "sampling"

// maxSamplingMessages bounds the conversation a server may send to be sampled.
const maxSamplingMessages = 100

// ErrSamplingRefused is returned to a server whose sampling request the run will not answer:
// the run is not executing, or has no steps left under MaxSteps.
var ErrSamplingRefused = errors.New("sampling refused")

// Sample answers a server's sampling/createMessage request while the run executes: it is the
// mcpclient.SampleFunc of the run's MCP sessions. Build the Run first, connect with r.Sample, then
// set Tools. The model is called with SampleComplete (default Complete) on a body made of Body's
// model and pass-through fields, the server's messages, system prompt, maxTokens, temperature and
// stop sequences, and no tools.
func (r *Run) Sample(ctx context.Context, req mcpclient.SampleRequest) (json.RawMessage, error) {
	r.mu.Lock()
	out := r.out
	if out == nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: no run is executing", ErrSamplingRefused)
	}
	// A server may send several requests at once: each one in flight holds
	// its step until it is recorded.
	if countTurns(out.Steps)+r.sampling >= r.maxSteps() {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: the run has used all of its %d steps (max_steps)", ErrSamplingRefused, r.maxSteps())
	}
	r.sampling++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.sampling--
		r.mu.Unlock()
	}()

	body, err := r.samplingBody(req.Params)
	if err != nil {
		return nil, err
	}
	complete := r.SampleComplete
	if complete == nil {
		complete = r.Complete
	}
	now := r.now()
	start := now()
	completion, err := complete(ctx, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	if len(completion.Choices) == 0 {
		return nil, fmt.Errorf("%w: the model returned no choices", ErrModel)
	}
	choice := completion.Choices[0]
	st := Step{Type: StepSampling, ServerURL: req.ServerURL, Arguments: withoutBinaryData(req.Params), Content: choice.Message.Content,
		FinishReason: choice.FinishReason, Usage: completion.Usage, DurationMS: now().Sub(start).Milliseconds()}
	if err := r.recordStep(ctx, st); err != nil {
		return nil, err
	}
	result := map[string]any{
		"role":       "assistant",
		"content":    map[string]string{"type": "text", "text": choice.Message.Content},
		"model":      completion.Model,
		"stopReason": stopReason(choice.FinishReason),
	}
	return json.Marshal(result)
}

// samplingBody turns createMessage params into a chat completions body.
func (r *Run) samplingBody(params json.RawMessage) ([]byte, error) {
	var p struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		SystemPrompt  string   `json:"systemPrompt"`
		MaxTokens     *int     `json:"maxTokens"`
		Temperature   *float64 `json:"temperature"`
		StopSequences []string `json:"stopSequences"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("invalid sampling request: %w", err)
	}
	if len(p.Messages) == 0 || len(p.Messages) > maxSamplingMessages {
		return nil, fmt.Errorf("invalid sampling request: it must have 1 to %d messages", maxSamplingMessages)
	}
	var msgs []any
	if p.SystemPrompt != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": p.SystemPrompt})
	}
	for i, m := range p.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, fmt.Errorf("invalid sampling request: message %d has role %q", i, m.Role)
		}
		content, err := samplingContent(m.Content)
		if err != nil {
			return nil, fmt.Errorf("invalid sampling request: message %d: %w", i, err)
		}
		msgs = append(msgs, map[string]any{"role": m.Role, "content": content})
	}
	fields := map[string]any{"messages": msgs, "tools": nil, "tool_choice": nil, "parallel_tool_calls": nil, "stream": nil, "stream_options": nil}
	if p.MaxTokens != nil && *p.MaxTokens > 0 {
		fields["max_tokens"] = *p.MaxTokens
	}
	if p.Temperature != nil {
		fields["temperature"] = *p.Temperature
	}
	if len(p.StopSequences) > 0 {
		fields["stop"] = p.StopSequences
	}
	body := r.Body
	if len(body) == 0 {
		body = json.RawMessage(`{}`)
	}
	out, err := llm.SetFields(body, fields)
	if err != nil {
		return nil, fmt.Errorf("error building sampling request: %w", err)
	}
	return out, nil
}

// samplingContent maps MCP content (one block or an array) to chat content parts: text as text,
// images as data URLs, anything else as a short note.
func samplingContent(raw json.RawMessage) ([]map[string]any, error) {
	var blocks []json.RawMessage
	if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "[") {
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return nil, err
		}
	} else {
		blocks = []json.RawMessage{raw}
	}
	parts := make([]map[string]any, 0, len(blocks))
	for _, b := range blocks {
		var c struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Data     string `json:"data"`
			MIMEType string `json:"mimeType"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, err
		}
		switch {
		case c.Type == "text":
			parts = append(parts, map[string]any{"type": "text", "text": c.Text})
		case c.Type == "image" && mcpclient.ViewableImageType(c.MIMEType) && c.Data != "":
			parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:" + c.MIMEType + ";base64," + c.Data}})
		default:
			parts = append(parts, map[string]any{"type": "text", "text": fmt.Sprintf("[%s content not shown]", c.Type)})
		}
	}
	return parts, nil
}

// stopReason maps a chat finish reason to MCP's.
func stopReason(finish string) string {
	switch finish {
	case "stop", "":
		return "endTurn"
	case "length":
		return "maxTokens"
	}
	return finish
}

// withoutBinaryData is a sampling request's params as a step keeps them:
// the base64 "data" of its messages' images and audio is replaced by its
// size, so a task object does not carry the server's media. Params that do
// not parse are kept as they are.
func withoutBinaryData(params json.RawMessage) json.RawMessage {
	var p map[string]any
	if json.Unmarshal(params, &p) != nil {
		return params
	}
	msgs, _ := p["messages"].([]any)
	changed := false
	strip := func(c any) {
		part, ok := c.(map[string]any)
		if !ok {
			return
		}
		if data, ok := part["data"].(string); ok && data != "" {
			part["data"] = fmt.Sprintf("[%d base64 characters omitted]", len(data))
			changed = true
		}
	}
	for _, m := range msgs {
		msg, ok := m.(map[string]any)
		if !ok {
			continue
		}
		switch c := msg["content"].(type) {
		case []any:
			for _, part := range c {
				strip(part)
			}
		default:
			strip(c)
		}
	}
	if !changed {
		return params
	}
	out, err := json.Marshal(p)
	if err != nil {
		return params
	}
	return out
}
