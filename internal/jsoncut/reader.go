package jsoncut

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Input is read firstChunk bytes at a time at first, and twice as much after each read that
// filled the buffer, up to readChunk: most documents (an MCP answer) are small, and a 32 KiB buffer
// for each was most of what an MCP tool call allocated.
const (
	firstChunk = 1 << 10
	readChunk  = 32 << 10
)

// nextBuf returns the buffer for the next read after one of n bytes into buf.
func nextBuf(buf []byte, n int) []byte {
	if n < len(buf) || len(buf) >= readChunk {
		return buf
	}
	return make([]byte, min(2*len(buf), readChunk))
}

// NewReader returns a reader of the JSON document in r, cut to opts. Read returns the Cutter's error
// (ErrTooLarge, ErrSyntax) as soon as it happens, without reading the rest of r.
func NewReader(r io.Reader, opts Options) io.Reader {
	return &reader{r: r, cutter: New(opts), buf: make([]byte, firstChunk)}
}

type reader struct {
	r      io.Reader
	cutter *Cutter
	buf    []byte
	out    []byte // output not yet read from off on
	off    int
	err    error
}

func (r *reader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		n, err := r.r.Read(r.buf)
		if n > 0 {
			if _, werr := r.cutter.Write(r.buf[:n]); werr != nil {
				r.err = werr
			}
			r.out = append(r.out, r.cutter.Take()...)
			r.buf = nextBuf(r.buf, n)
		}
		if err != nil && r.err == nil {
			r.err = err
			if errors.Is(err, io.EOF) {
				if cerr := r.cutter.Close(); cerr != nil {
					r.err = cerr
				}
			}
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// NewEventStreamReader returns a reader of the text/event-stream in r with the data of each event,
// taken as one JSON document, cut to opts. Other lines (event, id, retry, comments) pass unchanged
// up to maxLine bytes; longer ones are dropped. The data of an event that is not JSON (the legacy
// MCP transport's endpoint event is a URL) passes unchanged up to maxLine bytes; past that the
// stream fails with ErrTooLarge, as it does when a document outgrows the ceiling.
//
// Lines end at "\n" (a "\r" before it stays), as the MCP transports read them; the data lines of
// one event keep their number.
func NewEventStreamReader(r io.Reader, opts Options, maxLine int) io.Reader {
	return &eventReader{r: r, opts: opts, maxLine: maxLine, buf: make([]byte, firstChunk)}
}

type eventReader struct {
	r       io.Reader
	opts    Options
	maxLine int
	buf     []byte
	out     []byte // output not yet read from off on
	off     int
	err     error

	// the line in progress
	kind      lineKind
	line      []byte // its bytes while unknown or raw
	skipSpace bool   // a data line whose value has not started: one space after "data:" is not data

	// the event in progress
	cutter  *Cutter // nil before its first data line
	invalid bool    // its data is not JSON: passed as is
	rawLen  int     // bytes of data passed as is
}

type lineKind uint8

const (
	lineUnknown lineKind = iota // too short yet to tell
	lineData                    // a data line: through the cutter
	lineRaw                     // another line: passed as is when it ends
	lineDrop                    // another line, too long: dropped
)

var dataPrefix = []byte("data:")

func (r *eventReader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		n, err := r.r.Read(r.buf)
		if n > 0 {
			if werr := r.write(r.buf[:n]); werr != nil {
				r.err = werr
			}
			r.buf = nextBuf(r.buf, n)
		}
		if err != nil && r.err == nil {
			r.err = err
			if r.kind == lineUnknown || r.kind == lineRaw {
				// The last line had no "\n": readers still take it.
				r.out = append(r.out, r.line...)
			}
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

func (r *eventReader) write(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if err := r.linePart(part); err != nil {
			return err
		}
		if i < 0 {
			return nil
		}
		if err := r.endLine(); err != nil {
			return err
		}
		p = p[i+1:]
	}
	return nil
}

// linePart takes bytes of the current line (without "\n").
func (r *eventReader) linePart(part []byte) error {
	switch r.kind {
	case lineUnknown:
		take := min(len(part), len(dataPrefix)-len(r.line))
		r.line = append(r.line, part[:take]...)
		part = part[take:]
		switch {
		case !bytes.HasPrefix(dataPrefix, r.line):
			r.kind = lineRaw
		case len(r.line) < len(dataPrefix):
			return nil
		default:
			r.kind = lineData
			r.line = r.line[:0]
			if err := r.startData(); err != nil {
				return err
			}
		}
		return r.linePart(part)
	case lineRaw:
		if len(r.line)+len(part) > r.maxLine {
			r.kind = lineDrop
			r.line = r.line[:0]
			return nil
		}
		r.line = append(r.line, part...)
	case lineData:
		if r.skipSpace && len(part) > 0 {
			r.skipSpace = false
			part = bytes.TrimPrefix(part, []byte(" "))
		}
		return r.data(part)
	}
	return nil
}

func (r *eventReader) endLine() error {
	switch r.kind {
	case lineUnknown, lineRaw:
		if len(bytes.Trim(r.line, "\r")) == 0 {
			// Readers drop every "\r" at the end of a line: this one is blank.
			r.endEvent()
		}
		r.out = append(r.out, r.line...)
		r.out = append(r.out, '\n')
	case lineData:
		r.out = append(r.out, '\n')
	}
	r.kind, r.line = lineUnknown, r.line[:0]
	return nil
}

func (r *eventReader) startData() error {
	r.out = append(r.out, "data: "...)
	r.skipSpace = true
	if r.cutter == nil {
		r.cutter = New(r.opts)
		return nil
	}
	// Readers join the data lines of an event with "\n"; a space means the same to JSON and keeps
	// the output's lines as they are.
	return r.data([]byte{' '})
}

// data takes bytes of the event's data.
func (r *eventReader) data(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if r.invalid {
		return r.raw(p)
	}
	n, err := r.cutter.Write(p)
	r.out = append(r.out, r.cutter.Take()...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTooLarge):
		return err
	}
	// Not JSON: from the byte that failed on, the data goes as it came, so a reader sees it as
	// invalid as it was (whatever was cut before it).
	r.invalid = true
	return r.raw(p[n:])
}

func (r *eventReader) raw(p []byte) error {
	r.rawLen += len(p)
	if r.rawLen > r.maxLine {
		return fmt.Errorf("%w: an event whose data is not JSON has more than %d bytes", ErrTooLarge, r.maxLine)
	}
	r.out = append(r.out, p...)
	return nil
}

func (r *eventReader) endEvent() {
	r.cutter, r.invalid, r.rawLen = nil, false, 0
}
