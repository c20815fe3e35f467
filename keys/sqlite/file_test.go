package sqlite

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ path, want string }{
		{"", "no database path"},
		{filepath.Join(dir, "missing", "signet.db"), "no such file or directory"},
		{filepath.Join(dir, "a?mode=ro"), "plain file path"},
		{"file:" + filepath.Join(dir, "x.db"), "plain file path"},
	} {
		if s, err := Open(context.Background(), tt.path, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want an error saying %q", tt.path, err, tt.want)
		}
	}
	notDB := filepath.Join(dir, "not.db")
	os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 100)), 0o600)
	if _, err := Open(context.Background(), notDB, Options{}); err == nil || !strings.Contains(err.Error(), "keys/sqlite") {
		t.Errorf("Open of a file that is not a database = %v", err)
	}
}

func TestConcurrentStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), path, Options{Create: true})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	db := rawDB(t, path)
	defer db.Close()
	var n, v int
	var mode string
	if err := db.QueryRow(`SELECT count(*), max(version) FROM signet_schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if latest := latestVersion(t); n != latest || v != latest || mode != "wal" {
		t.Errorf("%d migration rows up to version %d, journal mode %s; want each of the %d migrations once, wal", n, v, mode, latest)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO signet_schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(context.Background(), path, Options{}); err == nil || !strings.Contains(err.Error(), "upgrade signet") {
		t.Errorf("Open of a file from a newer signet = %v", err)
	}
}

func newService(t *testing.T, s keys.Store, master []byte) *keys.Service {
	t.Helper()
	svc, err := keys.New(context.Background(), s, keys.Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// TestLocked holds the write lock from another connection for longer than
// the busy timeout: a write fails with a clear error and leaves nothing.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	s, err := Open(context.Background(), path, Options{Create: true, BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, s, keys.NewMasterKey())
	before, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = svc.Create(context.Background(), keys.CreateRequest{Owner: "bob", Actor: "t"})
	waited := time.Since(begin)
	if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "locked by another writer") {
		t.Errorf("Create while another connection holds the write lock = %v, want a clear error wrapping ErrUnavailable", err)
	}
	if waited < 150*time.Millisecond {
		t.Errorf("gave up after %v, before the busy timeout", waited)
	}
	if err := svc.Revoke(context.Background(), before.Key.ID, "t"); err == nil {
		t.Errorf("Revoke while locked succeeded")
	}
	// Reads go on meanwhile.
	if _, err := svc.ResolveKey(context.Background(), before.Key.ID); err != nil {
		t.Errorf("ResolveKey while locked: %v", err)
	}
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ks, err := svc.List(context.Background(), keys.ListFilter{IncludeRevoked: true})
	if err != nil || len(ks) != 1 || ks[0].ID != before.Key.ID || !ks[0].Revoked.IsZero() {
		t.Errorf("after the failed writes the store holds %+v, %v; want the first key alone, live", ks, err)
	}
	if evs, _ := svc.Audit(context.Background(), keys.AuditFilter{}); len(evs) != 1 {
		t.Errorf("the failed writes left audit events: %+v", evs)
	}
	if _, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "bob", Actor: "t"}); err != nil {
		t.Errorf("Create once the lock is gone: %v", err)
	}
}

// The tests below run this test binary again as a child process, which
// runs TestChild in the mode named by the environment.
const (
	childEnv  = "SIGNET_SQLITE_TEST_CHILD"
	pathEnv   = "SIGNET_SQLITE_TEST_PATH"
	masterEnv = "SIGNET_SQLITE_TEST_MASTER"
	keyEnv    = "SIGNET_SQLITE_TEST_KEY"
)

// TestChild is the child process of the tests that need one; it does
// nothing in a normal run.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("run as a child process by other tests")
	}
	path := os.Getenv(pathEnv)
	master, _ := keys.ParseMasterKey([]byte(os.Getenv(masterEnv)))
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if mode == "read-only" {
		fmt.Printf("open: %v\n", err)
		if err == nil {
			s.Close()
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	svc, err := keys.New(ctx, s, keys.Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	switch mode {
	case "write-loop":
		out := bufio.NewWriter(os.Stdout)
		for i := 0; ; i++ {
			c, err := svc.Create(ctx, keys.CreateRequest{Owner: fmt.Sprintf("owner-%d", i), Scopes: []string{"a", "b"}, Label: strings.Repeat("x", 100), Actor: "child"})
			if err != nil {
				t.Fatal(err)
			}
			// Create returned: the key is committed.
			fmt.Fprintf(out, "%s owner-%d\n", c.Key.ID, i)
			out.Flush()
		}
	case "revoke":
		if err := svc.Revoke(ctx, os.Getenv(keyEnv), "child"); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown child mode %q", mode)
	}
}

func child(t *testing.T, mode, path string, master []byte, extra ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, pathEnv+"="+path, masterEnv+"="+base64.StdEncoding.EncodeToString(master))
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestKilledMidWrite kills a process in a loop of writes and checks that
// the file is intact and holds every key whose write returned, each with
// its audit event.
func TestKilledMidWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	master := keys.NewMasterKey()
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	newService(t, s, master).Close()

	var committed [][2]string
	for round := range 3 {
		cmd := child(t, "write-loop", path, master)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		n := 0
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) != 2 {
				continue
			}
			committed = append(committed, [2]string{f[0], f[1]})
			if n++; n == 20+7*round {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		io.Copy(io.Discard, out)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v, want killed", err)
		}
	}

	db := rawDB(t, path)
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	db.Close()
	s, err = Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("reopening after the kills: %v", err)
	}
	svc := newService(t, s, master)
	for _, c := range committed {
		k, err := svc.Get(context.Background(), c[0])
		if err != nil || k.Owner != c[1] {
			t.Errorf("committed key %s: %+v, %v", c[0], k, err)
		}
	}
	ks, err := svc.List(context.Background(), keys.ListFilter{IncludeRevoked: true})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := svc.Audit(context.Background(), keys.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) < len(committed) || len(ks) > len(committed)+3 || len(evs) != len(ks) {
		t.Errorf("%d keys and %d audit events for %d committed writes; want a key and an event for each (and at most one more per kill)", len(ks), len(evs), len(committed))
	}
	for _, k := range ks {
		if _, err := svc.ResolveKey(context.Background(), k.ID); err != nil {
			t.Errorf("key %s does not resolve: %v", k.ID, err)
		}
	}
	t.Logf("%d writes committed across 3 kills", len(committed))
}

// TestRevokeFromAnotherProcess is the CLI-and-server case: a key cached by
// a service is revoked by another process, and refused within a second.
func TestRevokeFromAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	master := keys.NewMasterKey()
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	st := &keystest.CountingStore{Store: s}
	svc := newService(t, st, master)
	c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	keystest.WaitCached(t, svc, st, c.Key.ID)
	if out, err := child(t, "revoke", path, master, keyEnv+"="+c.Key.ID).Output(); err != nil {
		t.Fatalf("revoking in a child process: %v\n%s", err, out)
	}
	took := testtime.Eventually(t, keystest.PropagationLimit, func() error {
		_, err := svc.ResolveKey(context.Background(), c.Key.ID)
		if errors.Is(err, httpsig.ErrKeyRevoked) {
			return nil
		}
		return fmt.Errorf("the key revoked by another process: %v", err)
	})
	t.Logf("refused %v after the other process revoked it", took)
}

// TestReadOnly opens a database file that the process may not write: a
// clear error, and the file is unchanged. Root may write any file, so as
// root the test runs the child process as nobody.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signet.db")
	master := keys.NewMasterKey()
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, s, master)
	if _, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var out []byte
	if os.Geteuid() != 0 {
		os.Chmod(path, 0o444)
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		_, err := Open(context.Background(), path, Options{})
		out = fmt.Appendf(nil, "open: %v\n", err)
	} else {
		out = runAsNobody(t, dir, path, master)
	}
	var msg string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "open: ") {
			msg = line
		}
	}
	if !strings.Contains(msg, "read-only") && !strings.Contains(msg, "cannot open") {
		t.Errorf("opening a read-only file: %s; want a clear error", msg)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("the read-only file changed")
	}
	t.Log(msg)
}

// runAsNobody runs the read-only child as user nobody, from a copy of the
// test binary that nobody may run, on a file and directory owned by root.
func runAsNobody(t *testing.T, dir, path string, master []byte) []byte {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	bin := filepath.Join(t.TempDir(), "child.test")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(bin); d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	cmd := child(t, "read-only", path, master)
	cmd.Path = bin
	cmd.Args[0] = bin
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("the child running as nobody failed: %v\n%s", err, out)
	}
	if err != nil {
		t.Skipf("cannot run a process as nobody: %v", err)
	}
	return out
}

// TestWatchFallsBehind makes more changes between two polls than the
// change table keeps: the watcher must report a Reset, not a partial list.
func TestWatchFallsBehind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	s, err := Open(context.Background(), path, Options{Create: true, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := make(chan keys.Event, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(ev keys.Event) { events <- ev })
	}()
	defer func() { cancel(); <-done }()
	if ev := <-events; !ev.Reset {
		t.Fatalf("first event = %+v, want Reset", ev)
	}
	db := rawDB(t, path)
	defer db.Close()
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
		INSERT INTO signet_keys (id, owner, alg, created, secret) SELECT 'sk_bulk' || i, 'bulk', 'hmac-sha256', 0, x'00' FROM n`); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if !ev.Reset {
			t.Errorf("after 1500 changes in one poll, event = %d changed ids, want Reset", len(ev.Changed))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after 1500 changes")
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM signet_key_changes`).Scan(&n)
	if n > 1000 {
		t.Errorf("the change table holds %d rows, want at most 1000", n)
	}
}
