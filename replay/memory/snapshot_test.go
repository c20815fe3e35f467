package memory

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay"
)

// TestNoHorizon checks that a store made without Options.Horizon takes
// signatures whatever their created time, as it always has.
func TestNoHorizon(t *testing.T) {
	clock := testtime.NewClock(epoch)
	s := New(Options{Now: clock.Now})
	until := clock.Now().Add(time.Minute)
	for i, created := range []time.Time{{}, epoch.Add(-time.Hour), epoch} {
		if err := s.Remember(context.Background(), "sk_1", strconv.Itoa(i), created, until); err != nil {
			t.Errorf("Remember with created %v = %v, want nil", created, err)
		}
	}
}

func TestHorizon(t *testing.T) {
	tests := []struct {
		name    string
		skew    time.Duration
		created time.Time
		refused bool
	}{
		{name: "NoCreated", created: time.Time{}, refused: true},
		{name: "LongBefore", created: epoch.Add(-time.Hour), refused: true},
		{name: "JustBefore", created: epoch.Add(-time.Nanosecond), refused: true},
		{name: "AtStartWithinSkew", created: epoch, refused: true},
		{name: "WithinSkew", created: epoch.Add(httpsig.DefaultMaxSkew - time.Nanosecond), refused: true},
		{name: "AtHorizon", created: epoch.Add(httpsig.DefaultMaxSkew)},
		{name: "After", created: epoch.Add(time.Hour)},
		{name: "NoSkewAtStart", skew: -1, created: epoch},
		{name: "NoSkewBeforeStart", skew: -1, created: epoch.Add(-time.Nanosecond), refused: true},
		{name: "SkewOfTenSeconds", skew: 10 * time.Second, created: epoch.Add(10 * time.Second)},
		{name: "WithinSkewOfTenSeconds", skew: 10 * time.Second, created: epoch.Add(10*time.Second - time.Nanosecond), refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testtime.NewClock(epoch)
			s := New(Options{Now: clock.Now, Horizon: true, MaxSkew: tt.skew})
			clock.Advance(time.Minute) // the horizon is fixed when the store is made
			err := s.Remember(context.Background(), "sk_1", "n-1", tt.created, clock.Now().Add(time.Minute))
			switch {
			case tt.refused && (!errors.Is(err, replay.ErrUnvouched) || !errors.Is(err, httpsig.ErrReplayed)):
				t.Errorf("Remember = %v, want ErrUnvouched, which is an ErrReplayed", err)
			case !tt.refused && err != nil:
				t.Errorf("Remember = %v, want nil", err)
			}
		})
	}
}

// remembered fills s with pairs of several keyids, remembered through
// until, and returns them.
func remembered(t *testing.T, s *Store, created, until time.Time, n int) [][2]string {
	t.Helper()
	var pairs [][2]string
	for i := range n {
		p := [2]string{"sk_" + strconv.Itoa(i%5), "n-" + strconv.Itoa(i) + "-" + until.Format(time.RFC3339)}
		if err := s.Remember(context.Background(), p[0], p[1], created, until); err != nil {
			t.Fatalf("Remember(%q) = %v", p, err)
		}
		pairs = append(pairs, p)
	}
	return pairs
}

func TestSaveLoad(t *testing.T) {
	clock := testtime.NewClock(epoch)
	a := New(Options{Now: clock.Now, Horizon: true, MaxEntries: 1 << 14})
	clock.Advance(time.Minute)
	created := clock.Now()
	pairs := remembered(t, a, created, created.Add(5*time.Minute), 5000)
	short := remembered(t, a, created, created.Add(10*time.Second), 100)
	clock.Advance(20 * time.Second) // the short ones expire

	var buf bytes.Buffer
	if err := a.Save(&buf); err != nil {
		t.Fatalf("Save = %v", err)
	}
	if err := a.Remember(context.Background(), "sk_late", "n-late", clock.Now(), clock.Now().Add(time.Minute)); !errors.Is(err, ErrClosed) {
		t.Errorf("Remember after Save = %v, want ErrClosed", err)
	}
	if want := headerLen + trailerLen + entryLen*len(pairs); buf.Len() != want {
		t.Errorf("snapshot of %d live entries has %d bytes, want %d", len(pairs), buf.Len(), want)
	}

	// The next process, a little later, with a smaller store.
	clock.Advance(3 * time.Second)
	b := New(Options{Now: clock.Now, Horizon: true, MaxEntries: 1 << 13})
	if err := b.Load(&buf); err != nil {
		t.Fatalf("Load = %v", err)
	}
	if !b.HorizonTime().Equal(a.HorizonTime()) {
		t.Errorf("horizon after Load = %v, want the saving store's %v", b.HorizonTime(), a.HorizonTime())
	}
	if got := b.Len(); got != len(pairs) {
		t.Errorf("Len after Load = %d, want %d", got, len(pairs))
	}
	checkShards(t, b)
	ctx := context.Background()
	until := clock.Now().Add(5 * time.Minute)
	for _, p := range pairs {
		if err := b.Remember(ctx, p[0], p[1], created, until); !errors.Is(err, httpsig.ErrReplayed) || errors.Is(err, replay.ErrUnvouched) {
			t.Fatalf("replay of %q after Load = %v, want ErrReplayed for the pair", p, err)
		}
	}
	for _, p := range short {
		if err := b.Remember(ctx, p[0], p[1], created, until); err != nil {
			t.Fatalf("pair %q, expired before Save: Remember = %v, want nil", p, err)
		}
	}
	// Requests made while the server restarted, or just after, pass: the
	// snapshot vouches for them.
	if err := b.Remember(ctx, "sk_0", "n-new", created.Add(time.Second), until); err != nil {
		t.Errorf("new pair after Load = %v, want nil", err)
	}
}

func snapshot(t *testing.T, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatalf("Save = %v", err)
	}
	return buf.Bytes()
}

// checkUnchanged checks that a store whose Load failed is as new: empty,
// with its own horizon, and usable.
func checkUnchanged(t *testing.T, s *Store, horizon time.Time) {
	t.Helper()
	if n := s.Len(); n != 0 {
		t.Errorf("Len after a failed Load = %d, want 0", n)
	}
	if !s.HorizonTime().Equal(horizon) {
		t.Errorf("horizon after a failed Load = %v, want %v", s.HorizonTime(), horizon)
	}
	created := horizon.Add(time.Second)
	if err := s.Remember(context.Background(), "sk_0", "n-0", created, created.Add(time.Hour)); err != nil {
		t.Errorf("Remember after a failed Load = %v, want nil", err)
	}
	if err := s.Remember(context.Background(), "sk_0", "n-0", created, created.Add(time.Hour)); !errors.Is(err, httpsig.ErrReplayed) {
		t.Errorf("replay after a failed Load = %v, want ErrReplayed", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	clock := testtime.NewClock(epoch)
	newStore := func(max int) *Store {
		return New(Options{Now: clock.Now, MaxEntries: max})
	}
	a := newStore(1 << 14)
	remembered(t, a, epoch, epoch.Add(10*time.Minute), 3000)
	good := snapshot(t, a)

	tests := []struct {
		name string
		snap func() []byte
		max  int
		wait time.Duration
		want error
	}{
		{name: "Empty", snap: func() []byte { return nil }},
		{name: "Truncated", snap: func() []byte { return good[:len(good)-1] }},
		{name: "Extended", snap: func() []byte { return append(bytes.Clone(good), 0) }},
		{name: "BadMagic", snap: func() []byte { b := bytes.Clone(good); b[0] ^= 1; return b }},
		{name: "BadVersion", snap: func() []byte { b := bytes.Clone(good); b[8] = 2; return b }},
		{name: "FlippedKey", snap: func() []byte { b := bytes.Clone(good); b[20] ^= 0x10; return b }},
		{name: "FlippedEntry", snap: func() []byte { b := bytes.Clone(good); b[headerLen+100] ^= 1; return b }},
		{name: "FlippedChecksum", snap: func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }},
		{name: "TooMany", snap: func() []byte { return good }, max: 1000},
		{name: "Stale", snap: func() []byte { return good }, wait: httpsig.DefaultMaxAge + time.Second, want: ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer clock.Advance(-tt.wait)
			clock.Advance(tt.wait)
			s := newStore(cmp(tt.max, 1<<14))
			horizon := s.HorizonTime()
			err := s.Load(bytes.NewReader(tt.snap()))
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Load = %v, want an error (%v)", err, tt.want)
			}
			t.Logf("Load = %v", err)
			checkUnchanged(t, s, horizon)
		})
	}

	t.Run("StoreInUse", func(t *testing.T) {
		s := newStore(1 << 14)
		remembered(t, s, epoch, epoch.Add(time.Minute), 1)
		if err := s.Load(bytes.NewReader(good)); err == nil {
			t.Fatal("Load into a store in use succeeded")
		}
	})
	t.Run("Good", func(t *testing.T) {
		if err := newStore(1 << 14).Load(bytes.NewReader(good)); err != nil {
			t.Fatalf("Load of the good snapshot = %v", err)
		}
	})
}

func cmp(v, otherwise int) int {
	if v != 0 {
		return v
	}
	return otherwise
}

func TestSaveFileLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signet.db.nonces")
	clock := testtime.NewClock(epoch)
	a := New(Options{Now: clock.Now, Horizon: true})
	pairs := remembered(t, a, a.HorizonTime(), epoch.Add(time.Hour), 100)
	if err := a.SaveFile(path); err != nil {
		t.Fatalf("SaveFile = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot has mode %v, want 0600", fi.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(leftovers) > 0 {
		t.Errorf("SaveFile left %v", leftovers)
	}

	clock.Advance(time.Minute)
	b := New(Options{Now: clock.Now, Horizon: true})
	if err := b.LoadFile(path); err != nil {
		t.Fatalf("LoadFile = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the snapshot is still there after LoadFile (%v): a crash would bring it back", err)
	}
	if err := b.Remember(context.Background(), pairs[0][0], pairs[0][1], a.HorizonTime(), epoch.Add(time.Hour)); !errors.Is(err, httpsig.ErrReplayed) {
		t.Errorf("replay after LoadFile = %v, want ErrReplayed", err)
	}

	// A crash: no snapshot. The next store fails closed for what came
	// before it.
	clock.Advance(time.Minute)
	c := New(Options{Now: clock.Now, Horizon: true})
	if err := c.LoadFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile with no snapshot = %v, want ErrNotExist", err)
	}
	if err := c.Remember(context.Background(), pairs[0][0], pairs[0][1], a.HorizonTime(), epoch.Add(time.Hour)); !errors.Is(err, replay.ErrUnvouched) {
		t.Errorf("replay after a crash = %v, want ErrUnvouched", err)
	}
}

func TestLoadFileRefusesOpenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	a := New(Options{})
	remembered(t, a, time.Now(), time.Now().Add(time.Hour), 10)
	if err := a.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	b := New(Options{})
	if err := b.LoadFile(path); err == nil {
		t.Fatal("LoadFile of a world-readable snapshot succeeded")
	} else {
		t.Logf("LoadFile = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused snapshot is still there (%v)", err)
	}
	if b.Len() != 0 {
		t.Errorf("Len = %d after a refused snapshot", b.Len())
	}
}

func TestSaveFileFails(t *testing.T) {
	s := New(Options{})
	if err := s.SaveFile(filepath.Join(t.TempDir(), "missing", "nonces")); err == nil {
		t.Fatal("SaveFile into a missing directory succeeded")
	}
	if err := s.Remember(context.Background(), "sk_1", "n-1", time.Now(), time.Now().Add(time.Minute)); !errors.Is(err, ErrClosed) {
		t.Errorf("Remember after a failed SaveFile = %v, want ErrClosed", err)
	}
}
