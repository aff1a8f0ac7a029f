package jsoncut_test

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/jsoncut"
)

// cut runs input through a Cutter in one piece.
func cut(t *testing.T, opts jsoncut.Options, input string) (string, error) {
	t.Helper()
	out, err := io.ReadAll(jsoncut.NewReader(strings.NewReader(input), opts))
	return string(out), err
}

func toolResult(text string) string {
	raw, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": "mcpidp-1",
		"result": map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}},
	})
	return string(raw)
}

func TestCutterPassesSmallDocumentsUnchanged(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`{}`, `[]`, `"x"`, `0`, `-1.5e+10`, `true`, `null`, ` { "a" : [ 1 , 2.0 , "\u00e9\n" ] } `,
		toolResult("hello"), `{"a":{"b":{"c":"` + strings.Repeat("x", 500) + `"}}}`,
	} {
		got, err := cut(t, jsoncut.Options{Budget: 1000, Ceiling: 2000}, doc)
		require.NoError(t, err, doc)
		require.Equal(t, doc, got)
	}
}

func TestCutterCutsLongStringsOnceTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	input := toolResult(strings.Repeat("a", 100_000))
	opts := jsoncut.Options{Budget: 1000, Ceiling: 2000, MarkerFunc: func(size int64) string {
		return "…[truncated: the tool returned " + strconv.FormatInt(size, 10) + " bytes]"
	}}
	got, err := cut(t, opts, input)
	require.NoError(t, err)
	require.True(t, json.Valid([]byte(got)), got)
	// The budget, the marker, and the short strings and structure after the cut.
	require.LessOrEqual(t, len(got), 1000+len("…[truncated: the tool returned 100000 bytes]")+len(`","type":"text"}]}}`))

	var msg struct {
		ID     string `json:"id"`
		Result struct {
			Content []struct{ Type, Text string } `json:"content"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &msg))
	require.Equal(t, "mcpidp-1", msg.ID)
	text := msg.Result.Content[0].Text
	require.True(t, strings.HasPrefix(text, "aaaa"))
	require.True(t, strings.HasSuffix(text, "aaa…[truncated: the tool returned 100000 bytes]"), text[len(text)-80:])
}

func TestCutterKeepsShortStringsKeysAndTheEnvelope(t *testing.T) {
	t.Parallel()
	// The result comes before the id and the budget is spent in the first block: the id, the
	// keys and the short type and mimeType values survive, the long values are cut.
	input := `{"result":{"content":[{"type":"text","text":"` + strings.Repeat("b", 5000) + `"},` +
		`{"type":"image","mimeType":"image/png","data":"` + strings.Repeat("QUJD", 1000) + `"}]},"jsonrpc":"2.0","id":7}`
	got, err := cut(t, jsoncut.Options{Budget: 200, Ceiling: 2000}, input)
	require.NoError(t, err)
	var msg struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int    `json:"id"`
		Result  struct {
			Content []struct{ Type, Text, MimeType, Data string } `json:"content"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(got), &msg), got)
	require.Equal(t, "2.0", msg.JSONRPC)
	require.Equal(t, 7, msg.ID)
	require.Len(t, msg.Result.Content, 2)
	require.Equal(t, "text", msg.Result.Content[0].Type)
	require.Contains(t, msg.Result.Content[0].Text, "b…[truncated: 5000 bytes, 200 kept]")
	require.Equal(t, "image", msg.Result.Content[1].Type)
	require.Equal(t, "image/png", msg.Result.Content[1].MimeType)
	require.Equal(t, "…[truncated: 4000 bytes, 200 kept]", msg.Result.Content[1].Data)
}

func TestCutterNeverSplitsACharacter(t *testing.T) {
	t.Parallel()
	for budget := int64(60); budget < 80; budget++ {
		input := `{"a":{"b":"` + strings.Repeat("é😀\\u00e9\\n", 50) + `"}}`
		got, err := cut(t, jsoncut.Options{Budget: budget}, input)
		require.NoError(t, err)
		var v struct{ A struct{ B string } }
		require.NoError(t, json.Unmarshal([]byte(got), &v), got)
		require.True(t, utf8.ValidString(v.A.B))
		require.NotContains(t, v.A.B, "\uFFFD", "budget %d: %q", budget, got)
		before, _, ok := strings.Cut(v.A.B, jsoncut.MarkerPrefix)
		require.True(t, ok)
		require.True(t, strings.HasPrefix(strings.Repeat("é😀é\n", 50), before), "budget %d: %q", budget, before)
	}
}

func TestCutterGivesUpPastTheCeiling(t *testing.T) {
	t.Parallel()
	input := "[" + strings.Repeat("12345,", 10_000) + "1]"
	_, err := cut(t, jsoncut.Options{Budget: 100, Ceiling: 1000}, input)
	require.ErrorIs(t, err, jsoncut.ErrTooLarge)

	// A top-level string is the document itself: never cut, so only the ceiling bounds it.
	_, err = cut(t, jsoncut.Options{Budget: 100, Ceiling: 1000}, `"`+strings.Repeat("x", 5000)+`"`)
	require.ErrorIs(t, err, jsoncut.ErrTooLarge)
}

func TestCutterRefusesInvalidJSON(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{``, `{`, `{"a"}`, `{"a":}`, `[1,]`, `01`, `1.`, `-`, `tru`, `"\x"`, "\"\x01\"", `{} {}`, `[1 2]`, `"\u12"`} {
		_, err := cut(t, jsoncut.Options{Budget: 1000}, doc)
		require.ErrorIs(t, err, jsoncut.ErrSyntax, "%q", doc)
	}
}

// TestReaderDoesNotReadPastTheCeiling checks that a document that fails is not read to its end.
func TestReaderDoesNotReadPastTheCeiling(t *testing.T) {
	t.Parallel()
	src := &countingReader{r: io.MultiReader(strings.NewReader("["), infinite("1,"))}
	_, err := io.ReadAll(jsoncut.NewReader(src, jsoncut.Options{Budget: 100, Ceiling: 10_000}))
	require.ErrorIs(t, err, jsoncut.ErrTooLarge)
	require.Less(t, src.n, int64(100_000))
}

func TestEventStreamReaderCutsEachEvent(t *testing.T) {
	t.Parallel()
	big := toolResult(strings.Repeat("z", 50_000))
	input := ": comment\r\n" +
		"event: endpoint\ndata: /messages?sessionId=abc\n\n" +
		"event: message\nid: 1\ndata: " + big + "\r\n\r\n" +
		"data: {\"a\":\ndata: [1,\ndata:2]}\n\n" +
		"data: " + toolResult("small") + "\n\n" +
		"data:not json at all\n\n" +
		"event: " + strings.Repeat("e", 5000) + "\n" +
		"data: 1\ndata: 2\n\n" +
		"data: " + toolResult("last")
	out, err := io.ReadAll(jsoncut.NewEventStreamReader(strings.NewReader(input), jsoncut.Options{Budget: 1000, Ceiling: 4000}, 4096))
	require.NoError(t, err)
	events := parseEvents(string(out))
	require.Equal(t, []string{
		"/messages?sessionId=abc",
		"", // the cut one, checked below
		"{\"a\":\n [1,\n 2]}",
		toolResult("small"),
		"not json at all",
		"1\n 2",
		toolResult("last"),
	}, append([]string{events[0], ""}, events[2:]...))
	require.True(t, json.Valid([]byte(events[1])))
	require.Contains(t, events[1], `zzz…[truncated: 50000 bytes, 1000 kept]","type":"text"}]}}`)
	require.NotContains(t, string(out), strings.Repeat("e", 5000))
	require.Contains(t, string(out), ": comment\r\n")
}

func TestEventStreamReaderFailsOnHugeNonJSONData(t *testing.T) {
	t.Parallel()
	input := "data: x" + strings.Repeat("y", 100_000) + "\n\n"
	_, err := io.ReadAll(jsoncut.NewEventStreamReader(strings.NewReader(input), jsoncut.Options{Budget: 1000, Ceiling: 4000}, 4096))
	require.ErrorIs(t, err, jsoncut.ErrTooLarge)
}

// parseEvents reads an event stream as mcp-go does and returns the data of each event.
func parseEvents(stream string) []string {
	var events []string
	var data string
	has := false
	lines := strings.Split(stream, "\n")
	for i, line := range lines {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if has && data != "" {
				events = append(events, data)
			}
			data, has = "", false
			continue
		}
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			v = strings.TrimPrefix(v, " ")
			if has {
				data += "\n" + v
			} else {
				data, has = v, true
			}
		}
		if i == len(lines)-1 && has && data != "" {
			events = append(events, data)
		}
	}
	return events
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type infiniteReader struct{ pattern []byte }

func infinite(pattern string) io.Reader { return &infiniteReader{pattern: []byte(pattern)} }

func (r *infiniteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.pattern[i%len(r.pattern)]
	}
	return len(p) - len(p)%len(r.pattern), nil
}
