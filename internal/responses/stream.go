package responses

import (
	"encoding/json"
	"net/http"
)

// events writes a response's server-sent events with OpenAI's names:
// "event: <type>" and the event object, numbered by sequence_number.
type events struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	seq       int
	committed bool
	err       error // the first failure to write to the client
}

func newEvents(w http.ResponseWriter) *events {
	return &events{w: w, rc: http.NewResponseController(w)}
}

// send writes one event; fields are the event's own, besides type and
// sequence_number.
func (s *events) send(typ string, fields map[string]any) {
	if s.err != nil {
		return
	}
	ev := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		ev[k] = v
	}
	ev["type"], ev["sequence_number"] = typ, s.seq
	s.seq++
	data, err := json.Marshal(ev)
	if err != nil {
		s.err = err
		return
	}
	if !s.committed {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.committed = true
	}
	buf := make([]byte, 0, len(typ)+len(data)+16)
	buf = append(buf, "event: "...)
	buf = append(buf, typ...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := s.w.Write(buf); err != nil {
		s.err = err
		return
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
}

// item sends a finished item whole: added, then done (the events of an
// item with no progress to show, or shown after the fact).
func (s *events) item(index int, it any, between ...func()) {
	s.send("response.output_item.added", map[string]any{"output_index": index, "item": it})
	for _, f := range between {
		f()
	}
	s.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
}

// message sends a whole message item as a stream would: its part, its
// text in one delta, and their ends.
func (s *events) message(index int, it MessageItem) {
	open := it
	open.Status, open.Content = StatusInProgress, []OutputText{}
	s.send("response.output_item.added", map[string]any{"output_index": index, "item": open})
	s.textPart(index, it.ID)
	text := it.Content[0].Text
	s.send("response.output_text.delta", map[string]any{"item_id": it.ID, "output_index": index, "content_index": 0, "delta": text, "logprobs": []any{}})
	s.endMessage(index, it)
}

func (s *events) textPart(index int, id string) {
	s.send("response.content_part.added", map[string]any{"item_id": id, "output_index": index, "content_index": 0,
		"part": OutputText{Type: "output_text", Text: "", Annotations: []any{}}})
}

func (s *events) endMessage(index int, it MessageItem) {
	part := it.Content[0]
	s.send("response.output_text.done", map[string]any{"item_id": it.ID, "output_index": index, "content_index": 0, "text": part.Text, "logprobs": []any{}})
	s.send("response.content_part.done", map[string]any{"item_id": it.ID, "output_index": index, "content_index": 0, "part": part})
	s.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
}
