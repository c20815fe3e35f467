package keys_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
)

// flakyWriter fails the writes it is told to: before passing them on, or
// after (the write was done, but the caller is told it failed, as when a
// connection breaks before the commit is acknowledged).
type flakyWriter struct {
	w             keys.UsageWriter
	mu            sync.Mutex
	before, after int // writes left to fail
	batches       []string
}

func (f *flakyWriter) AddUsage(ctx context.Context, b *keys.UsageBatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, b.ID)
	if f.before > 0 {
		f.before--
		return fmt.Errorf("before: %w", keys.ErrUnavailable)
	}
	if err := f.w.AddUsage(ctx, b); err != nil {
		return err
	}
	if f.after > 0 {
		f.after--
		return fmt.Errorf("after: %w", keys.ErrUnavailable)
	}
	return nil
}

func accepted(t *testing.T, svc *keys.Service, q keys.UsageQuery) int64 {
	t.Helper()
	r, err := svc.Usage(ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	return r.Total.Accepted
}

func TestMeterRetry(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{})
	q := keys.UsageQuery{KeyID: c.Key.ID}
	fw := &flakyWriter{w: svc, after: 1}
	m := keys.NewMeter(fw, keys.MeterOptions{Now: e.clock.Now, Interval: time.Hour})
	defer m.Close()
	for range 3 {
		m.Count(c.Key.ID, "", "")
	}
	if err := m.Flush(ctx()); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("Flush through a write that failed after it was done = %v", err)
	}
	m.Count(c.Key.ID, "", "")
	if err := m.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	if n := accepted(t, svc, q); n != 4 {
		t.Errorf("stored %d requests, counted 4: a batch given again was added twice", n)
	}
	if len(fw.batches) != 3 || fw.batches[0] != fw.batches[1] || fw.batches[1] == fw.batches[2] {
		t.Errorf("batches written: %q; want the failed one again, then a new one", fw.batches)
	}

	fw.before = 2
	for range 5 {
		m.Count(c.Key.ID, "", "")
	}
	if err := m.Flush(ctx()); err == nil {
		t.Fatal("Flush through a failing write succeeded")
	}
	m.Count(c.Key.ID, "", "")
	if err := m.Flush(ctx()); err == nil {
		t.Fatal("Flush through a failing write succeeded")
	}
	m.Count(c.Key.ID, "", "")
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := accepted(t, svc, q); n != 11 {
		t.Errorf("stored %d requests, counted 11", n)
	}
}

func TestMeterBounds(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	var log bytes.Buffer
	m := keys.NewMeter(svc, keys.MeterOptions{Now: e.clock.Now, Interval: time.Hour, MaxSeries: 3,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	defer m.Close()
	var ids []string
	for range 5 {
		ids = append(ids, mustCreate(t, svc, keys.CreateRequest{}).Key.ID)
	}
	for i, id := range ids {
		for range i + 1 {
			m.Count(id, "", "")
		}
	}
	if err := m.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	r, err := svc.Usage(ctx(), keys.UsageQuery{ByKey: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, h := range r.Hours {
		got[h.KeyID] += h.Accepted
	}
	want := map[string]int64{ids[0]: 1, ids[1]: 2, ids[2]: 3, "": 4 + 5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("past 3 series, counts = %v, want %v", got, want)
	}
	if n := strings.Count(log.String(), "as many series as it may"); n != 1 {
		t.Errorf("the overflow was logged %d times, want once:\n%s", n, &log)
	}
	// The series of an hour that has passed are let go of: the next
	// hour holds three of its own.
	e.clock.Advance(time.Hour)
	if err := m.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[2:] {
		m.Count(id, "", "")
	}
	if err := m.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	r, err = svc.Usage(ctx(), keys.UsageQuery{ByKey: true, Since: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Hours) != 3 || r.Hours[0].KeyID == "" || r.Hours[1].KeyID == "" || r.Hours[2].KeyID == "" {
		t.Errorf("the next hour's counts = %+v, want three keys of their own", r.Hours)
	}
}

// The crash test runs this test binary again as a child that counts
// requests as fast as it can and flushes every meterCrashInterval, and
// kills it.
const (
	meterCrashEnv      = "SIGNET_TEST_METER_CHILD"
	meterCrashInterval = 250 * time.Millisecond
	meterCrashKey      = "sk_crash00000000000000001"
)

// TestMeterCrash kills a process that meters between two flushes: the
// store holds what it counted up to one flush interval (and the time of
// the write under way) before it died, and no more than it counted.
func TestMeterCrash(t *testing.T) {
	if path := os.Getenv(meterCrashEnv); path != "" {
		meterCrashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "signet.db")
	st, err := sqlite.Open(ctx(), path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeterCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), meterCrashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type mark struct {
		at time.Time
		n  int64
	}
	var (
		mu    sync.Mutex
		marks []mark
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			at, err1 := strconv.ParseInt(f[0], 10, 64)
			n, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil {
				mu.Lock()
				marks = append(marks, mark{time.Unix(0, at), n})
				mu.Unlock()
			}
		}
	}()
	// Let it flush a few times, and kill it between two flushes, where
	// ever that falls.
	time.Sleep(8*meterCrashInterval + 37*time.Millisecond)
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	<-done
	if len(marks) == 0 {
		t.Fatal("the child counted nothing")
	}
	last := marks[len(marks)-1]
	counted := last.n + meterCrashBatch // at most one batch after the last mark

	st, err = sqlite.Open(ctx(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, err := st.Usage(ctx(), keys.UsageQuery{KeyID: meterCrashKey, Since: killed.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, c := range counts {
		stored += c.N
	}
	// Every count made more than two intervals before the kill (one
	// between flushes, one for the tick that starts a flush to come late
	// on a busy machine), and the time of the write, is stored.
	promised := killed.Add(-2*meterCrashInterval - 250*time.Millisecond)
	var due int64
	lostSince := killed
	for _, m := range marks {
		if m.at.Before(promised) {
			due = m.n
		}
		if m.n > stored && lostSince.Equal(killed) {
			lostSince = m.at
		}
	}
	t.Logf("counted %d..%d in %v, stored %d, %d due; lost the counts of the last %v",
		last.n, counted, last.at.Sub(marks[0].at), stored, due, killed.Sub(lostSince))
	if stored > counted {
		t.Errorf("stored %d requests, more than the %d counted", stored, counted)
	}
	if stored < due || stored == 0 {
		t.Errorf("stored %d requests; the %d counted %v or more before the crash (two flush intervals and a write) were due", stored, due, killed.Sub(promised))
	}
}

const meterCrashBatch = 100

// meterCrashChild counts requests until it is killed, writing after each
// batch of them the time and the total so far.
func meterCrashChild(path string) {
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	m := keys.NewMeter(st, keys.MeterOptions{Interval: meterCrashInterval})
	w := bufio.NewWriter(os.Stdout)
	for n := int64(meterCrashBatch); ; n += meterCrashBatch {
		for range meterCrashBatch {
			m.Count(meterCrashKey, "", "")
		}
		fmt.Fprintf(w, "%d %d\n", time.Now().UnixNano(), n)
		w.Flush()
		time.Sleep(time.Millisecond)
	}
}

// nopWriter stores nothing.
type nopWriter struct{ batches atomic.Int64 }

func (w *nopWriter) AddUsage(context.Context, *keys.UsageBatch) error {
	w.batches.Add(1)
	return nil
}

// BenchmarkMeter counts requests of 100 keys on two routes, accepted
// and refused: what metering adds to each request.
func BenchmarkMeter(b *testing.B) {
	m := keys.NewMeter(&nopWriter{}, keys.MeterOptions{Interval: time.Hour})
	defer m.Close()
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("sk_bench%017d", i))
	}
	routes := []string{"orders", "users"}
	outcomes := []httpsig.Reason{"", httpsig.ReasonBadSignature}
	for i := range 400 {
		m.Count(ids[i%100], routes[i/100%2], outcomes[i/200%2])
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.Count(ids[i%100], routes[i%2], outcomes[i/7%2])
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1) * 37)
			for pb.Next() {
				m.Count(ids[i%100], routes[i%2], outcomes[i/7%2])
				i++
			}
		})
	})
	b.Run("OneKey", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Count(ids[0], routes[0], "")
			}
		})
	})
}
