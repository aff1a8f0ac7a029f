// Package jsoncut bounds JSON documents while they stream by, so that a peer cannot make mcpidp
// hold more of an answer than it means to keep. A Cutter passes a document through unchanged until
// it has written its budget; from then on it cuts long string values short, ending each one it cuts
// with a marker that starts with "…[truncated", and keeps the document valid JSON. Only when even
// the cut document would outgrow a hard ceiling (deep structure, countless keys or numbers) does it
// give up with ErrTooLarge. Reader and EventStreamReader apply it to a body of one JSON document
// and to a text/event-stream of JSON data events.
//
// Nothing is ever buffered beyond one JSON escape or UTF-8 sequence and one short string, so the
// memory a document takes is bounded by the ceiling, whatever its size on the wire.
package jsoncut

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

var (
	// ErrTooLarge is returned when the output would exceed Options.Ceiling.
	ErrTooLarge = errors.New("JSON document too large")
	// ErrSyntax is returned for input that is not one JSON value.
	ErrSyntax = errors.New("invalid JSON")
)

// MarkerPrefix starts every marker, so readers can tell a value was cut (a cut base64 string, for
// one, no longer decodes).
const MarkerPrefix = "…[truncated"

// shortString is the length up to which a string value is kept whole even after the budget is
// spent: type names, MIME types, ids and the like stay readable.
const shortString = 128

// Options configures a Cutter.
type Options struct {
	// Budget is how many bytes are written before long string values are cut. Zero or negative
	// means no budget: nothing is cut and only Ceiling applies.
	Budget int64
	// Ceiling is the most bytes a Cutter writes; past it, it returns ErrTooLarge. Zero or negative
	// means no ceiling.
	Ceiling int64
	// MarkerFunc returns the text that ends a cut string, given the size of the whole string as
	// sent (its escaped bytes between the quotes). It should start with MarkerPrefix. Default:
	// "…[truncated: N bytes, B kept]".
	MarkerFunc func(size int64) string
}

// Cutter rewrites one JSON value fed to it in pieces. Use Write for the input, Take for the output
// so far, and Close at the end of the input.
type Cutter struct {
	opts    Options
	out     []byte
	written int64
	stack   []byte // '{' or '[' per open container
	state   state
	err     error
	cut     bool

	// the current number or literal
	lit string // the rest of true/false/null to match

	// the current string
	key     bool  // an object key (never cut)
	mode    mode  // what happens to its characters
	size    int64 // bytes of it read so far, between the quotes
	unit    []byte
	unitLen int // bytes the unit in progress needs; 0 when none
	hold    []byte
}

type state uint8

const (
	stValue      state = iota // a value must come
	stValueOrEnd              // after '[': a value or ']'
	stKeyOrEnd                // after '{': a key or '}'
	stKey                     // after ',' in an object: a key
	stColon                   // after a key
	stAfterValue              // after a value: ',' or the container's end
	stDone                    // the top-level value is complete
	stString
	stLiteral
	stNumMinus  // after '-'
	stNumZero   // a leading 0
	stNumInt    // integer digits
	stNumDot    // after '.'
	stNumFrac   // fraction digits
	stNumExp    // after 'e'
	stNumExpSgn // after the exponent's sign
	stNumExpDig // exponent digits
)

type mode uint8

const (
	modeCopy mode = iota // written as read
	modeHold             // the budget is spent but the string may be short: held back
	modeSkip             // cut: read and dropped
)

// New returns a Cutter for one JSON value.
func New(opts Options) *Cutter {
	if opts.Budget <= 0 {
		opts.Budget = math.MaxInt64
	}
	if opts.Ceiling <= 0 {
		opts.Ceiling = math.MaxInt64
	}
	if opts.MarkerFunc == nil {
		budget := opts.Budget
		opts.MarkerFunc = func(size int64) string {
			return fmt.Sprintf("%s: %d bytes, %d kept]", MarkerPrefix, size, budget)
		}
	}
	return &Cutter{opts: opts}
}

// Truncated reports whether a string was cut so far.
func (c *Cutter) Truncated() bool { return c.cut }

// Take returns the output written since the last call. The slice is valid until the next Write.
func (c *Cutter) Take() []byte {
	out := c.out
	c.out = c.out[:0]
	return out
}

// Write feeds the next piece of input and returns how much of it was taken: all of it, or on an
// error the bytes before the one that failed. After an error, every call returns it.
func (c *Cutter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for i := 0; i < len(p); {
		if c.state == stString && c.unitLen == 0 {
			n := c.stringRun(p[i:])
			if c.err != nil {
				return i, c.err
			}
			if i += n; i == len(p) {
				break
			}
		}
		c.step(p[i])
		if c.err != nil {
			return i, c.err
		}
		i++
	}
	return len(p), nil
}

// Close reports whether the input was one complete JSON value.
func (c *Cutter) Close() error {
	if c.err != nil {
		return c.err
	}
	switch c.state {
	case stDone:
	case stNumZero, stNumInt, stNumFrac, stNumExpDig:
		if len(c.stack) == 0 {
			c.state = stDone
			return nil
		}
		c.err = fmt.Errorf("%w: unexpected end of input", ErrSyntax)
	default:
		c.err = fmt.Errorf("%w: unexpected end of input", ErrSyntax)
	}
	return c.err
}

func (c *Cutter) fail(format string, args ...any) {
	c.err = fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}

// emit writes b, within the ceiling.
func (c *Cutter) emit(b ...byte) {
	if c.written+int64(len(b)) > c.opts.Ceiling {
		c.err = fmt.Errorf("%w: more than %d bytes even with long strings cut", ErrTooLarge, c.opts.Ceiling)
		return
	}
	c.out = append(c.out, b...)
	c.written += int64(len(b))
}

func (c *Cutter) spent() bool { return c.written >= c.opts.Budget }

// step handles one byte outside the fast path of stringRun.
func (c *Cutter) step(b byte) {
	switch c.state {
	case stString:
		c.stringByte(b)
	case stLiteral:
		if b != c.lit[0] {
			c.fail("invalid literal")
			return
		}
		c.emit(b)
		if c.lit = c.lit[1:]; c.lit == "" {
			c.endValue()
		}
	case stNumMinus, stNumZero, stNumInt, stNumDot, stNumFrac, stNumExp, stNumExpSgn, stNumExpDig:
		c.numberByte(b)
	default:
		c.structByte(b)
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func (c *Cutter) structByte(b byte) {
	if isSpace(b) {
		if !c.spent() {
			c.emit(b)
		}
		return
	}
	switch c.state {
	case stValue, stValueOrEnd:
		if b == ']' && c.state == stValueOrEnd {
			c.closeContainer('[')
			return
		}
		c.startValue(b)
	case stKeyOrEnd, stKey:
		switch {
		case b == '"':
			c.startString(true)
		case b == '}' && c.state == stKeyOrEnd:
			c.closeContainer('{')
		default:
			c.fail("object key expected, found %q", b)
		}
	case stColon:
		if b != ':' {
			c.fail("':' expected, found %q", b)
			return
		}
		c.emit(b)
		c.state = stValue
	case stAfterValue:
		top := c.stack[len(c.stack)-1]
		switch {
		case b == ',':
			c.emit(b)
			if top == '{' {
				c.state = stKey
			} else {
				c.state = stValue
			}
		case b == '}' && top == '{', b == ']' && top == '[':
			c.closeContainer(top)
		default:
			c.fail("',' or end of container expected, found %q", b)
		}
	case stDone:
		c.fail("data after the JSON value")
	}
}

func (c *Cutter) startValue(b byte) {
	switch {
	case b == '{', b == '[':
		c.emit(b)
		c.stack = append(c.stack, b)
		if b == '{' {
			c.state = stKeyOrEnd
		} else {
			c.state = stValueOrEnd
		}
	case b == '"':
		c.startString(false)
	case b == 't':
		c.emit(b)
		c.state, c.lit = stLiteral, "rue"
	case b == 'f':
		c.emit(b)
		c.state, c.lit = stLiteral, "alse"
	case b == 'n':
		c.emit(b)
		c.state, c.lit = stLiteral, "ull"
	case b == '-':
		c.emit(b)
		c.state = stNumMinus
	case b == '0':
		c.emit(b)
		c.state = stNumZero
	case b >= '1' && b <= '9':
		c.emit(b)
		c.state = stNumInt
	default:
		c.fail("value expected, found %q", b)
	}
}

func (c *Cutter) closeContainer(open byte) {
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	c.emit(close)
	c.stack = c.stack[:len(c.stack)-1]
	c.endValue()
}

func (c *Cutter) endValue() {
	if len(c.stack) == 0 {
		c.state = stDone
	} else {
		c.state = stAfterValue
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func (c *Cutter) numberByte(b byte) {
	next := c.state
	switch c.state {
	case stNumMinus:
		switch {
		case b == '0':
			next = stNumZero
		case isDigit(b):
			next = stNumInt
		default:
			c.fail("digit expected after '-'")
			return
		}
	case stNumZero, stNumInt:
		switch {
		case isDigit(b) && c.state == stNumInt:
		case b == '.':
			next = stNumDot
		case b == 'e' || b == 'E':
			next = stNumExp
		default:
			c.endNumber(b)
			return
		}
	case stNumDot:
		if !isDigit(b) {
			c.fail("digit expected after '.'")
			return
		}
		next = stNumFrac
	case stNumFrac:
		switch {
		case isDigit(b):
		case b == 'e' || b == 'E':
			next = stNumExp
		default:
			c.endNumber(b)
			return
		}
	case stNumExp:
		switch {
		case b == '+' || b == '-':
			next = stNumExpSgn
		case isDigit(b):
			next = stNumExpDig
		default:
			c.fail("digit expected in exponent")
			return
		}
	case stNumExpSgn:
		if !isDigit(b) {
			c.fail("digit expected in exponent")
			return
		}
		next = stNumExpDig
	case stNumExpDig:
		if !isDigit(b) {
			c.endNumber(b)
			return
		}
	}
	c.emit(b)
	c.state = next
}

// endNumber ends a number at b, the first byte after it.
func (c *Cutter) endNumber(b byte) {
	c.endValue()
	c.step(b)
}

func (c *Cutter) startString(key bool) {
	c.emit('"')
	c.state = stString
	c.key, c.size, c.unitLen = key, 0, 0
	c.unit, c.hold = c.unit[:0], c.hold[:0]
	c.mode = modeCopy
	// Strings at the top two levels (a JSON-RPC message's id, method, version) and keys are never
	// cut: they say what the document is.
	if !key && len(c.stack) >= 2 && c.spent() {
		c.mode = modeHold
	}
}

func (c *Cutter) cuttable() bool { return !c.key && len(c.stack) >= 2 }

// stringRun handles the plain bytes at the start of p inside a string, which are most of a large
// document, and returns how many it took. It stops before a quote, a backslash, a control byte or
// a byte that starts a UTF-8 sequence, which step handles.
func (c *Cutter) stringRun(p []byte) int {
	n := 0
	for n < len(p) {
		b := p[n]
		if b == '"' || b == '\\' || b < 0x20 || b >= 0x80 {
			break
		}
		n++
	}
	if n == 0 {
		return 0
	}
	run := p[:n]
	switch c.mode {
	case modeSkip:
		c.size += int64(n)
		return n
	case modeCopy:
		if !c.cuttable() {
			c.size += int64(n)
			c.emit(run...)
			return n
		}
		room := c.opts.Budget - c.written
		if room >= int64(n) {
			c.size += int64(n)
			c.emit(run...)
			return n
		}
		if room > 0 {
			c.size += room
			c.emit(run[:room]...)
			run = run[room:]
		}
		c.overBudget()
	}
	// modeHold, or copy mode that just ran out of budget
	for i := range run {
		c.addUnit(run[i : i+1])
	}
	return n
}

// stringByte handles one byte inside a string.
func (c *Cutter) stringByte(b byte) {
	if c.unitLen > 0 {
		c.continueUnit(b)
		return
	}
	switch {
	case b == '"':
		c.endString()
	case b == '\\':
		c.unit = append(c.unit[:0], b)
		c.unitLen = 2
	case b < 0x20:
		c.fail("control character in string")
	case b < 0x80:
		c.addUnit([]byte{b})
	default:
		c.unit = append(c.unit[:0], b)
		switch {
		case b&0xE0 == 0xC0:
			c.unitLen = 2
		case b&0xF0 == 0xE0:
			c.unitLen = 3
		case b&0xF8 == 0xF0:
			c.unitLen = 4
		default:
			// A stray continuation or invalid byte: JSON decoders replace it, so it stands alone.
			c.unitLen = 0
			c.addUnit(c.unit)
		}
	}
}

// continueUnit adds b to the escape or UTF-8 sequence in progress.
func (c *Cutter) continueUnit(b byte) {
	if c.unit[0] == '\\' {
		switch {
		case len(c.unit) == 1:
			switch b {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				c.unitLen = 6
			default:
				c.fail("invalid escape \\%c", b)
				return
			}
		case !isHex(b):
			c.fail("invalid \\u escape")
			return
		}
		c.unit = append(c.unit, b)
	} else {
		if b&0xC0 != 0x80 {
			// The sequence broke off: what came is a unit of its own, b starts afresh.
			c.unitLen = 0
			c.addUnit(c.unit)
			c.stringByte(b)
			return
		}
		c.unit = append(c.unit, b)
	}
	if len(c.unit) == c.unitLen {
		c.unitLen = 0
		c.addUnit(c.unit)
	}
}

func isHex(b byte) bool {
	return isDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

// addUnit takes one whole character of the string (a byte, an escape or a UTF-8 sequence).
func (c *Cutter) addUnit(u []byte) {
	c.size += int64(len(u))
	switch c.mode {
	case modeCopy:
		if !c.cuttable() || c.written+int64(len(u)) <= c.opts.Budget {
			c.emit(u...)
			return
		}
		c.size -= int64(len(u))
		c.overBudget()
		c.addUnit(u)
	case modeHold:
		if c.size > shortString {
			c.mode = modeSkip
			c.hold = c.hold[:0]
			return
		}
		c.hold = append(c.hold, u...)
	case modeSkip:
	}
}

// overBudget switches the current string to hold or skip once the budget is spent.
func (c *Cutter) overBudget() {
	if c.size < shortString {
		c.mode = modeHold
	} else {
		c.mode = modeSkip
	}
}

func (c *Cutter) endString() {
	switch c.mode {
	case modeHold:
		c.emit(c.hold...)
		c.hold = c.hold[:0]
	case modeSkip:
		c.emit(escapeMarker(c.opts.MarkerFunc(c.size))...)
		c.cut = true
	}
	if c.err != nil {
		return
	}
	c.emit('"')
	if c.key {
		c.state = stColon
	} else {
		c.endValue()
	}
}

// escapeMarker returns marker as the inside of a JSON string.
func escapeMarker(marker string) []byte {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(marker)
	s := strings.TrimSuffix(b.String(), "\n")
	return []byte(s[1 : len(s)-1])
}
