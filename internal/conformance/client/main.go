// Command client is mcpidp as the client under test of the MCP conformance
// suite. The suite runs it as `client <server-url>` with
// MCP_CONFORMANCE_SCENARIO (and for some scenarios MCP_CONFORMANCE_CONTEXT)
// in its environment; it exits non-zero when the scenario's client side
// failed.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpidp/mcpidp/internal/conformance"
)

// timeout stays under the suite's default client timeout (30 s), so a hang
// ends as an error of ours rather than a kill.
const timeout = 25 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance client:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: %s <mcp-server-url>", args[0])
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "mcpidp-conformance-")
	if err != nil {
		return fmt.Errorf("error creating database directory: %w", err)
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return conformance.Run(ctx, conformance.Config{
		ServerURL: args[len(args)-1],
		Scenario:  getenv("MCP_CONFORMANCE_SCENARIO"),
		Context:   getenv("MCP_CONFORMANCE_CONTEXT"),
		Dir:       dir,
		Logger:    logger,
	})
}
