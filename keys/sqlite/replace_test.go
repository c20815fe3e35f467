package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
)

// logBuffer collects what a logger writes, safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// swapFixture is a running service with its cache on a file, as signet
// serve has it, and a copy of the file in which a key the service has
// cached is revoked: a restore from a backup.
type swapFixture struct {
	path, copyPath string
	master         []byte
	svc            *keys.Service
	store          *Store
	log            *logBuffer
	revoked, live  *keys.Created
	onlyOld        *keys.Created // made after the copy: only in the old file
}

func newSwapFixture(t *testing.T) *swapFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &swapFixture{path: filepath.Join(dir, "signet.db"), copyPath: filepath.Join(dir, "restore.db"), master: keys.NewMasterKey(), log: &logBuffer{}}
	s, err := Open(ctx, f.path, Options{Create: true, Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.store = s
	cst := &keystest.CountingStore{Store: s}
	f.svc = newService(t, cst, f.master)
	f.revoked = mustCreate(t, f.svc, "alice")
	f.live = mustCreate(t, f.svc, "bob")
	keystest.WaitCached(t, f.svc, cst, f.revoked.Key.ID)
	keystest.WaitCached(t, f.svc, cst, f.live.Key.ID)

	db := rawDB(t, f.path)
	if _, err := db.Exec(`VACUUM INTO ?`, f.copyPath); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cs, err := Open(ctx, f.copyPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	csvc := newService(t, cs, f.master)
	if err := csvc.Revoke(ctx, f.revoked.Key.ID, "restore"); err != nil {
		t.Fatal(err)
	}
	csvc.Close()
	// A write after the backup: it is in the old file's write-ahead log,
	// which must not be replayed into the restored file.
	f.onlyOld = mustCreate(t, f.svc, "carol")
	if fi, err := os.Stat(f.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the old file's write-ahead log is empty (%v): the test would prove nothing", err)
	}
	return f
}

func mustCreate(t *testing.T, svc *keys.Service, owner string) *keys.Created {
	t.Helper()
	c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: owner, Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func resolveErr(svc *keys.Service, id string) error {
	_, err := svc.ResolveKey(context.Background(), id)
	return err
}

// TestFileReplaced moves a restored copy over the file of a running
// service that has the key cached: the key, revoked in the copy, is
// refused within a second; on the way, the service answers only with the
// old view or fails closed; the store reopens the new file without
// replaying the old one's write-ahead log into it.
func TestFileReplaced(t *testing.T) {
	f := newSwapFixture(t)
	ctx := context.Background()
	if err := os.Rename(f.copyPath, f.path); err != nil {
		t.Fatal(err)
	}
	took := testtime.Eventually(t, time.Second, func() error {
		err := resolveErr(f.svc, f.revoked.Key.ID)
		if errors.Is(err, httpsig.ErrKeyRevoked) {
			return nil
		}
		if err != nil && !errors.Is(err, keys.ErrUnavailable) {
			t.Fatalf("while the file is being reopened, ResolveKey = %v; want the old answer or ErrUnavailable", err)
		}
		return errors.New("the key revoked in the restored file is still accepted")
	})
	t.Logf("the restored revocation was honoured after %v", took)
	testtime.Eventually(t, time.Second, func() error { return f.svc.Ping(ctx) })
	if err := resolveErr(f.svc, f.live.Key.ID); err != nil {
		t.Errorf("a live key after the restore: %v", err)
	}
	if _, err := f.svc.Get(ctx, f.onlyOld.Key.ID); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a key that was only in the old file's write-ahead log is in the restored file: %v", err)
	}
	later := mustCreate(t, f.svc, "dave")
	if !strings.Contains(f.log.String(), "replaced") || !strings.Contains(f.log.String(), "reopened") {
		t.Errorf("the log does not tell of the replacement and the reopening:\n%s", f.log)
	}
	f.svc.Close()

	// What the service wrote went to the restored file, which is sound.
	db := rawDB(t, f.path)
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM signet_keys WHERE id IN (?, ?)`, later.Key.ID, f.onlyOld.Key.ID).Scan(&n)
	if n != 1 {
		t.Errorf("the restored file holds %d of the new key and the old-only key, want the new key alone", n)
	}
	db.QueryRow(`SELECT count(*) FROM signet_audit WHERE action = 'revoke' AND actor = 'restore'`).Scan(&n)
	if n != 1 {
		t.Errorf("the restored file's audit log lost the revocation")
	}
}

// TestFileDeleted deletes the file of a running service: it fails closed
// (a cached key included), says so through Ping and the log, never makes a
// new empty file, and comes back when a database is put at the path.
func TestFileDeleted(t *testing.T) {
	f := newSwapFixture(t)
	ctx := context.Background()
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, time.Second, func() error {
		if err := resolveErr(f.svc, f.live.Key.ID); !errors.Is(err, keys.ErrUnavailable) {
			return errors.New("a cached key still resolves: " + errString(err))
		}
		return nil
	})
	if err := f.svc.Ping(ctx); !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("Ping with the file deleted = %v, want ErrUnavailable saying so", err)
	}
	if _, err := f.svc.Create(ctx, keys.CreateRequest{Owner: "eve", Actor: "t"}); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("Create with the file deleted = %v, want ErrUnavailable", err)
	}
	if err := f.svc.Revoke(ctx, f.live.Key.ID, "t"); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("Revoke with the file deleted = %v, want ErrUnavailable", err)
	}
	// Once the store has tried to reopen the path, it must not have made
	// a file there.
	testtime.Eventually(t, time.Second, func() error {
		if !strings.Contains(f.log.String(), "cannot reopen") {
			return errors.New("the store has not tried to reopen the path")
		}
		return nil
	})
	if _, err := os.Stat(f.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the store made a file at the deleted path: %v", err)
	}
	if !strings.Contains(f.log.String(), "deleted") {
		t.Errorf("the deletion was not logged:\n%s", f.log)
	}

	if err := os.Rename(f.copyPath, f.path); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, time.Second, func() error { return f.svc.Ping(ctx) })
	testtime.Eventually(t, time.Second, func() error {
		if err := resolveErr(f.svc, f.revoked.Key.ID); !errors.Is(err, httpsig.ErrKeyRevoked) {
			return errors.New("the restored revocation: " + errString(err))
		}
		return nil
	})
	if _, err := f.svc.Get(ctx, f.onlyOld.Key.ID); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a key that was only in the deleted file's write-ahead log is in the restored file: %v", err)
	}
}

// TestReopenRefusesForeignFile puts a file that is not a signet database
// in place of the store's: the store stays unavailable rather than take it
// for an empty store.
func TestReopenRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := path + ".empty"
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, time.Second, func() error {
		err := s.Ping(context.Background())
		if errors.Is(err, keys.ErrUnavailable) && strings.Contains(err.Error(), "not a signet key store") {
			return nil
		}
		return errors.New("Ping with an empty file in place = " + errString(err) + "; want it refused")
	})
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("the store wrote to the file it refused (%v)", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestFileModes checks that the files of a new store, which hold sealed
// secrets, owners and the audit log, are readable by their owner alone.
func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signet.db")
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	svc := newService(t, s, keys.NewMasterKey())
	mustCreate(t, svc, "alice")
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), m)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".signet-new") {
			t.Errorf("a temporary file was left behind: %s", e.Name())
		}
	}
}

// TestOpenMissing checks that a missing file is not made unless asked for,
// nor a missing directory even then.
func TestOpenMissing(t *testing.T) {
	dir := t.TempDir()
	if s, err := Open(context.Background(), filepath.Join(dir, "missing", "signet.db"), Options{Create: true}); !errors.Is(err, fs.ErrNotExist) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with Create in a missing directory = %v, want an error wrapping fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "signet.db")
	if s, err := Open(context.Background(), path, Options{}); !errors.Is(err, fs.ErrNotExist) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a missing file = %v, want an error wrapping fs.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open without Create made the file: %v", err)
	}
}

// TestFileReplacedWatch replaces the file under a bare store: its Watch
// reports the loss, then a Reset once it has reopened the path, and reads
// come from the new file.
func TestFileReplacedWatch(t *testing.T) {
	dir := t.TempDir()
	path, other := filepath.Join(dir, "signet.db"), filepath.Join(dir, "other.db")
	ctx := context.Background()
	for _, p := range []string{path, other} {
		s, err := Open(ctx, p, Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		r := keys.Record{Key: keys.Key{ID: "sk_replaced00000000000001", Owner: filepath.Base(p), Alg: httpsig.AlgHMACSHA256, Created: time.Now()}, Secret: []byte("x")}
		if err := s.Apply(ctx, &keys.Write{Insert: []keys.Record{r}}); err != nil {
			t.Fatal(err)
		}
		if p == other {
			s.Close()
			continue
		}
		defer s.Close()
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var events []keys.Event
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(wctx, func(ev keys.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	testtime.Eventually(t, time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(events) == 0 {
			return errors.New("no first Reset")
		}
		return nil
	})
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		lost := slices.IndexFunc(events, func(ev keys.Event) bool { return ev.Lost })
		if lost < 0 || !slices.ContainsFunc(events[lost:], func(ev keys.Event) bool { return ev.Reset }) {
			return fmt.Errorf("events %+v: want Lost, then Reset", events)
		}
		return nil
	})
	r, err := s.Get(ctx, "sk_replaced00000000000001")
	if err != nil || r.Owner != "other.db" {
		t.Errorf("Get after the replacement = %+v, %v; want the record of the new file", r, err)
	}
}
