package llm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// eventReader reads the data of server-sent events, one event at a time.
type eventReader struct {
	r        *bufio.Reader
	maxBytes int64
	data     []byte
	hasData  bool
}

func newEventReader(r io.Reader, maxBytes int64) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, 64<<10), maxBytes: maxBytes}
}

// next returns the data of the next event (lines joined by "\n"), or io.EOF at the end of the body.
// Comments, "event:", "id:" and "retry:" lines are skipped: OpenAI-compatible streams carry
// everything in data, and error events carry an error object there too.
func (e *eventReader) next() ([]byte, error) {
	for {
		line, err := e.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		eof := err != nil
		if len(line) == 0 || eof {
			if len(line) > 0 {
				if event := e.addLine(line); event != nil {
					return event, nil
				}
			}
			if int64(len(e.data)) > e.maxBytes {
				// The last line before the end of the body is checked here: the loop's check
				// below is not reached for it.
				return nil, fmt.Errorf("%w: upstream stream event is larger than %d bytes", ErrResponseTooLarge, e.maxBytes)
			}
			if e.hasData {
				return e.take(), nil
			}
			if eof {
				return nil, io.EOF
			}
			continue
		}
		if event := e.addLine(line); event != nil {
			return event, nil
		}
		if int64(len(e.data)) > e.maxBytes {
			return nil, fmt.Errorf("%w: upstream stream event is larger than %d bytes", ErrResponseTooLarge, e.maxBytes)
		}
	}
}

// addLine adds a non-empty line to the current event. It returns the previous event when the line
// starts a new one without the blank line that should have separated them.
func (e *eventReader) addLine(line []byte) []byte {
	if line[0] == ':' {
		return nil
	}
	field, value, _ := bytes.Cut(line, []byte(":"))
	if string(field) != "data" {
		return nil
	}
	value = bytes.TrimPrefix(value, []byte(" "))
	if e.hasData && startsEvent(value) && json.Valid(e.data) {
		prev := e.take()
		e.data, e.hasData = append([]byte(nil), value...), true
		return prev
	}
	if e.hasData {
		e.data = append(e.data, '\n')
	}
	e.data, e.hasData = append(e.data, value...), true
	return nil
}

func (e *eventReader) take() []byte {
	data := e.data
	e.data, e.hasData = nil, false
	return data
}

// lineSlack is what a line may hold besides an event's data: a field name such as "data: " and
// the line ending.
const lineSlack = 64

// readLine returns one line without its line ending ("\n", "\r\n" or a lone "\r" before "\n").
func (e *eventReader) readLine() ([]byte, error) {
	var line []byte
	for {
		part, err := e.r.ReadSlice('\n')
		line = append(line, part...)
		// The bound is on an event's data; a line may carry its field name ("data: ") and line
		// ending besides.
		if int64(len(line)) > e.maxBytes+lineSlack {
			return nil, fmt.Errorf("%w: upstream stream line is larger than %d bytes", ErrResponseTooLarge, e.maxBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, err
	}
}

func startsEvent(value []byte) bool {
	value = bytes.TrimSpace(value)
	return len(value) > 0 && (value[0] == '{' || bytes.Equal(value, []byte("[DONE]")))
}

// accumulator assembles a Completion from stream chunks.
type accumulator struct {
	maxBytes int64
	size     int64
	id       string
	model    string
	created  int64
	usage    *Usage
	choices  map[int]*choiceState
}

type choiceState struct {
	role         string
	content      strings.Builder
	finishReason string
	calls        map[int]*ToolCall
	lastIndex    int // index of the call the last fragment went to, -1 before any
}

func newAccumulator(maxBytes int64) *accumulator {
	return &accumulator{maxBytes: maxBytes, choices: map[int]*choiceState{}}
}

func (a *accumulator) add(chunk *Chunk) error {
	if a.id == "" {
		a.id = chunk.ID
	}
	if a.model == "" {
		a.model = chunk.Model
	}
	if a.created == 0 {
		a.created = chunk.Created
	}
	if chunk.Usage != nil {
		// Some servers repeat a running total in every chunk: the last one is the whole call.
		usage := *chunk.Usage
		a.usage = &usage
	}
	for _, cc := range chunk.Choices {
		st := a.choices[cc.Index]
		if st == nil {
			st = &choiceState{calls: map[int]*ToolCall{}, lastIndex: -1}
			a.choices[cc.Index] = st
		}
		if cc.Delta.Role != "" {
			st.role = cc.Delta.Role
		}
		st.content.WriteString(cc.Delta.Content)
		a.size += int64(len(cc.Delta.Content))
		for _, d := range cc.Delta.ToolCalls {
			st.addToolCall(d)
			a.size += int64(len(d.Function.Name) + len(d.Function.Arguments))
		}
		if cc.FinishReason != nil && *cc.FinishReason != "" {
			st.finishReason = *cc.FinishReason
		}
	}
	if a.size > a.maxBytes {
		return fmt.Errorf("%w: upstream stream is larger than %d bytes", ErrResponseTooLarge, a.maxBytes)
	}
	return nil
}

func (st *choiceState) addToolCall(d ToolCallDelta) {
	index := d.Index
	if index < 0 {
		// No index: a new id starts a new call, anything else continues the current one.
		last := st.calls[st.lastIndex]
		switch {
		case last == nil:
			index = len(st.calls)
		case d.ID != "" && d.ID != last.ID:
			index = slices.Max(slices.Collect(maps.Keys(st.calls))) + 1
		default:
			index = st.lastIndex
		}
	}
	st.lastIndex = index

	call := st.calls[index]
	if call == nil {
		call = &ToolCall{}
		st.calls[index] = call
	}
	if d.ID != "" {
		call.ID = d.ID
	}
	if d.Type != "" {
		call.Type = d.Type
	}
	// OpenAI sends the name once; some servers repeat it whole in every fragment, a few split it.
	if name := d.Function.Name; name != "" && name != call.Function.Name {
		call.Function.Name += name
	}
	call.Function.Arguments += d.Function.Arguments
}

func (a *accumulator) completion() (*Completion, error) {
	c := &Completion{ID: a.id, Model: a.model, Created: a.created, Usage: a.usage}
	indexes := slices.Sorted(maps.Keys(a.choices))
	for _, i := range indexes {
		st := a.choices[i]
		msg := Message{Role: st.role, Content: st.content.String()}
		if msg.Role == "" {
			msg.Role = "assistant"
		}
		callIndexes := slices.Sorted(maps.Keys(st.calls))
		for _, ci := range callIndexes {
			msg.ToolCalls = append(msg.ToolCalls, *st.calls[ci])
		}
		fillToolCalls(msg.ToolCalls)
		c.Choices = append(c.Choices, Choice{Index: i, Message: msg, FinishReason: st.finishReason})
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("error encoding assembled completion: %w", err)
	}
	c.Raw = raw
	return c, nil
}

// fillToolCalls gives calls without an id a generated one (tool results must refer to an id) and
// defaults the type to "function".
func fillToolCalls(calls []ToolCall) {
	for i := range calls {
		if calls[i].ID == "" {
			calls[i].ID = "call_" + rand.Text()
		}
		if calls[i].Type == "" {
			calls[i].Type = "function"
		}
	}
}
