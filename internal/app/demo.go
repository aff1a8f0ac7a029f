package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpidp/mcpidp/internal/cli"
	"github.com/mcpidp/mcpidp/internal/demo"
	"github.com/mcpidp/mcpidp/internal/store"
)

// demoUser is the end user the demo's task acts for.
const demoUser = "demo-user"

// runDemo is `mcpidp demo`: mcpidp on a temporary SQLite database, beside
// an OAuth-protected demo MCP server and (without OPENAI_API_KEY) a
// scripted model, all in this process; it submits a task that needs the
// person to log in, prints the login link, and shows the task resume and
// finish.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "Runs mcpidp with a demo MCP server that needs an OAuth login, submits a task to it, prints\n"+
		"the login link, and shows the task resume and finish once you have allowed access.\n"+
		"Uses the real model when OPENAI_API_KEY is set (and OPENAI_BASE_URL, if set), else a scripted one.\n"+
		"Needs no keys and no network; everything is deleted when it ends.", nil, stdout)
	listen := fs.String("listen", "127.0.0.1:0", "address mcpidp listens on (default: a free loopback port)")
	model := fs.String("model", "", "model to use (default: gpt-4.1-mini with OPENAI_API_KEY, else the scripted model)")
	input := fs.String("input", "What will the weather be in Paris tomorrow?", "the task's input")
	stay := fs.Bool("stay", false, "keep mcpidp running after the task ends, until interrupted")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mcpidp-demo-")
	if err != nil {
		return fmt.Errorf("error making the demo's directory: %w", err)
	}
	defer os.RemoveAll(dir)
	servers := demo.Start()
	defer servers.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", *listen, err)
	}
	host, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every address: the links use loopback
	}
	base := "http://" + net.JoinHostPort(host, port)
	key := "demo_" + store.NewToken()
	env := map[string]string{
		"MCPIDP_DATABASE_URL":           "sqlite:" + filepath.Join(dir, "demo.db"),
		"MCPIDP_API_KEYS":               "demo:" + key,
		"MCPIDP_ALLOW_PRIVATE_NETWORKS": "true", // the demo's servers are on loopback
		"MCPIDP_PUBLIC_URL":             base,
		"MCPIDP_LOG_LEVEL":              "warn",
		"MCPIDP_UPSTREAM_BASE_URL":      servers.ModelURL,
		"MCPIDP_UPSTREAM_API_KEY":       "demo",
	}
	modelName, modelDesc := demo.Model, "the built-in scripted model (set OPENAI_API_KEY for a real one)"
	if apiKey := getenv("OPENAI_API_KEY"); apiKey != "" {
		env["MCPIDP_UPSTREAM_API_KEY"] = apiKey
		env["MCPIDP_UPSTREAM_BASE_URL"] = getenv("OPENAI_BASE_URL")
		modelName = "gpt-4.1-mini"
	}
	if *model != "" {
		modelName = *model
	}
	cfg, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	if getenv("OPENAI_API_KEY") != "" {
		modelDesc = modelName + " at " + cfg.UpstreamBaseURL
	}
	a, err := New(ctx, cfg, ModeServe, Options{Logger: newLogger(cfg, stderr), Migrate: true})
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Serve(serveCtx, ln) }()
	defer func() {
		stop()
		<-served
	}()
	if err := waitReady(ctx, base, served); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "mcpidp demo\n  mcpidp:      %s (a temporary SQLite database)\n  MCP server:  %s (its own OAuth server asks you to allow access)\n  model:       %s\n\n",
		base, servers.MCPURL, modelDesc)
	client := cli.NewClient(base, key, nil)
	t, err := client.CreateTask(ctx, map[string]any{
		"user": demoUser, "model": modelName, "input": *input,
		"tools": []map[string]any{{"type": "mcp", "url": servers.MCPURL}},
	})
	if err != nil {
		return fmt.Errorf("error submitting the demo task: %w", err)
	}
	fmt.Fprintf(stdout, "Submitted task %s for %s: %q\nOpen the login link below in your browser and click Allow; the task then resumes.\n\n", t.ID, demoUser, *input)
	done, err := (&cli.Watcher{Client: client, Progress: stdout}).Wait(ctx, t.ID)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: the person is done with the demo
		}
		return err
	}
	fmt.Fprintln(stdout, "\nAnswer:")
	if err := cli.Finish(done, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe transcript: %s\n", done.ResultURLs.Markdown)
	if *stay {
		fmt.Fprintf(stdout, "\nmcpidp keeps running until you press Ctrl-C. Try the client:\n  MCPIDP_URL=%s MCPIDP_API_KEY=%s mcpidp tasks list\n", base, key)
		<-ctx.Done()
	}
	return nil
}

// waitReady waits until the server at base answers /readyz, or its Serve
// ended.
func waitReady(ctx context.Context, base string, served <-chan error) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-served:
			return fmt.Errorf("mcpidp stopped before it was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
