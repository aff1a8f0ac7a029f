package testenv

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNode22(t *testing.T) {
	t.Parallel()

	out, err := exec.Command(Node22(t), "--version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(out), "v22."), "got %q", out)
}

func TestFreePort(t *testing.T) {
	t.Parallel()

	port := FreePort(t)
	require.Positive(t, port)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestStartProcessKillsGroupAtCleanup(t *testing.T) {
	t.Parallel()

	port := FreePort(t)
	var cmd *exec.Cmd
	t.Run("start", func(t *testing.T) {
		// A Node one-liner listening on the port stands in for a peer.
		script := "require('net').createServer().listen(" + strconv.Itoa(port) + ", '127.0.0.1')"
		cmd = StartProcess(t, Node(t), []string{"-e", script}, nil, PortReady(port))
		require.True(t, PortReady(port)())
	})
	// The subtest's cleanup has run: the peer is gone and its port refuses connections.
	require.NotNil(t, cmd.ProcessState)
	require.Eventually(t, func() bool { return !PortReady(port)() }, 5*time.Second, 50*time.Millisecond)
}

func TestStartEverything(t *testing.T) {
	t.Parallel()

	url := StartEverything(t)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"))
	require.True(t, strings.HasSuffix(url, "/mcp"))
}
