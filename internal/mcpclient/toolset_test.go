package mcpclient

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var functionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func TestSlug(t *testing.T) {
	t.Parallel()

	for url, want := range map[string]string{
		"https://mcp.notion.com/mcp":           "mcp_notion_com",
		"https://mcp.linear.app/sse":           "mcp_linear_app",
		"https://api.githubcopilot.com/mcp/":   "api_githubcopilot_com",
		"https://www.Example.com/MCP":          "example_com",
		"http://127.0.0.1:8080/github/mcp":     "127_0_0_1_8080_github",
		"https://my-server.example.com/v1/x.y": "my-server_example_com_v1_x_y",
		"https://example.com/a%20b/../c":       "example_com_a_b_c",
		"://":                                  "mcp",
	} {
		require.Equal(t, want, Slug(url), url)
	}

	long := Slug("https://a-very-long-subdomain.of-some-mcp-provider.example.com/mcp")
	require.LessOrEqual(t, len(long), 32)
	require.True(t, strings.HasPrefix(long, "a-very-long-subdomain_of"), long)
	require.Equal(t, long, Slug("https://a-very-long-subdomain.of-some-mcp-provider.example.com/mcp"), "deterministic")
	require.NotEqual(t, long, Slug("https://a-very-long-subdomain.of-some-mcp-provider.example.org/mcp"))
	require.NotContains(t, long, "__")
}

func TestToolsetNames(t *testing.T) {
	t.Parallel()

	const notion, linear = "https://mcp.notion.com/mcp", "https://mcp.linear.app/sse"
	ts, err := NewToolset([]ServerTools{
		{ServerURL: notion, Tools: []Tool{
			{Name: "search", Description: "Search pages", InputSchema: json.RawMessage(`{"type":"object","properties":{"q":{"type":"string"}},"anyOf":[{"required":["q"]}]}`)},
			{Name: "create-page"},
			{Name: "search"}, // repeated by the server: kept once
		}},
		{ServerURL: linear, Tools: []Tool{{Name: "search", InputSchema: json.RawMessage(`null`)}}},
	})
	require.NoError(t, err)

	var got []map[string]any
	for _, raw := range ts.FunctionTools() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		got = append(got, m)
	}
	require.Len(t, got, 3)
	require.JSONEq(t, `{"type":"function","function":{"name":"mcp_notion_com__search","description":"Search pages",
		"parameters":{"type":"object","properties":{"q":{"type":"string"}},"anyOf":[{"required":["q"]}]}}}`, string(ts.FunctionTools()[0]))
	require.JSONEq(t, `{"type":"function","function":{"name":"mcp_notion_com__create-page","parameters":{"type":"object","properties":{}}}}`, string(ts.FunctionTools()[1]))
	require.JSONEq(t, `{"type":"function","function":{"name":"mcp_linear_app__search","parameters":{"type":"object","properties":{}}}}`, string(ts.FunctionTools()[2]))

	server, tool, ok := ts.Resolve("mcp_linear_app__search")
	require.True(t, ok)
	require.Equal(t, linear, server)
	require.Equal(t, "search", tool)
	_, _, ok = ts.Resolve("mcp_linear_app__nope")
	require.False(t, ok)
	name, ok := ts.FunctionName(notion, "create-page")
	require.True(t, ok)
	require.Equal(t, "mcp_notion_com__create-page", name)
}

func TestToolsetHardCases(t *testing.T) {
	t.Parallel()

	longTool := strings.Repeat("x", 100)
	servers := []ServerTools{
		// Same slug for two servers on one host.
		{ServerURL: "https://example.com/mcp", Tools: []Tool{{Name: "search"}, {Name: "a.b"}, {Name: "a_b"}, {Name: longTool}, {Name: longTool + "y"}}},
		{ServerURL: "https://example.com/sse", Tools: []Tool{{Name: "search"}, {Name: "ünïcode/tool name"}, {Name: ""}}},
		{ServerURL: "https://other.example.com/mcp", Tools: []Tool{{Name: "search"}}},
	}
	ts, err := NewToolset(servers)
	require.NoError(t, err)

	names := map[string]bool{}
	for _, srv := range servers {
		for _, tool := range srv.Tools {
			name, ok := ts.FunctionName(srv.ServerURL, tool.Name)
			require.True(t, ok, tool.Name)
			require.Regexp(t, functionNameRE, name)
			require.False(t, names[name], "duplicate name %q", name)
			names[name] = true
			gotServer, gotTool, ok := ts.Resolve(name)
			require.True(t, ok)
			require.Equal(t, srv.ServerURL, gotServer)
			require.Equal(t, tool.Name, gotTool)
		}
	}
	// Uncontested names stay readable.
	name, _ := ts.FunctionName("https://other.example.com/mcp", "search")
	require.Equal(t, "other_example_com__search", name)
	// Both servers on example.com got distinct hashed slugs.
	a, _ := ts.FunctionName("https://example.com/mcp", "search")
	b, _ := ts.FunctionName("https://example.com/sse", "search")
	require.True(t, strings.HasPrefix(a, "example_com_"), a)
	require.True(t, strings.HasPrefix(b, "example_com_"), b)
	require.NotEqual(t, a, b)
	require.Len(t, ts.FunctionTools(), len(names))

	// Same inputs in another order give the same names.
	reversed := []ServerTools{servers[2], servers[1], {ServerURL: servers[0].ServerURL, Tools: reverse(servers[0].Tools)}}
	ts2, err := NewToolset(reversed)
	require.NoError(t, err)
	for name := range names {
		s1, t1, _ := ts.Resolve(name)
		s2, t2, ok := ts2.Resolve(name)
		require.True(t, ok, name)
		require.Equal(t, s1, s2)
		require.Equal(t, t1, t2)
	}
}

func TestToolsetDuplicateServer(t *testing.T) {
	t.Parallel()

	_, err := NewToolset([]ServerTools{{ServerURL: "https://a.example/mcp"}, {ServerURL: "https://a.example/mcp"}})
	require.ErrorContains(t, err, "listed twice")
}

func reverse(tools []Tool) []Tool {
	out := make([]Tool, len(tools))
	for i, tool := range tools {
		out[len(tools)-1-i] = tool
	}
	return out
}
