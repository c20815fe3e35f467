package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is how often a Watcher reads its file.
const DefaultWatchInterval = time.Second

// WatchOptions configures a [Watcher].
type WatchOptions struct {
	// Options apply to every load, the first and each reload.
	Options
	// Interval is how often the file is read to see whether it changed;
	// zero means DefaultWatchInterval, negative not at all (SIGHUP and
	// Reload only).
	Interval time.Duration
	// OnReload, if set, is called after each reload, successful or not,
	// never concurrently; for logs and metrics.
	OnReload func(Reload)
}

// Reload is the outcome of a reload.
type Reload struct {
	// Policy is the policy now in force: the new one, or the old one
	// when Err is set.
	Policy *Policy
	// Err says why the file was not taken; the old policy stays.
	Err error
	// Restart lists the settings the file changed that take a restart
	// (listen, db, ...); the policy in force keeps their old values.
	Restart []string
	// Cause is "signal", "file" or "call".
	Cause string
}

// Watcher holds the policy of a file and reloads it on SIGHUP, when the
// file changes, or when asked; a file that does not load is reported and
// the policy in force kept. It is safe for concurrent use.
//
// The file is read every Interval and reloaded once its content has
// changed and then stayed the same for one more Interval, so that an
// editor's write in several steps is not taken half done (an empty file
// is taken for one being written); a file replaced in one rename is never
// seen half written. Reading it,
// rather than watching for events, also follows a file renamed into
// place, a symlink swapped (as Kubernetes does for a ConfigMap), and
// file systems without change events.
type Watcher struct {
	path string
	opts WatchOptions
	cur  atomic.Pointer[Policy]

	mu      sync.Mutex // serialises reloads
	seen    [32]byte   // the sum of the content read last by the poll
	seenErr string     // the error of the poll's last read, reported once
	failed  [32]byte   // the sum of content that did not load, reported once
}

// NewWatcher loads the policy file at path; its error is Load's.
func NewWatcher(path string, opts WatchOptions) (*Watcher, error) {
	p, err := Load(path, opts.Options)
	if err != nil {
		return nil, err
	}
	w := &Watcher{path: path, opts: opts, seen: p.Sum}
	w.cur.Store(p)
	return w, nil
}

// Policy returns the policy in force. A request should be served with the
// one Policy it got at its start.
func (w *Watcher) Policy() *Policy { return w.cur.Load() }

// Reload loads the file again now, and puts it in force if it validates.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reload("call", nil)
}

// reload loads the file (or data, when read already) and swaps it in.
func (w *Watcher) reload(cause string, data []byte) error {
	old := w.cur.Load()
	var p *Policy
	var err error
	if data == nil {
		p, err = Load(w.path, w.opts.Options)
	} else {
		p, err = Parse(w.path, data, w.opts.Options)
	}
	r := Reload{Policy: old, Err: err, Cause: cause}
	if err == nil {
		r.Restart = p.keepRestart(old)
		w.cur.Store(p)
		r.Policy = p
	}
	if w.opts.OnReload != nil {
		w.opts.OnReload(r)
	}
	return err
}

// Run reloads on each signal from hup (typically SIGHUP, from
// signal.Notify) and, unless Interval is negative, when the file changes,
// until ctx is done.
func (w *Watcher) Run(ctx context.Context, hup <-chan os.Signal) {
	interval := w.opts.Interval
	if interval == 0 {
		interval = DefaultWatchInterval
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			w.mu.Lock()
			w.reload("signal", nil)
			w.mu.Unlock()
		case <-tick:
			w.poll()
		}
	}
}

// poll reads the file, and reloads it when its content differs from the
// policy in force and is what the previous poll read too.
func (w *Watcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := readLimited(w.path)
	if err != nil {
		if msg := err.Error(); msg != w.seenErr {
			w.seenErr = msg
			w.seen = [32]byte{}
			if w.opts.OnReload != nil {
				w.opts.OnReload(Reload{Policy: w.cur.Load(), Err: err, Cause: "file"})
			}
		}
		return
	}
	w.seenErr = ""
	if len(data) == 0 {
		return // being written: a policy file is never empty
	}
	sum := sha256.Sum256(data)
	settled := sum == w.seen
	w.seen = sum
	if !settled || sum == w.cur.Load().Sum || sum == w.failed {
		return
	}
	if err := w.reload("file", data); err != nil {
		w.failed = sum // reported; not again until the content changes
	}
}

// readLimited reads a policy file of at most maxFileSize bytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxFileSize+1)); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if b.Len() > maxFileSize {
		return nil, fmt.Errorf("policy: %s is over %d MiB", path, maxFileSize>>20)
	}
	return b.Bytes(), nil
}
