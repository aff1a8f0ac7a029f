package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/testenv"
)

// suiteVersion is the pinned @modelcontextprotocol/conformance version
// whose scenarios are listed below.
const suiteVersion = "0.1.16"

// requiredScenarios must pass: the core client scenarios we support
// (elicitation defaults included), and
// every auth scenario of the spec versions 2025-03-26, 2025-06-18 and
// 2025-11-25.
var requiredScenarios = []string{
	"initialize",
	"tools_call",
	"sse-retry",
	"elicitation-sep1034-client-defaults",
	"auth/metadata-default",
	"auth/metadata-var1",
	"auth/metadata-var2",
	"auth/metadata-var3",
	"auth/basic-cimd",
	"auth/scope-from-www-authenticate",
	"auth/scope-from-scopes-supported",
	"auth/scope-omitted-when-undefined",
	"auth/scope-step-up",
	"auth/scope-retry-limit",
	"auth/token-endpoint-auth-basic",
	"auth/token-endpoint-auth-post",
	"auth/token-endpoint-auth-none",
	"auth/pre-registration",
	"auth/2025-03-26-oauth-metadata-backcompat",
	"auth/2025-03-26-oauth-endpoint-fallback",
}

// draftScenarios are the auth scenarios of the next spec revision.
var draftScenarios = []string{
	"auth/resource-mismatch",
	"auth/offline-access-scope",
	"auth/offline-access-not-supported",
}

// knownDraftFailures are the draft scenarios we fail, each explained in
// README.md. A scenario that starts passing, or a new failure, fails the
// test so the list and the README stay true.
var knownDraftFailures = []string{}

// parallelism is how many scenarios run at once. Each is a Node process
// (the suite's servers) plus our client; the work is mostly waiting, so
// more than the machine's cores is fine, while sse-retry's timing check
// (±200 ms) still holds.
const parallelism = 4

// TestConformance runs the official MCP conformance suite's client
// scenarios against ./client, which drives the real OAuth engine and MCP
// client on a real database.
func TestConformance(t *testing.T) {
	t.Parallel()
	node := testenv.Node22(t)
	pkgDir := filepath.Join(testenv.NodeDir(t), "node_modules", "@modelcontextprotocol", "conformance")
	cli := filepath.Join(pkgDir, "dist", "index.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the MCP conformance suite is not installed (%v); run: npm ci --prefix internal/testenv/node", err)
	}
	pkgJSON, err := os.ReadFile(filepath.Join(pkgDir, "package.json"))
	require.NoError(t, err)
	var pkg struct {
		Version string `json:"version"`
	}
	require.NoError(t, json.Unmarshal(pkgJSON, &pkg))
	require.Equal(t, suiteVersion, pkg.Version, "the scenario lists here are for this version; run: npm ci --prefix internal/testenv/node")

	t.Run("ScenarioLists", func(t *testing.T) {
		t.Parallel()
		// The suite's own list, so a scenario we do not run is noticed.
		listed := listScenarios(t, node, cli)
		var required, draft []string
		for name, versions := range listed {
			isAuth := strings.HasPrefix(name, "auth/")
			switch {
			case isAuth && slices.ContainsFunc(versions, func(v string) bool {
				return v == "2025-03-26" || v == "2025-06-18" || v == "2025-11-25"
			}):
				required = append(required, name)
			case isAuth && slices.Contains(versions, "draft"):
				draft = append(draft, name)
			}
		}
		for _, name := range []string{"initialize", "tools_call", "sse-retry", "elicitation-sep1034-client-defaults"} {
			require.Contains(t, listed, name)
			required = append(required, name)
		}
		require.ElementsMatch(t, requiredScenarios, required)
		require.ElementsMatch(t, draftScenarios, draft)
	})

	client := buildClient(t)
	scenarios := slices.Concat(requiredScenarios, draftScenarios)
	results := make([]scenarioResult, len(scenarios))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelism)
	start := time.Now()
	for i, name := range scenarios {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runScenario(t, node, cli, client, name)
		})
	}
	wg.Wait()
	t.Logf("ran %d scenarios in %s", len(scenarios), time.Since(start).Round(time.Millisecond))

	for i, name := range scenarios {
		res := results[i]
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			t.Logf("%s: %s (%s)", name, res.summary, res.duration.Round(time.Millisecond))
			if slices.Contains(knownDraftFailures, name) {
				require.False(t, res.passed, "%s now passes: remove it from knownDraftFailures and README.md\n%s", name, res.output)
				return
			}
			require.True(t, res.passed, "scenario %s failed (exit %d):\n%s", name, res.exitCode, res.output)
		})
	}
}

type scenarioResult struct {
	passed   bool
	exitCode int
	summary  string
	output   string
	duration time.Duration
}

var (
	summaryRE = regexp.MustCompile(`Passed: \d+/\d+, \d+ failed, \d+ warnings`)
	// ansiRE matches the colour codes the suite prints whatever the
	// terminal.
	ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")
)

// runScenario runs one scenario with the suite's CLI. The CLI exits 0 only
// when no check failed or warned and the client succeeded (or the
// scenario expects it to give up).
func runScenario(t *testing.T, node, cli, client, scenario string) scenarioResult {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "client", "--command", client, "--scenario", scenario, "--timeout", "30000")
	cmd.Dir = t.TempDir()
	// The suite starts the client through a shell: on a timeout, kill the
	// whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	output := ansiRE.ReplaceAllString(out.String(), "")
	res := scenarioResult{output: output, duration: time.Since(start), summary: summaryRE.FindString(output)}
	if err != nil {
		res.exitCode = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.exitCode = ee.ExitCode()
		}
		res.output += "\n" + err.Error()
	}
	res.passed = err == nil && strings.Contains(res.output, "OVERALL: PASSED")
	return res
}

// buildClient builds ./client once for all scenarios.
func buildClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conformance-client")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mcpidp/mcpidp/internal/conformance/client")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "error building the conformance client:\n%s", out)
	return bin
}

var listLineRE = regexp.MustCompile(`^\s+- (\S+) \[([^\]]*)\]\s*$`)

// listScenarios returns the suite's client scenarios and their spec
// versions.
func listScenarios(t *testing.T, node, cli string) map[string][]string {
	t.Helper()
	out, err := exec.Command(node, cli, "list", "--client").CombinedOutput()
	require.NoError(t, err, "error listing scenarios:\n%s", out)
	listed := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := listLineRE.FindStringSubmatch(sc.Text()); m != nil {
			listed[m[1]] = strings.Split(m[2], ",")
		}
	}
	require.NotEmpty(t, listed, "no scenarios in:\n%s", out)
	return listed
}
