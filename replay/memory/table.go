package memory

import (
	"math/bits"
	"sync"

	"github.com/signet-dev/signet/httpsig"
)

// A shard is an open-addressing table with linear probing, deleted from by
// shifting back the entries after the hole, so that it needs no tombstones.
// It is padded so that two shards' locks never share a cache line.
type shard struct {
	mu       sync.Mutex
	slots    []slot
	n        int // entries held, live or expired
	limit    int // most entries held
	maxSlots int // the table's size once it holds limit entries

	cursor   int    // where the sweep goes on
	swept    uint32 // second of the last sweep
	sweptAll uint32 // second of the last sweep of the whole table

	// Each keyid with entries in the shard has an owner, which counts them.
	owners []owner
	byHash map[uint64]uint32 // index in owners by keyid hash
	free   []uint32          // indices in owners not in use

	_ [64]byte
}

// A slot holds one entry, or none when fp is 0.
type slot struct {
	fp  uint64 // fingerprint of the pair
	exp uint32 // Unix second through which the pair is held
	key uint32 // index in shard.owners
}

type owner struct {
	hash    uint64
	entries uint32
}

const (
	// minSlots is the size of a new table; it doubles as it fills.
	minSlots = 64

	// sweepPeriod is how many seconds the sweep takes to go round a table:
	// expired entries wait about that long to be dropped, unless a new
	// pair takes their slot first.
	sweepPeriod = 8

	// reserveDiv sets the reserve of a shard that only keyids below their
	// share may fill: a quarter.
	reserveDiv = 4
)

// loadCap returns how many entries a table of size slots may hold: three
// quarters of it, which keeps probe sequences short.
func loadCap(slots int) int { return slots - slots/4 }

// init makes the shard empty, to hold up to limit entries. The caller holds
// its lock, or the shard is not in use yet.
func (sh *shard) init(limit int) {
	sh.n = 0
	sh.limit = limit
	sh.cursor, sh.swept, sh.sweptAll = 0, 0, 0
	sh.owners, sh.free = nil, nil
	// The least size whose loadCap is at least limit.
	sh.maxSlots = max(minSlots, limit+(limit+2)/3)
	sh.slots = make([]slot, min(minSlots, sh.maxSlots))
	sh.byHash = make(map[uint64]uint32)
}

// home returns the slot where the probe sequence of fp starts. It uses the
// high bits of fp; the low bits chose the shard.
func (sh *shard) home(fp uint64) int {
	hi, _ := bits.Mul64(fp, uint64(len(sh.slots)))
	return int(hi)
}

func (sh *shard) next(i int) int {
	i++
	if i == len(sh.slots) {
		return 0
	}
	return i
}

// remember is Store.Remember once the shard is locked. A pair whose exp has
// passed is looked for but not added.
func (sh *shard) remember(kh, fp uint64, exp, nowS uint32) error {
	sh.tick(nowS)
	for {
		i := sh.home(fp)
		reuse := -1 // the first expired entry on the way, whose slot can take the pair
		for ; sh.slots[i].fp != 0; i = sh.next(i) {
			e := &sh.slots[i]
			if e.fp == fp {
				if e.exp >= nowS {
					return httpsig.ErrReplayed
				}
				// Expired: the pair may be used again, and its entry serves.
				e.exp = exp
				return nil
			}
			if reuse < 0 && e.exp < nowS {
				reuse = i
			}
		}
		if exp < nowS {
			return nil
		}
		over := sh.overShare(kh)
		if !over && reuse >= 0 {
			old := sh.slots[reuse].key
			sh.slots[reuse] = slot{fp: fp, exp: exp, key: sh.acquire(kh)}
			sh.release(old)
			return nil
		}
		full := sh.n >= sh.limit || sh.n >= loadCap(len(sh.slots))
		if !over && !full {
			sh.slots[i] = slot{fp: fp, exp: exp, key: sh.acquire(kh)}
			sh.n++
			return nil
		}
		// Make room, then look again: the table has changed.
		switch {
		case !over && sh.n < sh.limit && len(sh.slots) < sh.maxSlots:
			sh.grow(nowS)
		case sh.sweptAll != nowS:
			// Once a second at most, so that a full store answers fast.
			sh.sweptAll = nowS
			sh.sweep(nowS, len(sh.slots))
		case sh.n >= sh.limit:
			return ErrFull
		default:
			return ErrKeyFull
		}
	}
}

// overShare reports whether the keyid whose hash is kh may not add an entry
// because the shard is nearly full and the keyid holds its share of it.
func (sh *shard) overShare(kh uint64) bool {
	if sh.n < sh.limit-sh.limit/reserveDiv {
		return false
	}
	k, ok := sh.byHash[kh]
	return ok && uint64(sh.owners[k].entries)*uint64(len(sh.byHash)) >= uint64(sh.limit)
}

// acquire counts one more entry for the keyid whose hash is kh, and returns
// the index of its owner.
func (sh *shard) acquire(kh uint64) uint32 {
	k, ok := sh.byHash[kh]
	if !ok {
		if n := len(sh.free); n > 0 {
			k = sh.free[n-1]
			sh.free = sh.free[:n-1]
		} else {
			k = uint32(len(sh.owners))
			sh.owners = append(sh.owners, owner{})
		}
		sh.owners[k] = owner{hash: kh}
		sh.byHash[kh] = k
	}
	sh.owners[k].entries++
	return k
}

// release counts one entry less for owner k, and frees the owner when it
// has none left.
func (sh *shard) release(k uint32) {
	o := &sh.owners[k]
	o.entries--
	if o.entries == 0 {
		delete(sh.byHash, o.hash)
		sh.free = append(sh.free, k)
	}
}

// tick sweeps the part of the table that is due since the last sweep, so
// that the sweep goes round it every sweepPeriod seconds.
func (sh *shard) tick(nowS uint32) {
	if nowS <= sh.swept {
		sh.swept = min(sh.swept, nowS) // a clock set back
		return
	}
	steps := len(sh.slots)
	if d := nowS - sh.swept; d < sweepPeriod {
		steps = int(d) * (len(sh.slots)/sweepPeriod + 1)
	}
	sh.swept = nowS
	sh.sweep(nowS, steps)
}

// sweep drops the expired entries of the next steps slots from the cursor.
func (sh *shard) sweep(nowS uint32, steps int) {
	slots := sh.slots // delete moves entries but never reallocates
	c := sh.cursor
	for steps = min(steps, len(slots)); steps > 0; {
		end := min(c+steps, len(slots))
		for i := c; i < end; i++ {
			// Deleting shifts the next entry back into i: look at it too.
			for slots[i].fp != 0 && slots[i].exp < nowS {
				sh.delete(i)
			}
		}
		steps -= end - c
		c = end
		if c == len(slots) {
			c = 0
		}
	}
	sh.cursor = c
}

// delete removes the entry at i, then moves back into the hole each entry
// after it whose probe sequence passes the hole, until an empty slot.
func (sh *shard) delete(i int) {
	sh.release(sh.slots[i].key)
	sh.n--
	hole := i
	for i = sh.next(i); sh.slots[i].fp != 0; i = sh.next(i) {
		h := sh.home(sh.slots[i].fp)
		// Can the entry at i, which started at h, move to hole? Only if
		// hole lies on its way from h to i, cyclically.
		if (hole < i && (h <= hole || h > i)) || (hole > i && h <= hole && h > i) {
			sh.slots[hole] = sh.slots[i]
			hole = i
		}
	}
	sh.slots[hole] = slot{}
}

// grow moves the live entries to a table twice as large, up to maxSlots,
// and drops the expired ones.
func (sh *shard) grow(nowS uint32) {
	old := sh.slots
	sh.slots = make([]slot, min(2*len(old), sh.maxSlots))
	sh.cursor = 0
	for _, e := range old {
		switch {
		case e.fp == 0:
		case e.exp < nowS:
			sh.release(e.key)
			sh.n--
		default:
			sh.place(e)
		}
	}
}

// place puts e in the first empty slot of its probe sequence; the caller
// knows that e's pair is not in the table and that there is room.
func (sh *shard) place(e slot) {
	i := sh.home(e.fp)
	for sh.slots[i].fp != 0 {
		i = sh.next(i)
	}
	sh.slots[i] = e
}
