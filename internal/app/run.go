package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/mcpidp/mcpidp/internal/cli"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/webhooks"
)

const usage = `mcpidp — MCP tool calling with per-user OAuth for any OpenAI-compatible LLM

Usage:
  mcpidp serve                      API and workers in one process (migrates first)
  mcpidp api                        API only (PostgreSQL)
  mcpidp worker                     workers only (PostgreSQL)
  mcpidp migrate [up | down --steps N]
  mcpidp keys create --tenant NAME  print a new API key and the tenant's webhook secret
  mcpidp demo                       try it: a demo MCP server with an OAuth login, no keys, no network

Client of a running mcpidp (MCPIDP_URL, MCPIDP_API_KEY):
` + cli.Usage + `
Run "mcpidp COMMAND --help" for a command's flags and environment variables.
`

// Run is the whole program. main passes the process's arguments (without
// the program name), environment and output streams.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "serve":
		return runServer(ctx, ModeServe, args[1:], getenv, stdout, stderr)
	case "api":
		return runServer(ctx, ModeAPI, args[1:], getenv, stdout, stderr)
	case "worker":
		return runServer(ctx, ModeWorker, args[1:], getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		if len(args) < 2 || args[1] != "create" {
			return errors.New(`usage: mcpidp keys create --tenant NAME`)
		}
		return runKeysCreate(ctx, args[2:], getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], getenv, stdout, stderr)
	case "tasks", "connections", "run":
		return cli.Run(ctx, args, getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
}

// ErrHelp is returned after --help was printed.
var errHelp = flag.ErrHelp

func newFlagSet(name, about string, vars []string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: mcpidp %s\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
		if len(vars) == 0 {
			return
		}
		fmt.Fprintln(stdout, "\nEnvironment:")
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		for _, v := range envVars {
			for _, want := range vars {
				if v.Name == want {
					fmt.Fprintf(tw, "  %s\t%s\t(default %s)\n", v.Name, v.Help, v.Default)
				}
			}
		}
		tw.Flush()
	}
	return fs
}

func allEnvNames() []string {
	out := make([]string, len(envVars))
	for i, v := range envVars {
		out[i] = v.Name
	}
	return out
}

func parseFlags(fs *flag.FlagSet, args []string) (bool, error) {
	err := fs.Parse(args)
	if errors.Is(err, errHelp) {
		return true, nil
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, err
}

func newLogger(cfg *Config, stderr io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(stderr, opts))
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

func runServer(ctx context.Context, mode Mode, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, about := "serve", "Runs the API and the workers in one process. Applies migrations first."
	switch mode {
	case ModeAPI:
		name, about = "api", "Runs the HTTP API only; workers run in other processes (PostgreSQL only)."
	case ModeWorker:
		name, about = "worker", "Runs workers only: task segments and periodic jobs (PostgreSQL only)."
	}
	fs := newFlagSet(name, about, allEnvNames(), stdout)
	listen := fs.String("listen", "", "address to listen on (overrides MCPIDP_LISTEN)")
	noMigrate := fs.Bool("no-migrate", false, "do not apply migrations on start (serve only)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
		if getenv("MCPIDP_PUBLIC_URL") == "" {
			if _, port, err := net.SplitHostPort(*listen); err == nil {
				cfg.PublicURL = "http://localhost:" + port
			}
		}
	}
	TuneGC(cfg, getenv)
	logger := newLogger(cfg, stderr)
	a, err := New(ctx, cfg, mode, Options{Logger: logger, Migrate: mode == ModeServe && !*noMigrate})
	if err != nil {
		return err
	}
	defer a.Close()
	var ln net.Listener
	if mode != ModeWorker {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("error listening on %s: %w", cfg.Listen, err)
		}
	}
	return a.Serve(ctx, ln)
}

// TuneGC sets the garbage collector's target to cfg.GCPercent unless the
// operator set GOGC (which the Go runtime has applied already). It is a
// setting of the whole process, so only the server commands (and the load
// benchmark, to measure what they run) call it.
//
// Why not Go's default of 100: mcpidp's live heap is small (a few MB) and
// every request allocates, so at 100 the collector runs several times a
// second under load, and the requests that meet a collection (its pauses,
// and the CPU it takes from them while it marks) make the slowest
// percentile. 400 collects a quarter as often for a heap that peaks at
// five times what is live instead of twice; GOMEMLIMIT bounds it.
func TuneGC(cfg *Config, getenv func(string) string) {
	if strings.TrimSpace(getenv("GOGC")) != "" {
		return
	}
	debug.SetGCPercent(cfg.GCPercent)
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	direction := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		direction, args = args[0], args[1:]
	}
	fs := newFlagSet("migrate [up | down --steps N]", "Applies mcpidp's and River's migrations (up), or reverts the newest N of mcpidp's (down).",
		[]string{"MCPIDP_DATABASE_URL", "MCPIDP_ENCRYPTION_KEY", "MCPIDP_LOG_LEVEL", "MCPIDP_LOG_FORMAT"}, stdout)
	steps := fs.Int("steps", 1, "with down: how many migrations to revert")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	a, err := New(ctx, cfg, ModeServe, Options{Logger: newLogger(cfg, stderr)})
	if err != nil {
		return err
	}
	defer a.Close()
	switch direction {
	case "up":
		if err := a.migrateUp(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations are current")
	case "down":
		done, err := a.store.MigrateDown(ctx, *steps)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reverted mcpidp migrations %v\n", done)
	default:
		return fmt.Errorf("migrate: unknown direction %q, want up or down", direction)
	}
	return nil
}

func runKeysCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys create --tenant NAME", "Creates an API key for the tenant (creating the tenant if needed) and prints it once, with the tenant's webhook signing secret.",
		[]string{"MCPIDP_DATABASE_URL", "MCPIDP_ENCRYPTION_KEY"}, stdout)
	tenant := fs.String("tenant", "", "tenant name (required)")
	webhookURL := fs.String("webhook-url", "", "set the tenant's default webhook URL (connection events; tasks without their own webhook)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if strings.TrimSpace(*tenant) == "" {
		return errors.New("keys create: --tenant is required")
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	a, err := New(ctx, cfg, ModeServe, Options{Logger: newLogger(cfg, stderr), Migrate: true})
	if err != nil {
		return err
	}
	defer a.Close()
	key, secret, err := a.CreateKey(ctx, strings.TrimSpace(*tenant))
	if err != nil {
		return err
	}
	if *webhookURL != "" {
		if _, err := netguard.ValidateURL(*webhookURL); err != nil {
			return fmt.Errorf("--webhook-url: %w", err)
		}
		if err := a.store.SetTenantWebhookURL(ctx, a.store.DB(), strings.TrimSpace(*tenant), *webhookURL); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "tenant:         %s\napi_key:        %s\nwebhook_secret: %s\n\nThe API key is shown only now; it is stored hashed.\n", *tenant, key, secret)
	return nil
}

// CreateKey makes a new API key for tenant (creating the tenant and its
// webhook secret when needed) and returns the key and the webhook secret.
func (a *App) CreateKey(ctx context.Context, tenant string) (string, string, error) {
	st := a.store
	if err := st.UpsertTenant(ctx, st.DB(), tenant, ""); err != nil {
		return "", "", err
	}
	t, err := st.GetTenant(ctx, st.DB(), tenant)
	if err != nil {
		return "", "", err
	}
	var secret string
	if t.WebhookSecret != "" {
		plain, err := a.keyring.Open(t.WebhookSecret, []byte("webhook-secret"))
		if err != nil {
			return "", "", fmt.Errorf("error decrypting the tenant's webhook secret: %w", err)
		}
		secret = string(plain)
	} else {
		if secret, err = webhooks.NewSecret(); err != nil {
			return "", "", err
		}
		sealed, err := a.keyring.Seal([]byte(secret), []byte("webhook-secret"))
		if err != nil {
			return "", "", err
		}
		if err := st.UpsertTenant(ctx, st.DB(), tenant, sealed); err != nil {
			return "", "", err
		}
	}
	key := "mcpidp_" + store.NewToken()
	if _, err := st.CreateAPIKey(ctx, st.DB(), tenant, store.HashKey(key)); err != nil {
		return "", "", err
	}
	return key, secret, nil
}
