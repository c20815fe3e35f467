package memory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A snapshot is, in little-endian order:
//
//	header   "SIGNETNS", version (uint32, 1), 4 zero bytes,
//	         the four SipHash keys (uint64 each),
//	         the horizon and the time of saving (Unix nanoseconds, int64)
//	entries  for each live entry: fingerprint and keyid hash (uint64),
//	         the second it expires (uint32)
//	trailer  the number of entries (uint64), then the CRC-32C of all
//	         that precedes it (uint32)
const (
	snapshotMagic   = "SIGNETNS"
	snapshotVersion = 1
	headerLen       = 64
	entryLen        = 20
	trailerLen      = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrStale is returned by [Store.Load] for a snapshot saved more than the
// maximum age ago: its pairs have all expired, and its horizon would only
// let through requests that whatever ran since may have accepted.
var ErrStale = errors.New("memory: snapshot is stale")

// Save writes a snapshot of the store to w: its live entries, its hash keys
// and its horizon, for [Store.Load] in the next process. The store is
// closed from the moment Save begins: Remember then returns [ErrClosed],
// since a pair it accepted after the snapshot would be lost. A server calls
// it once it has stopped taking requests.
//
// The snapshot holds the store's secret hash keys: whoever reads it can
// craft nonces that slow the store down. Keep it as private as a key.
func (s *Store) Save(w io.Writer) error {
	s.closed.Store(true)
	for i := range s.shards {
		s.shards[i].mu.Lock()
		defer s.shards[i].mu.Unlock()
	}
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var b [headerLen]byte
	copy(b[:], snapshotMagic)
	binary.LittleEndian.PutUint32(b[8:], snapshotVersion)
	for i, k := range s.keys {
		binary.LittleEndian.PutUint64(b[16+8*i:], k)
	}
	binary.LittleEndian.PutUint64(b[48:], uint64(s.horizon.Load()))
	binary.LittleEndian.PutUint64(b[56:], uint64(s.now().UnixNano()))
	bw.Write(b[:])

	nowS := second(s.now())
	var count uint64
	for i := range s.shards {
		sh := &s.shards[i]
		for _, e := range sh.slots {
			if e.fp == 0 || e.exp < nowS {
				continue
			}
			binary.LittleEndian.PutUint64(b[0:], e.fp)
			binary.LittleEndian.PutUint64(b[8:], sh.owners[e.key].hash)
			binary.LittleEndian.PutUint32(b[16:], e.exp)
			bw.Write(b[:entryLen])
			count++
		}
	}
	binary.LittleEndian.PutUint64(b[:], count)
	bw.Write(b[:8])
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	binary.LittleEndian.PutUint32(b[:], crc.Sum32())
	if _, err := w.Write(b[:4]); err != nil {
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	return nil
}

// Load reads a snapshot written by [Store.Save] into the store, which must
// be new: Load must be called before any other method, and not at the same
// time as them. The store takes the snapshot's hash keys, its horizon and
// its live entries, so that it refuses what the store that saved it would
// have refused.
//
// Load returns an error, and leaves the store as it was, if the snapshot is
// damaged, if it holds more live entries than the store may, or, wrapping
// [ErrStale], if it was saved more than [Options.MaxAge] ago.
func (s *Store) Load(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("memory: load snapshot: %w", err)
	}
	if len(b) < headerLen+trailerLen || string(b[:8]) != snapshotMagic {
		return errors.New("memory: load snapshot: not a snapshot of a nonce store")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != snapshotVersion {
		return fmt.Errorf("memory: load snapshot: version %d, want %d", v, snapshotVersion)
	}
	body, trailer := b[:len(b)-4], b[len(b)-4:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(trailer) {
		return errors.New("memory: load snapshot: checksum mismatch: the snapshot is damaged")
	}
	entries := b[headerLen : len(b)-trailerLen]
	count := binary.LittleEndian.Uint64(b[len(b)-trailerLen:])
	if uint64(len(entries)) != count*entryLen {
		return fmt.Errorf("memory: load snapshot: %d bytes of entries for %d entries", len(entries), count)
	}
	var keys [4]uint64
	for i := range keys {
		keys[i] = binary.LittleEndian.Uint64(b[16+8*i:])
	}
	horizon := int64(binary.LittleEndian.Uint64(b[48:]))
	saved := time.Unix(0, int64(binary.LittleEndian.Uint64(b[56:])))
	now := s.now()
	if age := now.Sub(saved); age > s.maxAge {
		return fmt.Errorf("%w: saved %v ago, more than the maximum age of %v", ErrStale, age.Round(time.Second), s.maxAge)
	}

	for i := range s.shards {
		s.shards[i].mu.Lock()
		defer s.shards[i].mu.Unlock()
	}
	if s.closed.Load() {
		return ErrClosed
	}
	for i := range s.shards {
		if s.shards[i].n > 0 {
			return errors.New("memory: load snapshot: the store is in use")
		}
	}
	nowS := second(now)
	for e := entries; len(e) > 0; e = e[entryLen:] {
		fp := binary.LittleEndian.Uint64(e)
		kh := binary.LittleEndian.Uint64(e[8:])
		exp := binary.LittleEndian.Uint32(e[16:])
		if exp < nowS || fp == 0 {
			continue
		}
		if !s.shards[fp&s.mask].load(fp, kh, exp, nowS) {
			for i := range s.shards {
				s.shards[i].init(s.shards[i].limit)
			}
			return fmt.Errorf("memory: load snapshot: %d entries are more than the store may hold (%d)", count, s.Cap())
		}
	}
	s.keys = keys
	s.horizon.Store(horizon)
	return nil
}

// load adds an entry from a snapshot, and reports whether there was room.
func (sh *shard) load(fp, kh uint64, exp, nowS uint32) bool {
	if sh.n >= sh.limit {
		return false
	}
	if sh.n >= loadCap(len(sh.slots)) {
		sh.grow(nowS)
	}
	sh.place(slot{fp: fp, exp: exp, key: sh.acquire(kh)})
	sh.n++
	return true
}

// SaveFile saves a snapshot (see [Store.Save]) to the file at path, with
// mode 0600: it is written to a temporary file beside it, synced, and
// renamed, so that the file at path is whole or absent.
func (s *Store) SaveFile(path string) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		s.closed.Store(true)
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := s.Save(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("memory: save snapshot: %w", err)
	}
	return syncDir(dir)
}

// LoadFile loads the snapshot at path (see [Store.Load]) and removes the
// file, whether it can use it or not, before the store accepts anything: a
// snapshot must never outlive the process that read it, or a crash of that
// process would leave behind a snapshot missing the pairs it accepted. If
// it cannot remove the file, it does not use it.
//
// It returns an error wrapping [fs.ErrNotExist] if there is no file, and
// refuses a file that others than its owner may read or write, since its
// hash keys may have leaked.
func (s *Store) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("memory: load snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("memory: load snapshot: %w", err)
	}
	var b []byte
	switch limit := int64(headerLen + trailerLen + entryLen*s.Cap()); {
	case fi.Mode().Perm()&0o077 != 0:
		err = fmt.Errorf("memory: load snapshot: %s has mode %v: others may have read its hash keys", path, fi.Mode().Perm())
	case fi.Size() > limit:
		err = fmt.Errorf("memory: load snapshot: %s holds more entries than the store may", path)
	default:
		b, err = io.ReadAll(f)
	}
	if rmErr := os.Remove(path); rmErr != nil {
		return fmt.Errorf("memory: load snapshot: not used, as it cannot be removed: %w", rmErr)
	}
	if rmErr := syncDir(filepath.Dir(path)); rmErr != nil {
		return fmt.Errorf("memory: load snapshot: not used, as its removal cannot be made durable: %w", rmErr)
	}
	if err != nil {
		return err
	}
	return s.Load(bytes.NewReader(b))
}

// syncDir makes the creation, renaming or removal of a file in dir durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("memory: sync %s: %w", dir, err)
	}
	return nil
}
