package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A PostgresCluster is a PostgreSQL server of a test's own, on a free
// loopback port, in a temporary directory: one that the test may hang,
// unlike the shared server. It is stopped and removed at the end of the
// test.
type PostgresCluster struct {
	tb      testing.TB
	dir     string
	port    int
	asUser  []string // the command prefix that runs a program as the server's owner
	stopped []int    // pids stopped by Hang
}

// postgresBin returns the directory of the newest installed PostgreSQL
// server programs.
func postgresBin() (string, error) {
	if d := os.Getenv("SIGNET_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for _, d := range slices.Backward(dirs) {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server programs under /usr/lib/postgresql/*/bin (set SIGNET_POSTGRES_BIN)")
}

// StartPostgres initialises and starts a private PostgreSQL server, with
// trust authentication for user postgres on 127.0.0.1. PostgreSQL refuses
// to run as root, so as root it runs as the postgres user. Without the
// server programs (or that user, as root) the test skips, unless CI=true,
// when it fails.
func StartPostgres(tb testing.TB) *PostgresCluster {
	tb.Helper()
	return StartPostgresIn(tb, os.TempDir())
}

// StartPostgresIn is StartPostgres with the server's files in a new
// directory under parent: on a small disk of the test's, say.
func StartPostgresIn(tb testing.TB, parent string) *PostgresCluster {
	tb.Helper()
	bin, err := postgresBin()
	if err != nil {
		missing(tb, "PostgreSQL server", "/usr/lib/postgresql", err)
	}
	c := &PostgresCluster{tb: tb}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(tb, "postgres user to run a private PostgreSQL server as", "this machine", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	reapClusters(bin, c.asUser)
	if c.dir, err = os.MkdirTemp(parent, clusterPrefix); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.remove)
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		tb.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(c.dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	data := filepath.Join(c.dir, "data")
	c.run(filepath.Join(bin, "initdb"), "--pgdata", data, "--username", "postgres", "--auth", "trust", "--no-sync", "--encoding", "UTF8", "--no-instructions")
	for attempt := 0; ; attempt++ {
		c.port = freePort(tb)
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", c.port, c.dir)
		err := c.runErr(filepath.Join(bin, "pg_ctl"), "start", "--pgdata", data, "--wait", "--timeout", "30", "--log", filepath.Join(c.dir, "log"), "-o", opts)
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
			tb.Fatalf("starting a private PostgreSQL server: %v\n%s", err, log)
		}
	}
	tb.Cleanup(func() {
		c.Resume()
		c.runErr(filepath.Join(bin, "pg_ctl"), "stop", "--pgdata", data, "--mode", "immediate", "--wait")
	})
	return c
}

// URL is the server's own database, as user postgres.
func (c *PostgresCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// NewDatabase makes an empty database on the server and returns its URL.
func (c *PostgresCluster) NewDatabase() string {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		c.tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE signet_test"); err != nil {
		c.tb.Fatal(err)
	}
	return strings.Replace(c.URL(), "/postgres?", "/signet_test?", 1)
}

// Hang stops every process of the server with SIGSTOP, as a server that
// hangs (swapping, a stuck disk) would: connections stay open and nothing
// answers. Resume lets it go on.
func (c *PostgresCluster) Hang() {
	c.tb.Helper()
	pid := c.postmasterPID()
	// The postmaster first, so that it forks no process after the
	// children are listed.
	pids := append([]int{pid}, childrenOf(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGSTOP); err == nil {
			c.stopped = append(c.stopped, p)
		}
	}
}

// Resume continues the processes Hang stopped.
func (c *PostgresCluster) Resume() {
	for _, p := range slices.Backward(c.stopped) {
		syscall.Kill(p, syscall.SIGCONT)
	}
	c.stopped = nil
}

func (c *PostgresCluster) postmasterPID() int {
	c.tb.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "data", "postmaster.pid"))
	if err != nil {
		c.tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		c.tb.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// childrenOf returns the pids whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, child)
		}
	}
	return out
}

func (c *PostgresCluster) remove() { os.RemoveAll(c.dir) }

const (
	clusterPrefix = "signet-pg-"
	ownerFile     = "owner.pid" // the pid of the test process that started the cluster
)

// reapClusters stops and removes the private clusters left by test
// processes that died without cleaning up (a test binary killed by its
// timeout while a cluster was hung), so that none is left stopped for
// good.
func reapClusters(bin string, asUser []string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner <= 0 || syscall.Kill(owner, 0) == nil {
			continue
		}
		stale := &PostgresCluster{dir: dir, asUser: asUser}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 {
				for _, p := range append([]int{pid}, childrenOf(pid)...) {
					syscall.Kill(p, syscall.SIGCONT)
				}
				stale.runErr(filepath.Join(bin, "pg_ctl"), "stop", "--pgdata", filepath.Join(dir, "data"), "--mode", "immediate", "--wait")
			}
		}
		os.RemoveAll(dir)
	}
}

func (c *PostgresCluster) run(args ...string) {
	c.tb.Helper()
	if err := c.runErr(args...); err != nil {
		c.tb.Fatal(err)
	}
}

func (c *PostgresCluster) runErr(args ...string) error {
	args = append(slices.Clone(c.asUser), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
