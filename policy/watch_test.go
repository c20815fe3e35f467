package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const policyA = `
upstreams:
  a: {url: "http://127.0.0.1:1"}
routes:
  - {name: a-orders, match: "GET /v1/orders", upstream: a, scopes: [orders:read]}
  - {name: a-default, match: /, upstream: a}
`

const policyB = `
upstreams:
  b: {url: "http://127.0.0.1:2"}
routes:
  - {name: b-orders, match: "GET /v1/orders", upstream: b, scopes: [orders:write]}
  - {name: b-default, match: /, upstream: b}
`

// watch starts a Watcher of a new file holding content, polling every
// few milliseconds, and returns it with the channel of its reloads.
func watch(t *testing.T, content string, hup chan os.Signal) (*Watcher, string, <-chan Reload) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, path, content)
	reloads := make(chan Reload, 100)
	w, err := NewWatcher(path, WatchOptions{Interval: 5 * time.Millisecond, OnReload: func(r Reload) { reloads <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, hup); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, path, reloads
}

// writeFile replaces the file at path in one rename, so that the watcher
// never reads it half written (on a busy machine it can read a file that
// os.WriteFile has truncated, twice in a row).
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, reloads <-chan Reload) Reload {
	t.Helper()
	select {
	case r := <-reloads:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no reload")
	}
	panic("unreachable")
}

// noMore checks that no reload is reported while the watcher polls many
// more times.
func noMore(t *testing.T, reloads <-chan Reload) {
	t.Helper()
	select {
	case r := <-reloads:
		t.Fatalf("unexpected reload: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
}

func routeOf(t *testing.T, p *Policy) string {
	t.Helper()
	r, err := p.Match("GET", "h", "/v1/orders")
	if err != nil {
		t.Fatal(err)
	}
	return r.Name
}

func TestWatcherFileChanges(t *testing.T) {
	w, path, reloads := watch(t, policyA, nil)
	if routeOf(t, w.Policy()) != "a-orders" {
		t.Fatal("first load")
	}
	noMore(t, reloads) // an unchanged file is not reloaded

	writeFile(t, path, policyB)
	r := next(t, reloads)
	if r.Err != nil || r.Cause != "file" || routeOf(t, w.Policy()) != "b-orders" || r.Policy != w.Policy() {
		t.Fatalf("reload %+v", r)
	}

	// A broken file is reported once, and the policy in force kept.
	writeFile(t, path, policyA+"  - {match: /v1/x, upstream: nowhere}\n")
	r = next(t, reloads)
	if r.Err == nil || !strings.Contains(r.Err.Error(), `unknown upstream "nowhere"`) || r.Policy != w.Policy() || routeOf(t, w.Policy()) != "b-orders" {
		t.Fatalf("broken file: %+v", r)
	}
	noMore(t, reloads)

	// Renamed into place, as editors save.
	tmp := path + ".tmp"
	writeFile(t, tmp, policyA)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if r = next(t, reloads); r.Err != nil || routeOf(t, w.Policy()) != "a-orders" {
		t.Fatalf("renamed: %+v", r)
	}

	// Deleted: reported once, kept; back: reloaded if it differs.
	os.Remove(path)
	if r = next(t, reloads); r.Err == nil || routeOf(t, w.Policy()) != "a-orders" {
		t.Fatalf("deleted: %+v", r)
	}
	noMore(t, reloads)
	writeFile(t, path, policyB)
	if r = next(t, reloads); r.Err != nil || routeOf(t, w.Policy()) != "b-orders" {
		t.Fatalf("restored: %+v", r)
	}
}

// Kubernetes mounts a ConfigMap as a symlink to a directory it swaps.
func TestWatcherSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		os.Mkdir(filepath.Join(dir, v), 0o755)
	}
	writeFile(t, filepath.Join(dir, "v1", "signet.yaml"), policyA)
	writeFile(t, filepath.Join(dir, "v2", "signet.yaml"), policyB)
	if err := os.Symlink("v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "signet.yaml")
	os.Symlink(filepath.Join("..data", "signet.yaml"), path)
	reloads := make(chan Reload, 10)
	w, err := NewWatcher(path, WatchOptions{Interval: 5 * time.Millisecond, OnReload: func(r Reload) { reloads <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, nil)
	os.Symlink("v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if r := next(t, reloads); r.Err != nil || routeOf(t, w.Policy()) != "b-orders" {
		t.Fatalf("swapped: %+v", r)
	}
}

func TestWatcherSignal(t *testing.T) {
	hup := make(chan os.Signal, 1)
	path := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, path, policyA)
	reloads := make(chan Reload, 10)
	w, err := NewWatcher(path, WatchOptions{Interval: -1, OnReload: func(r Reload) { reloads <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, hup)
	writeFile(t, path, policyB)
	noMore(t, reloads) // not polled
	hup <- syscall.SIGHUP
	if r := next(t, reloads); r.Err != nil || r.Cause != "signal" || routeOf(t, w.Policy()) != "b-orders" {
		t.Fatalf("signal: %+v", r)
	}
	writeFile(t, path, "routes: [")
	if err := w.Reload(); err == nil || routeOf(t, w.Policy()) != "b-orders" {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if r := next(t, reloads); r.Err == nil || r.Cause != "call" {
		t.Fatalf("call: %+v", r)
	}
}

func TestWatcherRestartSettings(t *testing.T) {
	w, path, reloads := watch(t, "listen: ':1'\nmax_age: 10s\n"+policyA, nil)
	writeFile(t, path, "listen: ':2'\nmax_age: 20s\n"+policyA)
	r := next(t, reloads)
	if r.Err != nil || len(r.Restart) != 1 || r.Restart[0] != "listen" {
		t.Fatalf("reload %+v", r)
	}
	if s := w.Policy().Settings; s.Listen != ":1" || s.MaxAge != 20*time.Second {
		t.Fatalf("settings %+v", s)
	}
}

func TestWatcherFlagsStay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, path, "max_age: 10s\n"+policyA)
	w, err := NewWatcher(path, WatchOptions{Options: Options{Flags: map[string]string{"max-age": "1m"}}, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "max_age: 20s\n"+policyB)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if w.Policy().Settings.MaxAge != time.Minute {
		t.Fatalf("max_age %v, want the flag's", w.Policy().Settings.MaxAge)
	}
}

// Matching goes on while the policy changes under it: each match comes
// whole from one policy or the other.
func TestWatcherConcurrent(t *testing.T) {
	w, path, reloads := watch(t, policyA, nil)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var matches atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				p := w.Policy()
				for _, path := range []string{"/v1/orders", "/other"} {
					r, err := p.Match("GET", "h", path)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Name[:1] != r.Upstream.Name || p.Upstreams[r.Upstream.Name] != r.Upstream {
						t.Errorf("route %s with upstream %s", r.Name, r.Upstream.Name)
						return
					}
					matches.Add(1)
				}
			}
		}()
	}
	for i := range 10 {
		content := policyA
		if i%2 == 0 {
			content = policyB
		}
		writeFile(t, path, content)
		if r := next(t, reloads); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if matches.Load() == 0 {
		t.Fatal("no matches")
	}
}
