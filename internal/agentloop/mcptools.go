package agentloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/redact"
)

// ConnectFunc opens a session to one MCP server (with the user's
// credentials, through the SSRF guard).
type ConnectFunc func(ctx context.Context, server mcpclient.Server) (*mcpclient.Session, error)

// ChallengesError reports every server of a run that asked for a login, so
// that all login links can be sent at once.
type ChallengesError struct {
	Challenges []*mcpclient.AuthChallengeError
}

func (e *ChallengesError) Error() string {
	urls := make([]string, len(e.Challenges))
	for i, c := range e.Challenges {
		urls[i] = c.ServerURL
	}
	return "authorization required by " + strings.Join(urls, ", ")
}

// MCPTools is the set of MCP servers of one run: one session per server,
// reused across steps.
type MCPTools struct {
	sessions map[string]*mcpclient.Session
	toolset  *mcpclient.Toolset
	servers  []mcpclient.ServerTools
}

// ConnectMCP connects to all servers in parallel and lists their tools. When
// servers answer with authorization challenges, the error is a
// *ChallengesError naming all of them; other failures are returned as they
// are (the first one, by server order).
func ConnectMCP(ctx context.Context, connect ConnectFunc, servers []mcpclient.Server) (*MCPTools, error) {
	type result struct {
		session *mcpclient.Session
		tools   []mcpclient.Tool
		err     error
	}
	results := make([]result, len(servers))
	open := func(i int, srv mcpclient.Server) {
		s, err := connect(ctx, srv)
		if err != nil {
			results[i].err = err
			return
		}
		tools, err := s.Tools(ctx)
		if err != nil {
			_ = s.Close()
			results[i].err = err
			return
		}
		results[i] = result{session: s, tools: tools}
	}
	if len(servers) == 1 {
		// Nothing to overlap: the caller's goroutine, whose stack has grown already, does it.
		open(0, servers[0])
	} else {
		var wg sync.WaitGroup
		for i, srv := range servers {
			wg.Go(func() { open(i, srv) })
		}
		wg.Wait()
	}

	m := &MCPTools{sessions: map[string]*mcpclient.Session{}}
	var challenges []*mcpclient.AuthChallengeError
	var firstErr error
	var serverTools []mcpclient.ServerTools
	for i, r := range results {
		var ch *mcpclient.AuthChallengeError
		switch {
		case errors.As(r.err, &ch):
			challenges = append(challenges, ch)
		case r.err != nil && firstErr == nil:
			// Causes from the HTTP client name the URL dialed, whose query
			// may hold a key; this error is shown and logged.
			firstErr = redact.Error(r.err)
		case r.err == nil:
			m.sessions[servers[i].URL] = r.session
			serverTools = append(serverTools, mcpclient.ServerTools{ServerURL: servers[i].URL, Tools: r.tools})
		}
	}
	if len(challenges) > 0 || firstErr != nil {
		m.Close()
		if len(challenges) > 0 {
			return nil, &ChallengesError{Challenges: challenges}
		}
		return nil, firstErr
	}
	ts, err := mcpclient.NewToolset(serverTools)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("error naming MCP tools: %w", err)
	}
	m.toolset, m.servers = ts, serverTools
	return m, nil
}

// Servers returns each server's tools as listed (after allowed_tools), in
// the order the servers were given.
func (m *MCPTools) Servers() []mcpclient.ServerTools { return m.servers }

// FunctionName returns the function name the model is offered for a
// server's tool.
func (m *MCPTools) FunctionName(serverURL, tool string) (string, bool) {
	return m.toolset.FunctionName(serverURL, tool)
}

// FunctionTools implements Tools.
func (m *MCPTools) FunctionTools() []json.RawMessage { return m.toolset.FunctionTools() }

// Resolve implements Tools.
func (m *MCPTools) Resolve(function string) (string, string, bool) {
	return m.toolset.Resolve(function)
}

// SafeToRepeat implements RepeatChecker: the server annotated the tool
// readOnlyHint or idempotentHint.
func (m *MCPTools) SafeToRepeat(function string) bool {
	t, ok := m.toolset.Tool(function)
	return ok && t.Annotations.SafeToRepeat()
}

// ReadOnly implements ReadOnlyChecker: the server annotated the tool
// readOnlyHint.
func (m *MCPTools) ReadOnly(function string) bool {
	t, ok := m.toolset.Tool(function)
	return ok && t.Annotations.ReadOnlyHint
}

// Call implements Tools.
func (m *MCPTools) Call(ctx context.Context, function string, arguments json.RawMessage) (*ToolResult, error) {
	serverURL, tool, ok := m.toolset.Resolve(function)
	if !ok {
		return nil, fmt.Errorf("there is no tool named %q", function)
	}
	res, err := m.sessions[serverURL].CallTool(ctx, tool, arguments)
	if err != nil {
		return nil, redact.Error(err) // shown to the model and recorded in the step
	}
	return toolResult(res), nil
}

// toolResult is what the loop takes from an MCP tool's result.
func toolResult(res *mcpclient.CallResult) *ToolResult {
	out := &ToolResult{Text: res.Text, IsError: res.IsError, StructuredContent: res.StructuredContent, Resources: res.Resources}
	for _, img := range res.Images {
		out.Images = append(out.Images, Image{MIMEType: img.MIMEType, Size: len(img.Data), Data: img.Data})
	}
	out.KeepImagesFunc = func(n int) string {
		res.KeepImages(n)
		return res.Text
	}
	return out
}

// Close ends every session.
func (m *MCPTools) Close() {
	for _, s := range m.sessions {
		_ = s.Close()
	}
}
