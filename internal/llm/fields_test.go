package llm_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

func TestSetFields(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		body   string
		fields map[string]any
		want   string
	}{
		{
			name: "ReplaceKeepsOtherFieldsByteForByte",
			body: `{"model":"gpt-4.1",  "foo": {"b": 1,  "a": [1, 2.50, 1e3]}, "messages":[{"role":"user"}], "x_vendor":"\u00e9"}`,
			fields: map[string]any{
				"messages": []map[string]string{{"role": "user", "content": "hi"}},
			},
			want: `{"model":"gpt-4.1","foo":{"b": 1,  "a": [1, 2.50, 1e3]},"messages":[{"content":"hi","role":"user"}],"x_vendor":"\u00e9"}`,
		},
		{
			name:   "NilDeletes",
			body:   `{"model":"m","mcp_output":"text","max_steps":3,"stream":true}`,
			fields: map[string]any{"mcp_output": nil, "max_steps": nil, "absent": nil},
			want:   `{"model":"m","stream":true}`,
		},
		{
			name:   "NewFieldsAppendedInKeyOrder",
			body:   `{"model":"m"}`,
			fields: map[string]any{"stream": true, "messages": []int{}, "n": 1},
			want:   `{"model":"m","messages":[],"n":1,"stream":true}`,
		},
		{
			name:   "EmptyObject",
			body:   " { } ",
			fields: map[string]any{"stream": false},
			want:   `{"stream":false}`,
		},
		{
			name:   "DuplicateKeyReplacedOnce",
			body:   `{"stream":true,"model":"m","stream":"again"}`,
			fields: map[string]any{"stream": false},
			want:   `{"stream":false,"model":"m"}`,
		},
		{
			name:   "DuplicateKeyDeletedEverywhere",
			body:   `{"user":"a","model":"m","user":"b"}`,
			fields: map[string]any{"user": nil},
			want:   `{"model":"m"}`,
		},
		{
			name:   "RawMessageWrittenAsIs",
			body:   `{"tools":[{"type":"mcp"}]}`,
			fields: map[string]any{"tools": json.RawMessage(`[ {"type": "function"} ]`)},
			want:   `{"tools":[ {"type": "function"} ]}`,
		},
		{
			name:   "NoHTMLEscaping",
			body:   `{}`,
			fields: map[string]any{"content": "<b>a & b</b>"},
			want:   `{"content":"<b>a & b</b>"}`,
		},
		{
			name:   "EscapedKeyKeptAsWritten",
			body:   "{\"\\u0061\" : 1,\n\t\"b\":2}",
			fields: map[string]any{"b": 3},
			want:   `{"\u0061":1,"b":3}`,
		},
		{
			name:   "NoFields",
			body:   `{"a": [ 1 ]}`,
			fields: nil,
			want:   `{"a":[ 1 ]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := llm.SetFields([]byte(tt.body), tt.fields)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
}

func TestSetFieldsErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		body    string
		fields  map[string]any
		wantErr string
	}{
		{name: "Array", body: `[1,2]`, wantErr: "request body must be a JSON object"},
		{name: "String", body: `"x"`, wantErr: "request body must be a JSON object"},
		{name: "Empty", body: ``, wantErr: "error reading JSON object"},
		{name: "Truncated", body: `{"a":1`, wantErr: "error reading end of JSON object"},
		{name: "BadValue", body: `{"a":tru}`, wantErr: `error reading JSON value of field "a"`},
		{name: "TrailingData", body: `{"a":1} {"b":2}`, wantErr: "unexpected data after the JSON object"},
		{name: "InvalidRawMessage", body: `{}`, fields: map[string]any{"a": json.RawMessage(`{`)}, wantErr: `error encoding field "a"`},
		{name: "Unencodable", body: `{}`, fields: map[string]any{"a": make(chan int)}, wantErr: `error encoding field "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := llm.SetFields([]byte(tt.body), tt.fields)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
