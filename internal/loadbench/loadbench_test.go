package loadbench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQuick runs every scenario for a moment against both targets (the
// task scenario on PostgreSQL), so the benchmark cannot rot: every request
// must succeed and every row must be printed with numbers.
func TestQuick(t *testing.T) {
	pg := os.Getenv("MCPIDP_TEST_POSTGRES_URL")
	if pg == "" {
		pg = DefaultPostgresURL
	}
	var out bytes.Buffer
	err := Run(context.Background(), Config{Quick: true, PostgresURL: pg}, &out)
	t.Log("\n" + out.String())
	require.NoError(t, err)
	for _, label := range []string{"chat, 1 connection", "500 req/s", "1000 req/s", "16 connections flat out", "64 connections flat out",
		"chat stream", "one MCP tool call", "task submission, PostgreSQL"} {
		var row string
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, label) {
				row = line
			}
		}
		require.NotEmpty(t, row, "no row for %q", label)
		require.Regexp(t, `\|\d+(\.\d+)? (µs|ms) +\|`, row, "row %q has no latencies", label)
	}
}

func TestQuantile(t *testing.T) {
	s := sample{}
	for i := 1; i <= 100; i++ {
		s.latencies = append(s.latencies, durationMS(101-i))
	}
	require.Equal(t, durationMS(50), s.quantile(0.50))
	require.Equal(t, durationMS(99), s.quantile(0.99))
	require.Equal(t, durationMS(100), s.quantile(1))
}

func durationMS(n int) (d time.Duration) { return time.Duration(n) * time.Millisecond }
