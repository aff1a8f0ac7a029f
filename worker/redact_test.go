package worker

import "testing"

func TestRedactQueries(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`error connecting to MCP server https://mcp.example.com/mcp?key=sk-123&x=1: 401`: `error connecting to MCP server https://mcp.example.com/mcp?…: 401`,
		`Post "http://h:8080/a?token=abc": dial tcp: refused`:                            `Post "http://h:8080/a?…": dial tcp: refused`,
		`no query https://mcp.example.com/mcp here`:                                      `no query https://mcp.example.com/mcp here`,
		`two https://a.example/x?k=1 and https://b.example/y?s=2#frag`:                   `two https://a.example/x?… and https://b.example/y?…#frag`,
	} {
		if got := redactQueries(in); got != want {
			t.Errorf("redactQueries(%q) = %q, want %q", in, got, want)
		}
	}
}
