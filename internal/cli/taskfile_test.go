package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseTaskFile(t *testing.T) {
	t.Parallel()
	f, input, err := parseTaskFile("t.md", []byte("---\r\nmodel: gpt-4.1\r\nuser: alice\r\ntools:\r\n  - https://mcp.example.com/mcp\r\n"+
		"  - {type: mcp, url: https://b.example.com/mcp, allowed_tools: [search]}\r\nmax_steps: 5\r\nstore: true\r\n"+
		"metadata: {team: {name: core}}\r\nwebhook: https://hooks.example.com/t\r\nstop_when: [{type: tool_called, name: search}]\r\n---\r\n\r\nSummarize\r\nmy page.\r\n"))
	require.NoError(t, err)
	require.Equal(t, "Summarize\nmy page.", input)
	five, yes := 5, true
	require.Equal(t, map[string]any{
		"input": "Summarize\nmy page.", "model": "gpt-4.1", "user": "alice",
		"tools": []any{
			map[string]any{"type": "mcp", "url": "https://mcp.example.com/mcp"},
			map[string]any{"type": "mcp", "url": "https://b.example.com/mcp", "allowed_tools": []any{"search"}},
		},
		"max_steps": &five, "store": &yes,
		"metadata":  map[string]any{"team": map[string]any{"name": "core"}},
		"webhook":   map[string]any{"url": "https://hooks.example.com/t"},
		"stop_when": []any{map[string]any{"type": "tool_called", "name": "search"}},
	}, f.body(input))

	// No frontmatter: all of it is the input; an empty frontmatter too.
	for _, raw := range []string{"just do it\n", "---\n---\njust do it\n"} {
		f, input, err = parseTaskFile("t.md", []byte(raw))
		require.NoError(t, err)
		require.Equal(t, map[string]any{"input": "just do it"}, f.body(input))
	}
}

// Each mistake in a task file gets a message that names the file, says
// what is wrong and, where it can, on which line.
func TestParseTaskFileErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ file, want string }{
		"unclosed":      {"---\nmodel: m\nuser: u\nhello\n", "t.md: the frontmatter that starts on line 1 has no closing --- line"},
		"unknown field": {"---\nmodel: m\nmax-steps: 3\n---\nhi\n", `t.md: line 3: unknown frontmatter field "max-steps"; the fields are model, user, tools, max_steps, store, metadata, webhook, stop_when`},
		"not a map":     {"---\n- model\n---\nhi\n", "t.md: line 2: the frontmatter must be key: value pairs, like model: gpt-4.1"},
		"bad yaml":      {"---\nmodel: [m\n---\nhi\n", "t.md: the frontmatter is not valid YAML"},
		"wrong type":    {"---\nmax_steps: ten\n---\nhi\n", "t.md: frontmatter (line numbers count from the line after the first ---): yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `ten` into int"},
		"bad tool":      {"---\ntools: [3]\n---\nhi\n", "t.md: frontmatter: tools[0] must be an MCP server's URL or a tool object like {type: mcp, url: …}"},
		"bad webhook":   {"---\nwebhook: [a]\n---\nhi\n", "t.md: frontmatter: webhook must be a URL or {url: …}"},
		"empty body":    {"---\nmodel: m\n---\n\n  \n", "t.md: the body, the task's input, is empty"},
		"empty file":    {"", "t.md: the body, the task's input, is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parseTaskFile("t.md", []byte(tc.file))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
