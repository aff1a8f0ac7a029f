package loadbench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/app"
)

// DefaultPostgresURL is the development machines' PostgreSQL.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Main is the command: it parses args and runs the benchmark, writing the
// table to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcpidp-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.DurationVar(&cfg.Duration, "d", 3*time.Second, "duration of one run (one scenario, one target)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds: each scenario runs this many times per target, alternating which target goes first")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(Scenarios, ","))
	targets := fs.String("targets", "", "comma-separated targets: direct,mcpidp (default both)")
	fs.StringVar(&cfg.PostgresURL, "postgres", envOr("MCPIDP_TEST_POSTGRES_URL", DefaultPostgresURL), "PostgreSQL server for tasks_pg (a schema of its own is created and dropped)")
	fs.BoolVar(&cfg.Quick, "quick", false, "a short smoke run: one round of 200ms")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile (allocs) of the whole run to this file")
	gcPercent := fs.Int("gc-percent", app.DefaultGCPercent, "the garbage collector's target for the whole process, as the server commands set it (MCPIDP_GC_PERCENT); GOGC, when set, wins")
	logLevel := fs.String("log", "", "show mcpidp's logs at this level (debug, info, warn, error) on stderr; default: formatted at info and discarded, as production pays for them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scenarios != "" {
		cfg.Scenarios = strings.Split(*scenarios, ",")
	}
	if *targets != "" {
		cfg.Targets = strings.Split(*targets, ",")
	}
	if *logLevel != "" {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("-log: %w", err)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// One process holds generator, fakes and mcpidp: it runs with the
	// collector's target mcpidp's server commands set (app.TuneGC), so
	// both targets are measured under it.
	app.TuneGC(&app.Config{GCPercent: *gcPercent}, os.Getenv)
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	fmt.Fprintf(stdout, "mcpidp-load: %s, GOMAXPROCS=%d, %d CPUs, GOGC=%d\n", runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), gogc)
	err := Run(ctx, cfg, stdout)
	if *memProfile != "" {
		f, ferr := os.Create(*memProfile)
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		if werr := pprof.Lookup("allocs").WriteTo(f, 0); werr != nil {
			return werr
		}
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
