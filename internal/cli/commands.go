package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// DefaultURL is where the commands find mcpidp when MCPIDP_URL is unset:
// `mcpidp serve` on its default address.
const DefaultURL = "http://127.0.0.1:8080"

// Usage lists the client commands, for mcpidp's own usage text.
const Usage = `  mcpidp tasks create|get|list|wait|cancel   tasks, over the HTTP API
  mcpidp connections list|connect|delete    a user's MCP logins, over the HTTP API
  mcpidp run FILE.md                        run the task a markdown file describes and print its answer
`

const envHelp = `
Environment:
  MCPIDP_URL      the mcpidp to talk to (default ` + DefaultURL + `)
  MCPIDP_API_KEY  its API key (mcpidp keys create, or MCPIDP_API_KEYS on the server)
`

// Run runs a client command: args[0] is "tasks", "connections" or "run".
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	base := getenv("MCPIDP_URL")
	if base == "" {
		base = DefaultURL
	}
	c := &commands{
		client: NewClient(base, getenv("MCPIDP_API_KEY"), nil),
		stdout: stdout, stderr: stderr,
	}
	sub := ""
	if len(args) > 1 {
		sub = args[1]
	}
	var fn func(context.Context, []string) error
	switch args[0] + " " + sub {
	case "tasks create":
		fn = c.tasksCreate
	case "tasks get":
		fn = c.tasksGet
	case "tasks list":
		fn = c.tasksList
	case "tasks wait":
		fn = c.tasksWait
	case "tasks cancel":
		fn = c.tasksCancel
	case "connections list":
		fn = c.connectionsList
	case "connections connect":
		fn = c.connectionsConnect
	case "connections delete":
		fn = c.connectionsDelete
	}
	var err error
	switch {
	case args[0] == "run":
		err = c.run(ctx, args[1:])
	case fn == nil:
		return fmt.Errorf("usage: mcpidp %s %s", args[0], map[string]string{
			"tasks": "create|get|list|wait|cancel", "connections": "list|connect|delete"}[args[0]])
	default:
		err = fn(ctx, args[2:])
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		return fmt.Errorf("%w (set MCPIDP_API_KEY to an API key of the mcpidp at %s)", err, base)
	}
	return err
}

type commands struct {
	client         *Client
	stdout, stderr io.Writer
	// interval is the Watcher's; zero for its default.
	interval time.Duration
}

// flags makes a command's flag set; its usage names the command and its
// positional arguments.
func (c *commands) flags(name, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "Usage: mcpidp %s\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
		fmt.Fprint(c.stdout, envHelp)
	}
	return fs
}

// parse parses flags wherever they stand among the arguments, and returns
// the positional arguments; help is true after --help was printed.
func parse(fs *flag.FlagSet, args []string, positional int) (pos []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != positional {
		return nil, false, fmt.Errorf("usage: mcpidp %s (see --help)", fs.Name())
	}
	return pos, false, nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (c *commands) tasksCreate(ctx context.Context, args []string) error {
	fs := c.flags("tasks create --user USER --model MODEL --input TEXT [--tool URL]…",
		"Submits a task and prints it (JSON); with --wait, follows it and prints its answer.")
	var f taskFields
	var tools stringList
	var metadata, webhook string
	fs.StringVar(&f.User, "user", "", "the end user the task acts for (required)")
	fs.StringVar(&f.Model, "model", "", "the model (required)")
	input := fs.String("input", "", "the task's input: one user message (required)")
	fs.Var(&tools, "tool", "URL of an MCP server the model may use (repeatable)")
	maxSteps := fs.Int("max-steps", 0, "most steps the task may take (0: the server's default)")
	store := fs.Bool("store", false, "keep the task until deleted (default: 24 h after it ends)")
	fs.StringVar(&metadata, "metadata", "", "metadata, a JSON object")
	fs.StringVar(&webhook, "webhook", "", "URL that gets the task's webhooks")
	wait := fs.Bool("wait", false, "follow the task, show its progress on stderr and print its answer")
	if _, help, err := parse(fs, args, 0); help || err != nil {
		return err
	}
	for _, t := range tools {
		f.Tools = append(f.Tools, map[string]any{"type": "mcp", "url": t})
	}
	if *maxSteps != 0 {
		f.MaxSteps = maxSteps
	}
	if *store {
		f.Store = store
	}
	if metadata != "" {
		if err := json.Unmarshal([]byte(metadata), &f.Metadata); err != nil {
			return fmt.Errorf("--metadata must be a JSON object: %w", err)
		}
	}
	if webhook != "" {
		f.Webhook = map[string]any{"url": webhook}
	}
	t, err := c.client.CreateTask(ctx, f.body(*input))
	if err != nil {
		return err
	}
	if *wait {
		return c.follow(ctx, t)
	}
	return c.printJSON(t.Raw)
}

func (c *commands) tasksGet(ctx context.Context, args []string) error {
	fs := c.flags("tasks get ID", "Prints a task with its steps (JSON).")
	pos, help, err := parse(fs, args, 1)
	if help || err != nil {
		return err
	}
	t, err := c.client.GetTask(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.printJSON(t.Raw)
}

func (c *commands) tasksList(ctx context.Context, args []string) error {
	fs := c.flags("tasks list [--user USER] [--status STATUS]", "Lists tasks, newest first.")
	user := fs.String("user", "", "only this user's tasks")
	status := fs.String("status", "", "only tasks with this status")
	limit := fs.Int("limit", 20, "how many (1 to 100)")
	after := fs.String("after", "", "the page after this task id")
	if _, help, err := parse(fs, args, 0); help || err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"user": *user, "status": *status, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	l, err := c.client.ListTasks(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tUSER\tMODEL\tCREATED")
	for _, t := range l.Data {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Status, t.User, t.Model, t.CreatedAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.HasMore {
		fmt.Fprintf(c.stderr, "more: mcpidp tasks list --after %s\n", l.LastID)
	}
	return nil
}

func (c *commands) tasksWait(ctx context.Context, args []string) error {
	fs := c.flags("tasks wait ID", "Follows a task until it ends: progress on stderr, the answer on stdout; fails unless it completed.")
	pos, help, err := parse(fs, args, 1)
	if help || err != nil {
		return err
	}
	return c.follow(ctx, &Task{ID: pos[0]})
}

func (c *commands) tasksCancel(ctx context.Context, args []string) error {
	fs := c.flags("tasks cancel ID", "Cancels a task.")
	pos, help, err := parse(fs, args, 1)
	if help || err != nil {
		return err
	}
	t, err := c.client.CancelTask(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "task %s: %s\n", t.ID, t.Status)
	return nil
}

func (c *commands) connectionsList(ctx context.Context, args []string) error {
	fs := c.flags("connections list --user USER", "Lists a user's MCP logins.")
	user := fs.String("user", "", "the end user (required)")
	if _, help, err := parse(fs, args, 0); help || err != nil {
		return err
	}
	conns, err := c.client.Connections(ctx, *user)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSERVER\tSCOPES\tEXPIRES")
	for _, cn := range conns {
		expires := "-"
		if cn.ExpiresAt != nil {
			expires = cn.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cn.ID, cn.Status, cn.ServerURL, strings.Join(cn.Scopes, " "), expires)
	}
	return tw.Flush()
}

func (c *commands) connectionsConnect(ctx context.Context, args []string) error {
	fs := c.flags("connections connect --user USER --server URL [--scope SCOPE]…",
		"Starts a login of the user to an MCP server ahead of any task, and prints the link to open.")
	user := fs.String("user", "", "the end user (required)")
	server := fs.String("server", "", "the MCP server's URL (required)")
	var scopes stringList
	fs.Var(&scopes, "scope", "a scope to ask for (repeatable)")
	if _, help, err := parse(fs, args, 0); help || err != nil {
		return err
	}
	l, err := c.client.Connect(ctx, *user, *server, scopes)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "open this link to log %s in to %s (valid until %s):\n", *user, l.ServerURL, l.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintln(c.stdout, l.AuthorizationURL)
	return nil
}

func (c *commands) connectionsDelete(ctx context.Context, args []string) error {
	fs := c.flags("connections delete ID", "Revokes a connection at its authorization server and deletes its tokens.")
	pos, help, err := parse(fs, args, 1)
	if help || err != nil {
		return err
	}
	if err := c.client.DeleteConnection(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "deleted connection %s\n", pos[0])
	return nil
}

func (c *commands) run(ctx context.Context, args []string) error {
	fs := c.flags("run [--user USER] [--model MODEL] FILE.md",
		"Runs the task FILE.md describes: its YAML frontmatter holds the task's fields with the API's names\n"+
			"(model, user, tools, max_steps, store, metadata, webhook, stop_when), its body is the input.\n"+
			"Shows progress on stderr, prints the answer on stdout, and fails unless the task completed.")
	user := fs.String("user", "", "the end user (overrides the frontmatter's)")
	model := fs.String("model", "", "the model (overrides the frontmatter's)")
	pos, help, err := parse(fs, args, 1)
	if help || err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	f, input, err := parseTaskFile(pos[0], raw)
	if err != nil {
		return err
	}
	if *user != "" {
		f.User = *user
	}
	if *model != "" {
		f.Model = *model
	}
	t, err := c.client.CreateTask(ctx, f.body(input))
	if err != nil {
		return err
	}
	return c.follow(ctx, t)
}

// follow watches a task to its end and reports it: progress on stderr,
// the answer on stdout.
func (c *commands) follow(ctx context.Context, t *Task) error {
	w := &Watcher{Client: c.client, Progress: c.stderr, Interval: c.interval}
	done, err := w.Wait(ctx, t.ID)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following task %s, which goes on (mcpidp tasks wait %s): %w", t.ID, t.ID, err)
		}
		return err
	}
	return Finish(done, c.stdout)
}

func (c *commands) printJSON(raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("error formatting mcpidp's answer: %w", err)
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(c.stdout)
	return err
}
