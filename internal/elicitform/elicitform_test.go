package elicitform

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

const everythingSchema = `{"type":"object","properties":{
 "name":{"title":"String","type":"string"},
 "check":{"type":"boolean"},
 "firstLine":{"type":"string","default":"It was a dark and stormy night."},
 "email":{"type":"string","format":"email"},
 "integer":{"type":"integer","minimum":1,"maximum":100,"default":42},
 "friend":{"type":"string","enum":["Monica","Rachel"],"default":"Monica"},
 "hero":{"type":"string","oneOf":[{"const":"hero-1","title":"Superman"},{"const":"hero-2","title":"Green Lantern"}]},
 "fish":{"type":"array","minItems":1,"maxItems":2,"items":{"anyOf":[{"const":"fish-1","title":"Tuna"},{"const":"fish-2","title":"Salmon"}]},"default":["fish-1"]}
},"required":["name"]}`

func TestApply(t *testing.T) {
	t.Parallel()
	s, err := Parse(json.RawMessage(everythingSchema))
	require.NoError(t, err)
	require.Equal(t, "name", s.Properties[0].Name, "schema order kept")

	out, err := s.Apply(json.RawMessage(`{"name":"Ada","integer":7}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"Ada","integer":7,"firstLine":"It was a dark and stormy night.","friend":"Monica","fish":["fish-1"]}`, string(out))

	for content, want := range map[string]string{
		`{}`:                             "content.name: is required",
		`{"name":3}`:                     "content.name: must be a string",
		`{"name":"a","integer":0}`:       "content.integer: must be at least 1",
		`{"name":"a","integer":1.5}`:     "content.integer: must be an integer",
		`{"name":"a","email":"nope"}`:    "content.email: must be an email address",
		`{"name":"a","friend":"Joey"}`:   `content.friend: must be one of "Monica", "Rachel"`,
		`{"name":"a","hero":"hero-9"}`:   `content.hero: must be one of "hero-1", "hero-2"`,
		`{"name":"a","fish":[]}`:         "content.fish: must have at least 1 items",
		`{"name":"a","fish":["fish-3"]}`: "content.fish: items must be among",
		`{"name":"a","unknown":1}`:       "content.unknown: is not a field",
		`[1]`:                            "content must be a JSON object",
		`{"name":"a","check":"yes"}`:     "content.check: must be true or false",
	} {
		_, err := s.Apply(json.RawMessage(content))
		require.ErrorContains(t, err, want, content)
		var ce *ContentError
		require.ErrorAs(t, err, &ce)
	}
}

func TestFormRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := Parse(json.RawMessage(everythingSchema))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, s.Render(&b, Page{Message: "Tell us <b>more</b>", Server: "example.com"}))
	html := b.String()
	require.Contains(t, html, "Tell us &lt;b&gt;more&lt;/b&gt;", "the server's text is escaped")
	require.Contains(t, html, `name="name" value="" required`)
	require.Contains(t, html, `value="It was a dark and stormy night."`)
	require.Contains(t, html, `<option value="hero-2">Green Lantern</option>`)
	require.Contains(t, html, `value="fish-1" checked`)

	content, err := s.FromForm(url.Values{"name": {"Ada"}, "check": {"true"}, "integer": {"9"}, "fish": {"fish-1", "fish-2"}, "email": {""}})
	require.NoError(t, err)
	out, err := s.Apply(content)
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"Ada","check":true,"integer":9,"fish":["fish-1","fish-2"],"firstLine":"It was a dark and stormy night.","friend":"Monica"}`, string(out))

	_, err = s.FromForm(url.Values{"integer": {"many"}})
	require.ErrorContains(t, err, "content.integer: must be a number")
}
