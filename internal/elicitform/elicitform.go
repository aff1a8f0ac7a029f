// Package elicitform owns what mcpidp does with an MCP form elicitation's requestedSchema: it
// checks an answer against the schema and applies the schema's defaults to what the answer leaves
// out (SEP-1034), and it renders the schema as a small HTML form and reads that form back.
//
// The schemas are the restricted ones MCP allows for elicitation (2025-06-18 and 2025-11-25): a
// flat object whose properties are strings (minLength, maxLength, format email, uri, date,
// date-time, enum with optional enumNames, oneOf of const+title), numbers and integers (minimum,
// maximum), booleans, and arrays of enum values (items.enum or items.anyOf of const+title,
// minItems, maxItems), plus the object's "required" list.
package elicitform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSchemaBytes bounds a requestedSchema mcpidp accepts from a server.
const MaxSchemaBytes = 64 << 10

// Schema is a parsed requestedSchema.
type Schema struct {
	Properties []Property
	Required   []string
}

// Property is one field of the form.
type Property struct {
	Name        string
	Type        string // string, number, integer, boolean, array
	Title       string
	Description string
	Format      string
	Default     json.RawMessage
	Options     []Option // enum choices (single select, or the items of an array)
	MinLength   *int
	MaxLength   *int
	Minimum     *float64
	Maximum     *float64
	MinItems    *int
	MaxItems    *int
}

// Option is one choice of an enum.
type Option struct {
	Value string
	Title string
}

// ContentError says what is wrong with an answer; its text names the field.
type ContentError struct {
	Field   string
	Message string
}

func (e *ContentError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("content.%s: %s", e.Field, e.Message)
}

type rawProp struct {
	Type        string            `json:"type"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Format      string            `json:"format"`
	Default     json.RawMessage   `json:"default"`
	Enum        []json.RawMessage `json:"enum"`
	EnumNames   []string          `json:"enumNames"`
	OneOf       []constTitle      `json:"oneOf"`
	AnyOf       []constTitle      `json:"anyOf"`
	Items       *rawProp          `json:"items"`
	MinLength   *int              `json:"minLength"`
	MaxLength   *int              `json:"maxLength"`
	Minimum     *float64          `json:"minimum"`
	Maximum     *float64          `json:"maximum"`
	MinItems    *int              `json:"minItems"`
	MaxItems    *int              `json:"maxItems"`
}

type constTitle struct {
	Const json.RawMessage `json:"const"`
	Title string          `json:"title"`
}

// Parse reads a requestedSchema. Properties keep the schema's order.
func Parse(raw json.RawMessage) (*Schema, error) {
	if len(raw) > MaxSchemaBytes {
		return nil, fmt.Errorf("requested schema is larger than %d bytes", MaxSchemaBytes)
	}
	var top struct {
		Type       string          `json:"type"`
		Properties json.RawMessage `json:"properties"`
		Required   []string        `json:"required"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("requested schema is not a JSON object: %w", err)
	}
	if top.Type != "" && top.Type != "object" {
		return nil, fmt.Errorf("requested schema has type %q, want object", top.Type)
	}
	names, err := orderedKeys(top.Properties)
	if err != nil {
		return nil, fmt.Errorf("requested schema properties: %w", err)
	}
	var props map[string]rawProp
	if len(top.Properties) > 0 {
		if err := json.Unmarshal(top.Properties, &props); err != nil {
			return nil, fmt.Errorf("requested schema properties: %w", err)
		}
	}
	s := &Schema{Required: top.Required}
	for _, name := range names {
		rp := props[name]
		p := Property{Name: name, Type: rp.Type, Title: rp.Title, Description: rp.Description, Format: rp.Format, Default: rp.Default,
			MinLength: rp.MinLength, MaxLength: rp.MaxLength, Minimum: rp.Minimum, Maximum: rp.Maximum, MinItems: rp.MinItems, MaxItems: rp.MaxItems}
		switch rp.Type {
		case "string":
			p.Options = options(rp.Enum, rp.EnumNames, rp.OneOf)
		case "number", "integer", "boolean":
		case "array":
			if rp.Items == nil {
				return nil, fmt.Errorf("requested schema property %q: an array needs items", name)
			}
			p.Options = options(rp.Items.Enum, rp.Items.EnumNames, slices.Concat(rp.Items.AnyOf, rp.Items.OneOf))
			if len(p.Options) == 0 {
				return nil, fmt.Errorf("requested schema property %q: array items must be enum values", name)
			}
		default:
			return nil, fmt.Errorf("requested schema property %q has unsupported type %q", name, rp.Type)
		}
		s.Properties = append(s.Properties, p)
	}
	return s, nil
}

func options(enum []json.RawMessage, names []string, consts []constTitle) []Option {
	var out []Option
	for i, e := range enum {
		var v string
		if json.Unmarshal(e, &v) != nil {
			continue
		}
		o := Option{Value: v, Title: v}
		if i < len(names) && names[i] != "" {
			o.Title = names[i]
		}
		out = append(out, o)
	}
	for _, c := range consts {
		var v string
		if json.Unmarshal(c.Const, &v) != nil {
			continue
		}
		o := Option{Value: v, Title: c.Title}
		if o.Title == "" {
			o.Title = v
		}
		out = append(out, o)
	}
	return out
}

// orderedKeys returns an object's keys in the order they appear.
func orderedKeys(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Apply checks content (a JSON object, or empty for none) against the schema and returns it with
// the defaults of the fields it leaves out. Unknown fields are refused; so is a missing required
// field that has no default.
func (s *Schema) Apply(content json.RawMessage) (json.RawMessage, error) {
	values := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(content); len(t) > 0 && string(t) != "null" {
		if err := json.Unmarshal(t, &values); err != nil {
			return nil, &ContentError{Message: "content must be a JSON object"}
		}
	}
	known := map[string]bool{}
	for _, p := range s.Properties {
		known[p.Name] = true
	}
	unknown := []string{}
	for name := range values {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &ContentError{Field: unknown[0], Message: "is not a field of the requested schema"}
	}
	for _, p := range s.Properties {
		v, ok := values[p.Name]
		if !ok || string(bytes.TrimSpace(v)) == "null" {
			delete(values, p.Name)
			if len(p.Default) > 0 && string(p.Default) != "null" {
				values[p.Name] = p.Default
				continue
			}
			if slices.Contains(s.Required, p.Name) {
				return nil, &ContentError{Field: p.Name, Message: "is required"}
			}
			continue
		}
		if err := p.check(v); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("error encoding content: %w", err)
	}
	return out, nil
}

func (p *Property) check(v json.RawMessage) error {
	fail := func(format string, args ...any) error {
		return &ContentError{Field: p.Name, Message: fmt.Sprintf(format, args...)}
	}
	switch p.Type {
	case "string":
		var s string
		if json.Unmarshal(v, &s) != nil {
			return fail("must be a string")
		}
		n := utf8.RuneCountInString(s)
		if p.MinLength != nil && n < *p.MinLength {
			return fail("must be at least %d characters", *p.MinLength)
		}
		if p.MaxLength != nil && n > *p.MaxLength {
			return fail("must be at most %d characters", *p.MaxLength)
		}
		if len(p.Options) > 0 && !p.hasOption(s) {
			return fail("must be one of %s", p.optionList())
		}
		if err := checkFormat(p.Format, s); err != nil {
			return fail("%v", err)
		}
	case "number", "integer":
		var f float64
		if json.Unmarshal(v, &f) != nil {
			return fail("must be a number")
		}
		if p.Type == "integer" && f != math.Trunc(f) {
			return fail("must be an integer")
		}
		if p.Minimum != nil && f < *p.Minimum {
			return fail("must be at least %v", *p.Minimum)
		}
		if p.Maximum != nil && f > *p.Maximum {
			return fail("must be at most %v", *p.Maximum)
		}
	case "boolean":
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return fail("must be true or false")
		}
	case "array":
		var items []string
		if json.Unmarshal(v, &items) != nil {
			return fail("must be an array of strings")
		}
		if p.MinItems != nil && len(items) < *p.MinItems {
			return fail("must have at least %d items", *p.MinItems)
		}
		if p.MaxItems != nil && len(items) > *p.MaxItems {
			return fail("must have at most %d items", *p.MaxItems)
		}
		for _, it := range items {
			if !p.hasOption(it) {
				return fail("items must be among %s", p.optionList())
			}
		}
	}
	return nil
}

func (p *Property) hasOption(v string) bool {
	return slices.ContainsFunc(p.Options, func(o Option) bool { return o.Value == v })
}

func (p *Property) optionList() string {
	vals := make([]string, len(p.Options))
	for i, o := range p.Options {
		vals[i] = fmt.Sprintf("%q", o.Value)
	}
	return strings.Join(vals, ", ")
}

func checkFormat(format, s string) error {
	switch format {
	case "email":
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			return errors.New("must be an email address")
		}
	case "uri":
		if u, err := url.Parse(s); err != nil || u.Scheme == "" {
			return errors.New("must be an absolute URI")
		}
	case "date":
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return errors.New("must be a date (YYYY-MM-DD)")
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return errors.New("must be an RFC 3339 date-time")
		}
	}
	return nil
}
