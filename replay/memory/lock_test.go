//go:build unix

package memory

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db.lock")
	l, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file has mode %v, want 0600", fi.Mode().Perm())
	}
	if got := readPID(path); got != os.Getpid() {
		t.Errorf("lock file names process %d, want %d", got, os.Getpid())
	}

	_, err = Lock(path)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v, want a LockedError", err)
	}
	if le.PID != os.Getpid() || le.Path != path || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Errorf("second Lock = %q (%+v), want it to name this process", err, le)
	}

	if err := l.Unlock(); err != nil {
		t.Fatalf("Unlock = %v", err)
	}
	l2, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after Unlock = %v", err)
	}
	l2.Unlock()
}

// TestLockHeldByAnotherProcess takes the lock in a child process, checks
// that it is refused here with the child's pid, kills the child, and checks
// that the lock is free: a crashed server does not keep it.
func TestLockHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "SIGNET_LOCK_HELPER="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s != "locked\n" {
			t.Fatalf("helper said %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not take the lock")
	}

	_, err = Lock(path)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("Lock while the child holds it = %v, want a LockedError naming process %d", err, cmd.Process.Pid)
	}
	t.Logf("Lock = %v", err)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after the holder was killed = %v", err)
	}
	l.Unlock()
}

func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("SIGNET_LOCK_HELPER")
	if path == "" {
		t.Skip("run by TestLockHeldByAnotherProcess")
	}
	if _, err := Lock(path); err != nil {
		t.Fatalf("helper: Lock = %v", err)
	}
	os.Stdout.WriteString("locked\n")
	os.Stdin.Read(make([]byte, 1)) // until the parent goes or kills us
	os.Exit(0)
}

func TestLockBadPath(t *testing.T) {
	if _, err := Lock(filepath.Join(t.TempDir(), "missing", "lock")); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("Lock in a missing directory = %v, want an error other than ErrLocked", err)
	}
}
