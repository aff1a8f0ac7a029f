package cli

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// taskFields are the task fields a task file's frontmatter (or the flags of
// tasks create) may set, with the API's names.
type taskFields struct {
	Model    string         `yaml:"model"`
	User     string         `yaml:"user"`
	Tools    []any          `yaml:"tools"`
	MaxSteps *int           `yaml:"max_steps"`
	Store    *bool          `yaml:"store"`
	Metadata map[string]any `yaml:"metadata"`
	Webhook  any            `yaml:"webhook"`
	StopWhen []any          `yaml:"stop_when"`
}

// frontmatterFields are the keys taskFields knows, in the order help shows
// them.
var frontmatterFields = []string{"model", "user", "tools", "max_steps", "store", "metadata", "webhook", "stop_when"}

// body is the POST /v1/tasks request with input as its one user message.
func (f *taskFields) body(input string) map[string]any {
	b := map[string]any{"input": input}
	set := func(k string, v any, ok bool) {
		if ok {
			b[k] = v
		}
	}
	set("model", f.Model, f.Model != "")
	set("user", f.User, f.User != "")
	set("tools", f.Tools, len(f.Tools) > 0)
	set("max_steps", f.MaxSteps, f.MaxSteps != nil)
	set("store", f.Store, f.Store != nil)
	set("metadata", f.Metadata, f.Metadata != nil)
	set("webhook", f.Webhook, f.Webhook != nil)
	set("stop_when", f.StopWhen, len(f.StopWhen) > 0)
	return b
}

// parseTaskFile reads a task file: optional YAML frontmatter between "---"
// lines, then the input. A tool may be written as just its URL, and the
// webhook as just its URL.
func parseTaskFile(name string, raw []byte) (*taskFields, string, error) {
	f := &taskFields{}
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	body := text
	if strings.HasPrefix(text, "---\n") {
		rest := text[len("---\n"):]
		end := strings.Index(rest, "\n---\n")
		switch {
		case strings.HasPrefix(rest, "---\n"):
			end, body = 0, rest[len("---\n"):]
		case end >= 0:
			body = rest[end+len("\n---\n"):]
		case strings.HasSuffix(rest, "\n---"):
			end, body = len(rest)-len("\n---"), ""
		default:
			return nil, "", fmt.Errorf("%s: the frontmatter that starts on line 1 has no closing --- line", name)
		}
		if err := decodeFrontmatter(name, []byte(rest[:end]), f); err != nil {
			return nil, "", err
		}
	}
	input := strings.TrimSpace(body)
	if input == "" {
		return nil, "", fmt.Errorf("%s: the body, the task's input, is empty: write what the task should do below the frontmatter", name)
	}
	for i, t := range f.Tools {
		switch t := t.(type) {
		case string:
			f.Tools[i] = map[string]any{"type": "mcp", "url": t}
		case map[string]any:
		default:
			return nil, "", fmt.Errorf("%s: frontmatter: tools[%d] must be an MCP server's URL or a tool object like {type: mcp, url: …}", name, i)
		}
	}
	switch w := f.Webhook.(type) {
	case nil, map[string]any:
	case string:
		f.Webhook = map[string]any{"url": w}
	default:
		return nil, "", fmt.Errorf("%s: frontmatter: webhook must be a URL or {url: …}", name)
	}
	return f, input, nil
}

// decodeFrontmatter decodes the YAML between the "---" lines into f; line
// numbers in its errors count from the file's first line.
func decodeFrontmatter(name string, raw []byte, f *taskFields) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: the frontmatter is not valid YAML (line numbers count from the line after the first ---): %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: the frontmatter must be key: value pairs, like model: gpt-4.1", name, top.Line+1)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key := top.Content[i]
		if !slices.Contains(frontmatterFields, key.Value) {
			return fmt.Errorf("%s: line %d: unknown frontmatter field %q; the fields are %s", name, key.Line+1, key.Value, strings.Join(frontmatterFields, ", "))
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(f); err != nil {
		return fmt.Errorf("%s: frontmatter (line numbers count from the line after the first ---): %w", name, err)
	}
	return nil
}
