package mcpclient

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

const (
	// MaxFunctionNameLen is the longest function name OpenAI-compatible APIs accept.
	MaxFunctionNameLen = 64
	// maxSlugLen keeps server slugs short enough to leave room for tool names.
	maxSlugLen = 32
	// separator joins a server slug and a tool name. Slugs never contain it.
	separator = "__"
)

// Slug returns a short readable name for an MCP server URL, used as the prefix of its tools'
// function names. The rule:
//
//   - the host name, lowercased, without a leading "www.";
//   - then the port, when the URL names one;
//   - then the path segments, except the conventional endpoint names "mcp" and "sse";
//   - joined with "_"; every run of characters other than a-z, 0-9 and "-" becomes one "_", and
//     "_" and "-" are trimmed from the ends;
//   - longer than 32 characters: cut to 25 and suffixed with "_" and 6 hex digits of the SHA-256 of
//     the whole URL.
//
// So https://mcp.notion.com/mcp → "mcp_notion_com", https://mcp.linear.app/sse → "mcp_linear_app",
// http://127.0.0.1:8080/github/mcp → "127_0_0_1_8080_github". An unparsable or empty result is
// "mcp". The slug never contains "__". Two URLs may share a slug; Toolset tells them apart.
func Slug(serverURL string) string {
	var parts []string
	if u, err := url.Parse(serverURL); err == nil {
		host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
		parts = append(parts, host)
		if port := u.Port(); port != "" {
			parts = append(parts, port)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if lower := strings.ToLower(seg); lower != "" && lower != "mcp" && lower != "sse" {
				parts = append(parts, lower)
			}
		}
	}
	slug := sanitizeSlug(strings.Join(parts, "_"))
	if slug == "" {
		return "mcp"
	}
	if len(slug) > maxSlugLen {
		slug = strings.TrimRight(slug[:maxSlugLen-7], "_-") + "_" + shortHash(6, serverURL)
	}
	return slug
}

// ServerTools is the tools of one server, as input to NewToolset.
type ServerTools struct {
	ServerURL string
	Tools     []Tool
}

// Toolset names the tools of a run's MCP servers as OpenAI function tools and maps the names back.
//
// A function name is "<server-slug>__<tool>", where the tool name has every character outside
// [a-zA-Z0-9_-] replaced by "_". When that is longer than 64 characters, or when two tools end up
// with the same name (two servers with the same slug, or tool names that differ only in replaced
// characters), the name is cut and suffixed with "_" and a hash of the server URL and the original
// tool name. Names depend only on the (server URL, tool name) pairs given, not on their order, so a
// resumed run maps names identically.
type Toolset struct {
	entries []toolsetEntry
	byName  map[string]int
	byTool  map[toolKey]int
}

type toolKey struct{ serverURL, tool string }

type toolsetEntry struct {
	name      string
	serverURL string
	tool      Tool
}

// NewToolset names the given servers' tools. Function tools come out in the order given. A server
// URL given twice is an error; a tool name repeated within one server is kept once.
func NewToolset(servers []ServerTools) (*Toolset, error) {
	slugs := make(map[string]string, len(servers)) // server URL → slug
	bySlug := map[string][]string{}
	for _, srv := range servers {
		if _, dup := slugs[srv.ServerURL]; dup {
			return nil, fmt.Errorf("MCP server %s is listed twice", srv.ServerURL)
		}
		slug := Slug(srv.ServerURL)
		slugs[srv.ServerURL] = slug
		bySlug[slug] = append(bySlug[slug], srv.ServerURL)
	}
	for slug, urls := range bySlug {
		if len(urls) > 1 {
			for _, u := range urls {
				slugs[u] = strings.TrimRight(cut(slug, maxSlugLen-7), "_-") + "_" + shortHash(6, u)
			}
		}
	}

	ts := &Toolset{byName: map[string]int{}, byTool: map[toolKey]int{}}
	for _, srv := range servers {
		for _, tool := range srv.Tools {
			key := toolKey{srv.ServerURL, tool.Name}
			if _, dup := ts.byTool[key]; dup {
				continue
			}
			ts.byTool[key] = len(ts.entries)
			ts.entries = append(ts.entries, toolsetEntry{
				name:      functionName(slugs[srv.ServerURL], srv.ServerURL, tool.Name, 0),
				serverURL: srv.ServerURL,
				tool:      tool,
			})
		}
	}

	// Colliding names are all replaced by hashed ones, whatever their order, so the outcome does not
	// depend on which tool came first. Longer hashes settle the (unlikely) remaining collisions.
	for _, hashLen := range []int{8, 16, 32} {
		groups := map[string][]int{}
		for i, e := range ts.entries {
			groups[e.name] = append(groups[e.name], i)
		}
		collided := false
		for _, idx := range groups {
			if len(idx) < 2 {
				continue
			}
			collided = true
			for _, i := range idx {
				e := &ts.entries[i]
				e.name = functionName(slugs[e.serverURL], e.serverURL, e.tool.Name, hashLen)
			}
		}
		if !collided {
			break
		}
	}
	for i, e := range ts.entries {
		if prev, dup := ts.byName[e.name]; dup {
			return nil, fmt.Errorf("cannot name tools %q of %s and %q of %s apart", ts.entries[prev].tool.Name,
				ts.entries[prev].serverURL, e.tool.Name, e.serverURL)
		}
		ts.byName[e.name] = i
	}
	return ts, nil
}

// FunctionTools returns one OpenAI function tool per MCP tool:
// {"type":"function","function":{"name":…,"description":…,"parameters":…}}, where parameters is the
// tool's input schema, or {"type":"object","properties":{}} when it has none.
func (ts *Toolset) FunctionTools() []json.RawMessage {
	type function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
	}
	out := make([]json.RawMessage, 0, len(ts.entries))
	for _, e := range ts.entries {
		params := e.tool.InputSchema
		if !isJSONObject(params) {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		raw, err := json.Marshal(struct {
			Type     string   `json:"type"`
			Function function `json:"function"`
		}{"function", function{Name: e.name, Description: e.tool.Description, Parameters: params}})
		if err != nil {
			// Only an invalid schema can fail, and isJSONObject has ruled that out.
			panic(fmt.Sprintf("mcpclient: error marshaling function tool %q: %v", e.name, err))
		}
		out = append(out, raw)
	}
	return out
}

// Resolve maps a function name back to its server URL and MCP tool name.
func (ts *Toolset) Resolve(functionName string) (serverURL, toolName string, ok bool) {
	i, ok := ts.byName[functionName]
	if !ok {
		return "", "", false
	}
	return ts.entries[i].serverURL, ts.entries[i].tool.Name, true
}

// Tool returns the tool behind a function name.
func (ts *Toolset) Tool(functionName string) (Tool, bool) {
	i, ok := ts.byName[functionName]
	if !ok {
		return Tool{}, false
	}
	return ts.entries[i].tool, true
}

// FunctionName returns the function name given to a server's tool.
func (ts *Toolset) FunctionName(serverURL, toolName string) (string, bool) {
	i, ok := ts.byTool[toolKey{serverURL, toolName}]
	if !ok {
		return "", false
	}
	return ts.entries[i].name, true
}

// functionName builds "<slug>__<tool>". With hashLen 0 it hashes only when the name is too long;
// otherwise it always appends hashLen hex digits.
func functionName(slug, serverURL, tool string, hashLen int) string {
	name := slug + separator + sanitizeTool(tool)
	if hashLen == 0 {
		if len(name) <= MaxFunctionNameLen {
			return name
		}
		hashLen = 8
	}
	return cut(name, MaxFunctionNameLen-hashLen-1) + "_" + shortHash(hashLen, serverURL+"\x00"+tool)
}

func sanitizeTool(name string) string {
	if name == "" {
		return "tool"
	}
	b := []byte(name)
	for i, c := range b {
		if !isNameChar(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func sanitizeSlug(s string) string {
	var b strings.Builder
	underscore := false
	for _, c := range []byte(strings.ToLower(s)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteByte(c)
			underscore = false
			continue
		}
		if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.Trim(b.String(), "_-")
}

func isNameChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func shortHash(n int, s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

func isJSONObject(raw json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(raw, &obj) == nil && obj != nil
}
