package keys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/httpsig"
)

var _ httpsig.KeyResolver = (*Service)(nil)

// errUnknownKey is returned for every keyid that names no key; it carries
// no keyid, so that refusing a flood of them costs nothing.
var errUnknownKey = fmt.Errorf("keys: no such key: %w", httpsig.ErrUnknownKey)

// tick is how often the service's coarse clock moves on and stale cache
// entries are dropped; it is the resolution of last-used times and of the
// cache TTLs.
const tick = time.Second

// ResolveKey implements [httpsig.KeyResolver]. It returns an error wrapping
// httpsig.ErrUnknownKey for a keyid that names no key,
// httpsig.ErrKeyRevoked for a revoked key, httpsig.ErrKeyExpired for an
// expired one (a rotated key past its overlap included), [ErrKeyDisabled]
// and httpsig.ErrKeyRevoked for a disabled one, and an error
// wrapping [ErrUnavailable] when the store cannot answer, within
// [Options.LookupTimeout], so that the verifier fails closed, fast.
//
// The key it returns is a [*ResolvedKey], which also says who holds it.
//
// Keys are cached: a cache hit takes no lock and allocates nothing, and
// reads the clock only for a key that has an expiry. A key changed through
// any service on the store (revoked, disabled, rotated, re-scoped) leaves every cache
// within about a second. While the store cannot report changes, the cache
// is bypassed.
func (s *Service) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	if !validID(keyID) {
		return nil, errUnknownKey
	}
	if !s.watching.Load() {
		s.startWatch()
	}
	if s.trusted.Load() {
		if e := s.cache.get(keyID); e != nil {
			return s.use(e)
		}
		if s.neg != nil && s.neg.get(keyID) != nil {
			return nil, errUnknownKey
		}
	}
	return s.resolveSlow(ctx, keyID)
}

// A ResolvedKey is a verifying key with what the middleware needs to know
// about its holder: it is a middleware.OwnedKey (the gateway asserts it).
type ResolvedKey struct {
	id, owner   string
	alg         httpsig.Algorithm
	scopes      []string
	vk          httpsig.VerifyingKey // nil if revoked or disabled
	expires     time.Time
	revoked     bool
	errRevoked  error
	errExpired  error
	errDisabled error // nil unless disabled
	metadata    []byte
	rateLimit   RateLimit
	uses        Uses
	hasUses     bool
}

// Algorithm returns the algorithm the key is bound to.
func (k *ResolvedKey) Algorithm() httpsig.Algorithm { return k.alg }

// Verify checks sig against base, as [httpsig.VerifyingKey] says.
func (k *ResolvedKey) Verify(base, sig []byte) error { return k.vk.Verify(base, sig) }

// KeyID returns the key's id.
func (k *ResolvedKey) KeyID() string { return k.id }

// Owner returns the id of the client or user the key belongs to.
func (k *ResolvedKey) Owner() string { return k.owner }

// Scopes returns the key's scopes. The slice is shared: do not modify it.
func (k *ResolvedKey) Scopes() []string { return k.scopes }

// Metadata returns the key's metadata, a JSON object in canonical form, or
// nil. The slice is shared: do not modify it.
func (k *ResolvedKey) Metadata() []byte { return k.metadata }

// RateLimit returns the key's rate limit, and false if it has none.
func (k *ResolvedKey) RateLimit() (RateLimit, bool) { return k.rateLimit, !k.rateLimit.IsZero() }

// Uses returns the key's budget as it was when the key was read, and false
// if it has none: its Set tells a gateway whether uses it spent ahead are
// still good; [Service.SpendUses] spends from it.
func (k *ResolvedKey) Uses() (Uses, bool) { return k.uses, k.hasUses }

// use returns the key of e if it may be used now, and records the use. The
// time of the use is the coarse clock's, so that recording it writes to
// the entry at most once a tick.
func (s *Service) use(e *entry) (httpsig.VerifyingKey, error) {
	k := e.key
	switch {
	case k == nil:
		return nil, errUnknownKey
	case k.revoked:
		return nil, k.errRevoked
	case !k.expires.IsZero() && !s.now().Before(k.expires):
		return nil, k.errExpired
	case k.errDisabled != nil:
		return nil, k.errDisabled
	}
	if c := s.coarse.Load(); e.used.Load() < c {
		e.used.Store(c)
	}
	return k, nil
}

// setCoarse moves the coarse clock on to t, never back.
func (s *Service) setCoarse(t int64) {
	for {
		c := s.coarse.Load()
		if t <= c || s.coarse.CompareAndSwap(c, t) {
			return
		}
	}
}

// A lookup is what one read of the store found for a keyid, shared by the
// resolutions that were waiting for it.
type lookup struct {
	e      *entry
	cached bool
}

func (s *Service) resolveSlow(ctx context.Context, id string) (httpsig.VerifyingKey, error) {
	s.misses.Add(1)
	// One read serves every resolution of id waiting at the time. It runs
	// under a deadline of its own, apart from the request that started
	// it: it must not fail because that request went away, nor wait
	// without end on a store that hangs.
	ch := s.lookups.DoChan(id, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lookupTimeout)
		defer cancel()
		e, cached, err := s.load(lctx, id)
		return lookup{e, cached}, err
	})
	// The deadline holds even for a store that does not honour it.
	deadline := time.NewTimer(s.lookupTimeout)
	defer deadline.Stop()
	var r singleflight.Result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-deadline.C:
		return nil, fmt.Errorf("keys: looking up key %s: no answer within %s: %w", id, s.lookupTimeout, ErrUnavailable)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	l := r.Val.(lookup)
	k, err := s.use(l.e)
	if !l.cached && l.e.key != nil {
		s.keepUse(l.e)
	}
	return k, err
}

// load reads a key from the store and caches it if the cache may be
// trusted, reporting whether it did.
func (s *Service) load(ctx context.Context, id string) (*entry, bool, error) {
	gen := s.gen.Load()
	trusted := s.trusted.Load()
	unchanged := func() bool { return s.gen.Load() == gen }
	rec, err := s.store.Get(ctx, id)
	loaded := s.now().UnixNano()
	s.setCoarse(loaded)
	if errors.Is(err, ErrNotFound) {
		e := &entry{id: id, loaded: loaded}
		if trusted && s.neg != nil {
			s.neg.put(e, unchanged)
		}
		return e, false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("keys: looking up key %s: no answer within %s: %w", id, s.lookupTimeout, unavailable(err))
		}
		return nil, false, fmt.Errorf("keys: looking up key %s: %w", id, unavailable(err))
	}
	k, err := s.resolved(ctx, rec)
	if err != nil {
		return nil, false, err
	}
	e := &entry{id: id, key: k, loaded: loaded}
	if !trusted {
		return e, false, nil
	}
	out, added := s.cache.put(e, unchanged)
	s.keepUses(out)
	return e, added, nil
}

// resolved makes the verifying key of a record, opening its secret.
func (s *Service) resolved(ctx context.Context, rec *Record) (*ResolvedKey, error) {
	k := &ResolvedKey{
		id: rec.ID, owner: rec.Owner, alg: rec.Alg, scopes: slices.Clip(rec.Scopes),
		expires: rec.Expires, revoked: !rec.Revoked.IsZero(),
	}
	if k.scopes == nil {
		k.scopes = []string{}
	}
	if k.revoked {
		k.errRevoked = fmt.Errorf("keys: key %s was revoked at %s: %w", rec.ID, rec.Revoked.Format(time.RFC3339), httpsig.ErrKeyRevoked)
		return k, nil
	}
	if !k.expires.IsZero() {
		k.errExpired = fmt.Errorf("keys: key %s expired at %s: %w", rec.ID, rec.Expires.Format(time.RFC3339), httpsig.ErrKeyExpired)
	}
	if !rec.Disabled.IsZero() {
		k.errDisabled = &disabledError{id: rec.ID, since: rec.Disabled}
		return k, nil
	}
	k.metadata = slices.Clip(rec.Metadata)
	if rec.RateLimit != nil {
		k.rateLimit = *rec.RateLimit
	}
	if rec.Uses != nil {
		k.uses, k.hasUses = *rec.Uses, true
	}
	var err error
	if rec.Alg.Symmetric() {
		st := s.seal.Load()
		var secret []byte
		if secret, err = st.s.openSecret(rec.ID, rec.Secret); err != nil {
			if check, cerr := s.store.MasterCheck(ctx, nil); cerr == nil && !st.s.opensCheck(check) {
				return nil, fmt.Errorf("%w: the store was rekeyed under another master key since this service started; restart it with the new one", ErrWrongMasterKey)
			}
			return nil, err
		}
		k.vk, err = httpsig.NewHMACKey(secret)
	} else {
		k.vk, err = verifyingKeyOf(rec.Alg, rec.PublicKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", rec.ID, err)
	}
	return k, nil
}

// disabledError is the refusal of a disabled key: it wraps ErrKeyDisabled,
// and httpsig.ErrKeyRevoked for verifiers that know nothing of disabled
// keys.
type disabledError struct {
	id    string
	since time.Time
}

func (e *disabledError) Error() string {
	return "keys: key " + e.id + " is disabled (since " + e.since.Format(time.RFC3339) + ")"
}

func (e *disabledError) Unwrap() []error { return disabledWraps }

// RefusalReason has verifiers refuse the key as disabled, not revoked.
func (e *disabledError) RefusalReason() (httpsig.Reason, string) {
	return ReasonKeyDisabled, "the key is disabled"
}

// disabledWraps is shared, so that telling a disabled key's refusal apart
// allocates nothing.
var disabledWraps = []error{ErrKeyDisabled, httpsig.ErrKeyRevoked}

// startWatch starts watching the store for changes, once, when the cache
// is first needed; until the store reports that it watches, the cache is
// bypassed.
func (s *Service) startWatch() {
	if s.cache == nil || !s.watching.CompareAndSwap(false, true) {
		return
	}
	s.goBackground(func() { s.store.Watch(s.ctx, s.onEvent) })
}

// onEvent is called by the store's Watch, one call at a time.
func (s *Service) onEvent(ev Event) {
	if ev.Lost {
		s.trusted.Store(false)
		s.dropAll()
		s.lost = true
		s.log.Warn("keys: the store cannot report changes; resolving every key from the store until it can", "error", errText(ev.Err))
	}
	if ev.Reset {
		s.dropAll()
		s.trusted.Store(true)
		if s.lost {
			s.lost = false
			s.log.Info("keys: the store reports changes again; caching keys again")
		}
	}
	s.invalidate(ev.Changed)
}

// invalidate drops keys from the cache. Bumping the generation first keeps
// a lookup that read the store before the change from caching what it
// read.
func (s *Service) invalidate(ids []string) {
	if s.cache == nil || len(ids) == 0 {
		return
	}
	s.gen.Add(1)
	for _, id := range ids {
		s.keepUse(s.cache.remove(id))
		if s.neg != nil {
			s.neg.remove(id)
		}
	}
}

func (s *Service) dropAll() {
	if s.cache == nil {
		return
	}
	s.gen.Add(1)
	s.keepUses(s.cache.clear())
	if s.neg != nil {
		s.neg.clear()
	}
}

// keepUse moves the unwritten last use of an entry leaving the cache to
// the pending uses.
func (s *Service) keepUse(e *entry) {
	if e == nil || e.key == nil {
		return
	}
	u := e.used.Load()
	if u == 0 || u <= e.flushed.Load() {
		return
	}
	s.pendMu.Lock()
	s.pending[e.id] = max(s.pending[e.id], u)
	s.pendMu.Unlock()
}

func (s *Service) keepUses(es []*entry) {
	for _, e := range es {
		s.keepUse(e)
	}
}

// overlayLastUsed shows in k a use not yet written to the store.
func (s *Service) overlayLastUsed(k *Key) {
	var u int64
	if s.cache != nil {
		if e := s.cache.get(k.ID); e != nil {
			u = e.used.Load()
		}
	}
	s.pendMu.Lock()
	u = max(u, s.pending[k.ID])
	s.pendMu.Unlock()
	if u != 0 {
		if t := time.Unix(0, u).UTC().Truncate(time.Microsecond); t.After(k.LastUsed) {
			k.LastUsed = t
		}
	}
}

// maintain moves the coarse clock on, drops cache entries older than their
// TTL, and writes the last-used times every interval, all by the service's
// clock; it looks at that clock every tick.
func (s *Service) maintain(lastFlush time.Time) {
	t := time.NewTicker(min(tick, s.interval))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		s.setCoarse(now.UnixNano())
		if s.cache != nil {
			s.keepUses(s.cache.removeOlder(now.UnixNano() - s.ttl))
			if s.neg != nil {
				s.neg.removeOlder(now.UnixNano() - s.negTTL)
			}
		}
		if now.Sub(lastFlush) >= s.interval {
			lastFlush = now
			if err := s.flush(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("keys: writing last-used times", "err", err)
			}
		}
	}
}

// flush writes the last uses not yet written, one write for all keys.
func (s *Service) flush(ctx context.Context) error {
	used := make(map[string]time.Time)
	s.pendMu.Lock()
	pending := s.pending
	s.pending = make(map[string]int64)
	s.pendMu.Unlock()
	for id, u := range pending {
		used[id] = time.Unix(0, u)
	}
	type mark struct {
		e *entry
		u int64
	}
	var marks []mark
	if s.cache != nil {
		s.cache.each(func(e *entry) {
			if u := e.used.Load(); u > e.flushed.Load() {
				if t := time.Unix(0, u); t.After(used[e.id]) {
					used[e.id] = t
				}
				marks = append(marks, mark{e, u})
			}
		})
	}
	if len(used) == 0 {
		return nil
	}
	if err := s.store.TouchLastUsed(ctx, used); err != nil {
		s.pendMu.Lock()
		for id, u := range pending {
			s.pending[id] = max(s.pending[id], u)
		}
		s.pendMu.Unlock()
		return err
	}
	for _, m := range marks {
		m.e.flushed.Store(m.u)
	}
	return nil
}

// unavailable returns err marked as meaning that the store could not
// answer, unless it says so already.
func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
