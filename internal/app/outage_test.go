package app_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// While PostgreSQL cannot be reached the API answers 503 with Retry-After
// and /readyz says not ready; once it is back, the same process serves
// again and runs tasks, without a restart.
func TestDatabaseOutageIs503AndHeals(t *testing.T) {
	t.Parallel()
	direct, err := url.Parse(storetest.PostgresURL(t))
	require.NoError(t, err)
	proxy := newTCPProxy(t, direct.Host)
	viaProxy := *direct
	viaProxy.Host = proxy.addr
	env := startEnv(t, viaProxy.String())
	env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "done"} })

	before := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "before"}))
	require.Equal(t, "completed", before.Status)

	proxy.cut()
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/tasks"},
		{"GET", "/v1/tasks/" + before.ID},
		{"GET", "/v1/tasks?user=u"},
		{"GET", "/r/" + resultToken(t, before) + ".json"},
	} {
		status, raw, header := call(t, c.method, env.URL+c.path, keyAcme, map[string]any{"user": "u", "model": "m", "input": "during"})
		require.Equal(t, http.StatusServiceUnavailable, status, "%s %s: %s", c.method, c.path, raw)
		require.Contains(t, string(raw), `"code":"database_unavailable"`)
		require.NotEmpty(t, header.Get("Retry-After"), "%s %s", c.method, c.path)
	}
	// A chat request with MCP tools reads the user's login from the
	// database too.
	mcp := mcptest.New(t, mcptest.StreamableHTTP)
	status, raw, header := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, map[string]any{
		"user": "u", "model": "m", "messages": []map[string]any{{"role": "user", "content": "during"}},
		"tools": []map[string]any{{"type": "mcp", "url": mcp.URL}}})
	require.Equal(t, http.StatusServiceUnavailable, status, "chat with MCP tools: %s", raw)
	require.Contains(t, string(raw), `"code":"database_unavailable"`)
	require.NotEmpty(t, header.Get("Retry-After"), "chat with MCP tools")

	status, raw, header = call(t, "GET", env.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status, string(raw))
	require.NotEmpty(t, header.Get("Retry-After"), "/readyz")
	status, _, _ = call(t, "GET", env.URL+"/healthz", "", nil)
	require.Equal(t, http.StatusOK, status, "the process itself is alive")

	proxy.restore()
	require.Eventually(t, func() bool {
		status, _, _ := call(t, "GET", env.URL+"/readyz", "", nil)
		return status == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "ready again once the database is back")
	status, raw, _ = call(t, "GET", env.URL+"/v1/tasks/"+before.ID, keyAcme, nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	after := waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "after"}))
	require.Equal(t, "completed", after.Status, "workers run tasks again: %+v", after.Error)
}

func resultToken(t *testing.T, tk task) string {
	u, err := url.Parse(tk.ResultURLs.JSON)
	require.NoError(t, err)
	return u.Path[len("/r/") : len(u.Path)-len(".json")]
}

// tcpProxy forwards a loopback port to a target; cut closes the port and
// every connection through it (the database "goes away"), restore opens
// the same port again.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

func (p *tcpProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}
