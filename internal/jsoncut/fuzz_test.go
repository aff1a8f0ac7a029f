package jsoncut_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mcpidp/mcpidp/internal/jsoncut"
)

// FuzzCutter checks the Cutter's promises on any input, fed in pieces of any size:
//   - it accepts exactly what encoding/json accepts;
//   - its output is valid JSON whenever its input is, and never longer than the ceiling;
//   - an input within the budget comes out unchanged;
//   - how the input is split does not change the output.
func FuzzCutter(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `""`, `0`, `-0.5E-3`, `true`, `false`, `null`, `{"a":[1,"b",{"c":null}]}`,
		toolResult(strings.Repeat("a", 300)), toolResult("é😀\\u00e9\\n\\\""), `{"result":{"x":"` + strings.Repeat("\\u00e9", 40) + `"},"id":1}`,
		`[[[[[[["` + strings.Repeat("x", 200) + `"]]]]]]]`, "{\"a\":{\"b\":\"\xff\xfe\xc3\"}}", `{"a" : [ 1 , 2 ] }  `,
		`{"a":}`, `[1,]`, `01`, "\"\x01\"", `"\u12"`,
	} {
		f.Add([]byte(seed), uint16(64), uint8(7))
	}
	f.Fuzz(func(t *testing.T, input []byte, budget uint16, split uint8) {
		opts := jsoncut.Options{Budget: int64(budget)}
		whole, err := runCutter(opts, input, len(input)+1)
		if (err == nil) != json.Valid(input) {
			t.Fatalf("cutter error %v, json.Valid %v for %q", err, json.Valid(input), input)
		}
		if err != nil {
			if !errors.Is(err, jsoncut.ErrSyntax) {
				t.Fatalf("invalid input: error %v is not ErrSyntax", err)
			}
			return
		}
		if !json.Valid(whole) {
			t.Fatalf("output of valid input is not valid JSON:\n in: %q\nout: %q", input, whole)
		}
		if len(input) <= int(budget) && !bytes.Equal(whole, input) {
			t.Fatalf("input within the budget changed:\n in: %q\nout: %q", input, whole)
		}
		pieces, err := runCutter(opts, input, int(split)%16+1)
		if err != nil || !bytes.Equal(pieces, whole) {
			t.Fatalf("split input gave %q (%v), whole input %q", pieces, err, whole)
		}

		ceiling := int64(budget) * 2
		opts.Ceiling = ceiling
		bounded, err := runCutter(opts, input, int(split)%16+1)
		switch {
		case errors.Is(err, jsoncut.ErrTooLarge):
		case err != nil:
			t.Fatalf("unexpected error with a ceiling: %v", err)
		case !bytes.Equal(bounded, whole):
			t.Fatalf("a ceiling that was not reached changed the output: %q, want %q", bounded, whole)
		}
		if ceiling > 0 && int64(len(bounded)) > ceiling {
			t.Fatalf("output of %d bytes exceeds the ceiling %d", len(bounded), ceiling)
		}
	})
}

func runCutter(opts jsoncut.Options, input []byte, piece int) ([]byte, error) {
	c := jsoncut.New(opts)
	var out []byte
	for len(input) > 0 {
		n := min(piece, len(input))
		_, err := c.Write(input[:n])
		out = append(out, c.Take()...)
		if err != nil {
			return out, err
		}
		input = input[n:]
	}
	err := c.Close()
	return out, err
}

// FuzzEventStreamReader checks that cutting an event stream keeps its events: a reader that parses
// the output as mcp-go does finds the same number of events, the data of each valid, within the
// ceiling, and unchanged within the budget, when it was valid JSON, and still invalid when it was
// not.
func FuzzEventStreamReader(f *testing.F) {
	for _, seed := range []string{
		"data: {}\n\n",
		"event: endpoint\ndata: /messages?session=1\n\n",
		"data: " + toolResult(strings.Repeat("q", 400)) + "\r\n\r\n",
		"data: [1,\ndata: 2]\n\ndata:3\n\n: comment\nid: 4\nretry: 10\n\n",
		"data: 1\ndata: 2\n\n",
		"data: {\"a\":1}}\n\n",
		"data",
		"data: {\"a\":\"\r\"}\n\n",
	} {
		f.Add([]byte(seed), uint16(100))
	}
	f.Fuzz(func(t *testing.T, input []byte, budget uint16) {
		const maxLine = 1 << 20
		ceiling := int64(budget)*2 + 64
		out, err := io.ReadAll(jsoncut.NewEventStreamReader(bytes.NewReader(input), jsoncut.Options{Budget: int64(budget), Ceiling: ceiling}, maxLine))
		if errors.Is(err, jsoncut.ErrTooLarge) {
			return
		}
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		in, got := parseEvents(string(input)), parseEvents(string(out))
		if len(in) != len(got) {
			t.Fatalf("%d events in, %d out:\n in: %q\nout: %q", len(in), len(got), input, out)
		}
		for i := range in {
			valid := json.Valid([]byte(in[i]))
			if json.Valid([]byte(got[i])) != valid {
				t.Fatalf("event %d: valid in %v, out %v:\n in: %q\nout: %q", i, valid, !valid, in[i], got[i])
			}
			if !valid {
				continue
			}
			// Each data line adds at most "\n" and a space to the cutter's output.
			if int64(len(got[i])) > ceiling+2*int64(strings.Count(got[i], "\n")) {
				t.Fatalf("event %d has %d bytes, over the ceiling %d", i, len(got[i]), ceiling)
			}
			if !strings.Contains(in[i], "\n") && len(in[i]) <= int(budget) && got[i] != in[i] {
				t.Fatalf("event %d within the budget changed: %q → %q", i, in[i], got[i])
			}
		}
	})
}
