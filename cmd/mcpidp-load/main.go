// Command mcpidp-load measures what mcpidp adds to a chat request, direct
// vs through `mcpidp serve`, and how fast it accepts tasks on PostgreSQL;
// see BENCHMARKS.md. The work is internal/loadbench's.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/mcpidp/mcpidp/internal/loadbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := loadbench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpidp-load:", err)
		os.Exit(1)
	}
}
