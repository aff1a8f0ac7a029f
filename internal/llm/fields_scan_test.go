package llm

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// scanObject must cut every valid object exactly as the token-by-token
// decoder does (names, raw keys and raw values), and leave everything else
// to it.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : 1 , "b":[1,{"c":"}"}],"d":{"e":"\"]"}}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u","stream":true}`,
		`{"a\u0041":null,"\\":"x","é":-1.5e3,"a":true,"a":false}`, "{\"\xff\":1}",
		"{\n\t\"a\"\r\n:\n[ ]\n}\n", `[1]`, `"x"`, ``, `{"a":1`, `{"a":tru}`, `{"a":1} {"b":2}`, `{"a":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := scanObject(body)
		want, err := decodeObject(body)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("scanObject accepted %q, the decoder says %v", body, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, the decoder found %d", body, len(got), len(want))
		}
		for i := range got {
			if got[i].name != want[i].name || !bytes.Equal(got[i].key, want[i].key) || !bytes.Equal(got[i].value, want[i].value) {
				t.Fatalf("%q: member %d is %q %s %s, the decoder's %q %s %s", body, i,
					got[i].name, got[i].key, got[i].value, want[i].name, want[i].key, want[i].value)
			}
		}
	})
}

// Members must read every object as json.Unmarshal into a map of raw
// values does, and refuse (for it to explain) everything it refuses.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"a":2}`, `{"a\u0041":null,"\\":"x","é":-1.5e3}`, "{\"\xff\":1}", `null`, `[]`, `{"a":1`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"mcp","url":"https://x"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := Members(body)
		var want map[string]json.RawMessage
		err := json.Unmarshal(body, &want)
		if !ok {
			if err == nil && want != nil && utf8.Valid(body) {
				t.Fatalf("Members refused %q, which json.Unmarshal reads", body)
			}
			return
		}
		if err != nil || want == nil {
			t.Fatalf("Members accepted %q, json.Unmarshal says %v", body, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d fields, json.Unmarshal found %d", body, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q: field %q is %s, json.Unmarshal's %s", body, k, got[k], v)
			}
		}
	})
}
