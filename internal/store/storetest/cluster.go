package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres means no PostgreSQL server answers and none can be started:
// no initdb/postgres binaries are installed, or, as root, there is no OS
// user to run them as.
var ErrNoPostgres = errors.New("no PostgreSQL server answers and none can be started here")

// Binaries are the two PostgreSQL programs a throwaway cluster needs.
type Binaries struct {
	Initdb   string
	Postgres string
}

// FindBinaries looks for initdb and postgres: in dir when it is not empty
// (tests use it to pretend nothing is installed), else on PATH, else in the
// newest /usr/lib/postgresql/*/bin (Debian and Ubuntu keep them off PATH).
func FindBinaries(dir string) (Binaries, bool) {
	inDir := func(d string) (Binaries, bool) {
		b := Binaries{Initdb: filepath.Join(d, "initdb"), Postgres: filepath.Join(d, "postgres")}
		return b, isExecutable(b.Initdb) && isExecutable(b.Postgres)
	}
	if dir != "" {
		return inDir(dir)
	}
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return Binaries{Initdb: initdb, Postgres: postgres}, true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if b, ok := inDir(d); ok {
			return b, true
		}
	}
	return Binaries{}, false
}

// pgMajor reads the version out of /usr/lib/postgresql/<version>/bin.
func pgMajor(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Cluster is a throwaway PostgreSQL server in a temporary directory,
// listening on a free loopback port with trust authentication for the user
// "postgres".
//
// It is run by a small shell supervisor that holds the read end of a pipe
// whose write end only this process has: when this process ends, however it
// ends, the supervisor stops the server and removes the directory. Stop does
// the same at once.
type Cluster struct {
	// URL connects to the cluster's "postgres" database.
	URL string
	// Dir holds the data directory, the socket and the server's log.
	Dir string

	supervisor *exec.Cmd
	lifeline   io.WriteCloser
}

// supervisorScript starts the server, waits until its stdin closes (the
// test process ended or called Stop), then stops the server (fast
// shutdown) and removes the directory. Arguments: dir, postgres, port.
const supervisorScript = `
"$2" -D "$1/data" -p "$3" -k "$1" -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=300 >"$1/postgres.log" 2>&1 </dev/null &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$1"
`

// StartCluster runs initdb in a new temporary directory and starts postgres
// on a free port, waiting until it accepts connections. initdb refuses to
// run as root, so as root both run as the OS user "postgres" (through
// setpriv); without that user StartCluster fails and says so.
func StartCluster(ctx context.Context, bins Binaries) (*Cluster, error) {
	asUser, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mcpidp-pg-")
	if err != nil {
		return nil, fmt.Errorf("error creating the cluster's directory: %w", err)
	}
	if asUser != nil {
		if err := os.Chown(dir, asUser.uid, asUser.gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("error handing %s to the postgres user: %w", dir, err)
		}
	}
	initdb := asUser.command(ctx, bins.Initdb, "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("error running %s: %w: %s", bins.Initdb, err, strings.TrimSpace(string(out)))
	}
	var lastErr error
	for range 3 { // a free port can be taken between our probe and postgres' bind
		c, err := startServer(ctx, asUser, bins, dir)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func startServer(ctx context.Context, asUser *osUser, bins Binaries, dir string) (*Cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sup := asUser.command(context.Background(), "/bin/sh", "-c", supervisorScript, "sh", dir, bins.Postgres, strconv.Itoa(port))
	sup.Dir = dir
	// Its own process group: a Ctrl-C at the terminal must not kill the
	// server before the supervisor has cleaned up after it.
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lifeline, err := sup.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("error creating the supervisor's pipe: %w", err)
	}
	if err := sup.Start(); err != nil {
		return nil, fmt.Errorf("error starting postgres: %w", err)
	}
	c := &Cluster{
		URL:        fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		Dir:        dir,
		supervisor: sup,
		lifeline:   lifeline,
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.URL)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return c, nil
		}
		logText, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		if strings.Contains(string(logText), "could not bind") || time.Now().After(deadline) || ctx.Err() != nil {
			// Stop the server but keep the data directory for another try.
			_ = lifeline.Close()
			_ = sup.Wait()
			return nil, fmt.Errorf("postgres did not accept connections on port %d: %w; its log: %s", port, err, strings.TrimSpace(string(logText)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server and removes its directory, waiting for both.
func (c *Cluster) Stop() error {
	_ = c.lifeline.Close()
	if err := c.supervisor.Wait(); err != nil {
		return fmt.Errorf("error stopping postgres: %w", err)
	}
	return nil
}

// osUser is who runs initdb and postgres; nil means this process's user.
type osUser struct {
	name     string
	uid, gid int
	setpriv  string // path of setpriv, else of runuser
}

// runAs answers nil unless this process is root, which initdb refuses: then
// the OS user postgres (as the distributions' packages create it), through
// setpriv or runuser (util-linux).
func runAs() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: initdb refuses to run as root and there is no OS user postgres to run it as", ErrNoPostgres)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	ou := &osUser{name: u.Username, uid: uid, gid: gid}
	if ou.setpriv, err = exec.LookPath("setpriv"); err == nil {
		return ou, nil
	}
	if ou.setpriv, err = exec.LookPath("runuser"); err == nil {
		return ou, nil
	}
	return nil, fmt.Errorf("%w: initdb refuses to run as root and neither setpriv nor runuser is installed to run it as postgres", ErrNoPostgres)
}

func (u *osUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if u == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	if filepath.Base(u.setpriv) == "runuser" {
		return exec.CommandContext(ctx, u.setpriv, append([]string{"-u", u.name, "--", name}, args...)...)
	}
	return exec.CommandContext(ctx, u.setpriv, append([]string{
		"--reuid=" + strconv.Itoa(u.uid), "--regid=" + strconv.Itoa(u.gid), "--init-groups", "--", name,
	}, args...)...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("error finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
