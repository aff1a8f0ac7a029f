package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// SetFields sets, replaces or deletes top-level fields of the JSON object body and returns the new
// object. Every other field keeps its raw bytes and its position, so fields mcpidp does not know
// reach the upstream exactly as the client wrote them.
//
// A value of untyped nil deletes the field. A json.RawMessage value is written as is (it must be
// valid JSON); any other value is marshaled with encoding/json, without HTML escaping. A replaced
// field stays where it was (later duplicates of its key are dropped); new fields are appended in
// key order so the output is deterministic.
func SetFields(body []byte, fields map[string]any) ([]byte, error) {
	members, err := splitObject(body)
	if err != nil {
		return nil, err
	}

	encoded := make(map[string][]byte, len(fields))
	for key, value := range fields {
		if value == nil {
			continue
		}
		raw, err := marshalValue(value)
		if err != nil {
			return nil, fmt.Errorf("error encoding field %q: %w", key, err)
		}
		encoded[key] = raw
	}

	var out bytes.Buffer
	out.Grow(len(body) + 64)
	out.WriteByte('{')
	written := make(map[string]bool, len(fields))
	write := func(key []byte, value []byte) {
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		out.Write(key)
		out.WriteByte(':')
		out.Write(value)
	}
	for _, m := range members {
		value, touched := fields[m.name]
		if !touched {
			write(m.key, m.value)
			continue
		}
		if value == nil || written[m.name] {
			continue
		}
		written[m.name] = true
		write(m.key, encoded[m.name])
	}

	added := make([]string, 0, len(encoded))
	for key := range encoded {
		if !written[key] {
			added = append(added, key)
		}
	}
	slices.Sort(added)
	for _, key := range added {
		rawKey, err := marshalValue(key)
		if err != nil {
			return nil, fmt.Errorf("error encoding field name %q: %w", key, err)
		}
		write(rawKey, encoded[key])
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// WithoutFields returns the JSON object body without the named top-level fields: what mcpidp passes
// to the upstream of a request whose own fields (names) it consumed. Every other field keeps its raw
// bytes and its position (see SetFields), so fields mcpidp does not know reach the model untouched.
func WithoutFields(body []byte, names ...string) ([]byte, error) {
	drop := make(map[string]any, len(names))
	for _, name := range names {
		drop[name] = nil
	}
	return SetFields(body, drop)
}

// Members returns the top-level fields of body, a JSON object, by name, as
// json.Unmarshal into a map[string]json.RawMessage would (a later
// duplicate key wins), in one validating pass and one scan, the values
// sharing body's bytes instead of being copied. ok is false when body is
// not a valid JSON object; json.Unmarshal then says what is wrong.
func Members(body []byte) (fields map[string]json.RawMessage, ok bool) {
	members, ok := scanObject(body)
	if !ok {
		return nil, false
	}
	fields = make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		fields[m.name] = m.value
	}
	return fields, true
}

// member is one top-level field of a JSON object: its decoded name, and the raw bytes of its key
// and value as they appear in the input.
type member struct {
	name  string
	key   []byte
	value []byte
}

// splitObject cuts a JSON object into its top-level members without re-encoding anything.
func splitObject(body []byte) ([]member, error) {
	if members, ok := scanObject(body); ok {
		return members, nil
	}
	return decodeObject(body)
}

// scanObject is splitObject for a body that is a valid JSON object: one
// validating pass (json.Valid), then a scan for the members' boundaries
// that need not check anything again. ok is false for anything else,
// which decodeObject then reads, to say what is wrong with it.
func scanObject(body []byte) (members []member, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		keyStart := i
		i = stringEnd(body, i)
		key := body[keyStart:i]
		var name string
		if plainString(key) {
			name = string(key[1 : len(key)-1])
		} else if json.Unmarshal(key, &name) != nil {
			return nil, false
		}
		i = skipSpace(body, i)
		i = skipSpace(body, i+1) // the colon
		valueStart := i
		i = valueEnd(body, i)
		members = append(members, member{name: name, key: key, value: body[valueStart:i]})
		i = skipSpace(body, i)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return members, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] (a quote)
// of valid JSON.
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index after the value starting at b[i] of valid
// JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// plainString reports whether the quoted JSON string s means its bytes
// as they are: no escapes, nothing but ASCII (encoding/json replaces
// invalid UTF-8, so anything else is decoded by it).
func plainString(s []byte) bool {
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// decodeObject is splitObject token by token, with an error for what is
// not one JSON object.
func decodeObject(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("error reading JSON object: %w", err)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, errors.New("request body must be a JSON object")
	}

	var members []member
	for dec.More() {
		keyStart := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("error reading JSON object key: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected JSON object key %v", tok)
		}
		keyEnd := dec.InputOffset()

		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("error reading JSON value of field %q: %w", name, err)
		}
		members = append(members, member{
			name:  name,
			key:   rawKey(body[keyStart:keyEnd]),
			value: value,
		})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("error reading end of JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return members, nil
}

// rawKey trims the separators the decoder may leave around a key's bytes (the comma before it,
// whitespace), keeping the quoted string exactly as written.
func rawKey(b []byte) []byte {
	start := bytes.IndexByte(b, '"')
	end := bytes.LastIndexByte(b, '"')
	if start < 0 || end <= start {
		return b
	}
	return b[start : end+1]
}

func marshalValue(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, errors.New("invalid JSON in json.RawMessage value")
		}
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
