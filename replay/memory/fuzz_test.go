package memory

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testtime"
)

// FuzzLoad feeds Load damaged and made-up snapshots: it must refuse them or
// load them, never panic, and a store it loaded must save a snapshot that
// loads the same.
func FuzzLoad(f *testing.F) {
	clock := testtime.NewClock(epoch)
	s := New(Options{Now: clock.Now, MaxEntries: 4096})
	for i := range 50 {
		s.Remember(context.Background(), "sk_"+strconv.Itoa(i%3), strconv.Itoa(i), epoch, epoch.Add(time.Minute))
	}
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), false)
	f.Add(buf.Bytes(), true)
	f.Add(buf.Bytes()[:headerLen+trailerLen], true)
	f.Add([]byte(snapshotMagic), false)
	f.Fuzz(func(t *testing.T, b []byte, fixChecksum bool) {
		if fixChecksum && len(b) >= 4 {
			// Past the checksum, to the parsing of what it covers.
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		a := New(Options{Now: clock.Now, MaxEntries: 4096})
		if err := a.Load(bytes.NewReader(b)); err != nil {
			if a.Len() != 0 {
				t.Fatalf("Load failed (%v) but left %d entries", err, a.Len())
			}
			return
		}
		checkShards(t, a)
		var again bytes.Buffer
		if err := a.Save(&again); err != nil {
			t.Fatal(err)
		}
		b2 := New(Options{Now: clock.Now, MaxEntries: 4096})
		if err := b2.Load(&again); err != nil {
			t.Fatalf("a snapshot of a loaded store does not load: %v", err)
		}
		if a.Len() != b2.Len() || a.HorizonTime() != b2.HorizonTime() || a.keys != b2.keys {
			t.Fatalf("reloaded store differs: %d entries, horizon %v; want %d, %v", b2.Len(), b2.HorizonTime(), a.Len(), a.HorizonTime())
		}
	})
}
