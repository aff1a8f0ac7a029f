package storetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// envChild marks a run of this test binary started by a test below, to
// play a fresh machine's test process.
const envChild = "MCPIDP_STORETEST_CHILD"

func installedBinaries(t *testing.T) Binaries {
	t.Helper()
	bins, ok := FindBinaries("")
	if !ok {
		if os.Getenv(EnvRequirePostgres) != "" {
			t.Fatal("no initdb/postgres installed")
		}
		t.Skip("no initdb/postgres installed (PATH, /usr/lib/postgresql/*/bin)")
	}
	return bins
}

func TestStartClusterServesTheStoreAndStopRemovesIt(t *testing.T) {
	t.Parallel()
	bins := installedBinaries(t)
	ctx := context.Background()
	c, err := StartCluster(ctx, bins)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop()
		}
	})
	require.NotContains(t, c.URL, ":5432/")

	// It is a real server: our migrations apply and the store works on it.
	s, db := OpenStore(t, c.URL, nil)
	_, err = s.MigrateUp(ctx)
	require.NoError(t, err)
	db.Close()

	require.NoError(t, c.Stop())
	stopped = true
	_, err = os.Stat(c.Dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "the cluster's directory is removed: %v", err)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = pgx.Connect(cctx, c.URL)
	require.Error(t, err, "the server is gone")
}

// runChild runs TestChildPostgresURL in a new process of this test binary
// with env added to a copy of ours without the PostgreSQL variables.
func runChild(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildPostgresURL$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if !regexp.MustCompile(`^MCPIDP_TEST_`).MatchString(kv) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, envChild+"=1", EnvDefaultPostgresURL+"=postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChildPostgresURL is the test process that the tests below start; run
// directly it does nothing.
func TestChildPostgresURL(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("run by the PostgresURL tests in a process of its own")
	}
	u := PostgresURL(t)
	s, db := OpenStore(t, u, nil)
	_, err := s.MigrateUp(context.Background())
	require.NoError(t, err)
	var dir string
	require.NoError(t, db.SQL.QueryRowContext(context.Background(), "SHOW data_directory").Scan(&dir))
	t.Logf("CHILD_URL=%s", u)
	t.Logf("CHILD_DATA_DIR=%s", dir)
}

func TestPostgresURLStartsAThrowawayClusterWhenNothingAnswers(t *testing.T) {
	t.Parallel()
	installedBinaries(t)
	out, err := runChild(t)
	require.NoError(t, err, out)
	require.Contains(t, out, "started a throwaway PostgreSQL cluster")
	require.Contains(t, out, "--- PASS: TestChildPostgresURL")
	m := regexp.MustCompile(`CHILD_URL=(postgres://postgres@127\.0\.0\.1:(\d+)/postgres\S*)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.NotEqual(t, "5432", m[2])
	dm := regexp.MustCompile(`CHILD_DATA_DIR=(\S+)/data`).FindStringSubmatch(out)
	require.NotNil(t, dm, out)

	// The child has exited: its cluster stops and its directory goes.
	require.Eventually(t, func() bool {
		_, err := os.Stat(dm[1])
		return errors.Is(err, os.ErrNotExist)
	}, 20*time.Second, 100*time.Millisecond, "directory %s is removed after the test process exits", dm[1])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, m[1])
	require.Error(t, err, "the throwaway server is stopped")
}

func TestPostgresURLSkipsWithoutPostgresUnlessRequired(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	out, err := runChild(t, EnvPostgresBin+"="+empty)
	require.NoError(t, err, out)
	require.Regexp(t, `--- SKIP: TestChildPostgresURL`, out)
	require.Contains(t, out, "storetest: skipping PostgreSQL: no PostgreSQL server answers and none can be started here: nothing at postgres://postgres@127.0.0.1:1/postgres?sslmode=disable and no initdb and postgres")

	out, err = runChild(t, EnvPostgresBin+"="+empty, EnvRequirePostgres+"=1")
	require.Error(t, err, out)
	require.Contains(t, out, "--- FAIL: TestChildPostgresURL")
	require.Contains(t, out, "no PostgreSQL server answers and none can be started here")
}

func TestPostgresURLUsesTheDefaultServerWhenItAnswers(t *testing.T) {
	t.Parallel()
	installedBinaries(t)
	c, err := StartCluster(context.Background(), installedBinaries(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	out, err := runChild(t, EnvDefaultPostgresURL+"="+c.URL, EnvPostgresBin+"="+t.TempDir())
	require.NoError(t, err, out)
	require.NotContains(t, out, "started a throwaway")
	require.Contains(t, out, "--- PASS: TestChildPostgresURL")
	require.Contains(t, out, "CHILD_DATA_DIR="+c.Dir+"/data")
}
