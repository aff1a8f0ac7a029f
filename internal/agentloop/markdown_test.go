package agentloop

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEscapeHTML(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "",
		"plain_tool.name":      "plain_tool.name",
		"<b>&amp;</b>":         "&lt;b&gt;&amp;amp;&lt;/b&gt;",
		"a&b":                  "a&amp;b",
		"é<ü>":                 "é&lt;ü&gt;",
		"</summary><script>x<": "&lt;/summary&gt;&lt;script&gt;x&lt;",
	} {
		require.Equal(t, want, escapeHTML(in), in)
		require.Equal(t, strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(in), escapeHTML(in), in)
	}
}
