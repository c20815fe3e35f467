package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/httpsig"
)

// Defaults of [Options].
const (
	DefaultCacheSize        = 10000
	DefaultCacheTTL         = time.Minute
	DefaultNegativeTTL      = 5 * time.Second
	DefaultLastUsedInterval = time.Minute
	DefaultLookupTimeout    = 200 * time.Millisecond
	// DefaultOverlap is how long a rotated key keeps working, for callers
	// of [Service.Rotate] that offer a default.
	DefaultOverlap = 24 * time.Hour
)

// hmacSecretSize is the size of the secrets the service makes: 256 bits.
const hmacSecretSize = 32

// Options configures a [Service]. Only MasterKey is required; the zero
// values of the others are the documented defaults.
type Options struct {
	// MasterKey seals the HMAC secrets at rest: 32 bytes (see
	// [ParseMasterKey]), kept out of the store. New refuses a key that is
	// not the one the store's secrets are sealed with.
	MasterKey []byte

	// CacheSize bounds the number of keys ResolveKey keeps in memory, and
	// apart from them the number of unknown keyids it remembers. Zero
	// means DefaultCacheSize; negative turns the cache off, so that every
	// resolution asks the store.
	CacheSize int

	// CacheTTL bounds how long a cached key is used before it is read
	// again (to the second). Changes made anywhere reach the cache through
	// [Store.Watch] within a second; the TTL is a second line of defence.
	// Zero means DefaultCacheTTL.
	CacheTTL time.Duration

	// NegativeTTL is how long an unknown keyid is remembered as unknown,
	// so that a flood of requests naming it costs one lookup. A key
	// created meanwhile is seen at once all the same: its creation is a
	// change that reaches the cache. Zero means DefaultNegativeTTL;
	// negative turns it off.
	NegativeTTL time.Duration

	// LastUsedInterval is how often the last-used times of keys are
	// written to the store: at most one write per key per interval, and a
	// last one on Close. Last-used times are kept to the second. Zero
	// means DefaultLastUsedInterval.
	LastUsedInterval time.Duration

	// LookupTimeout bounds each read of the store by ResolveKey (a cache
	// miss): past it, the resolution fails with an error wrapping
	// ErrUnavailable, so that a store that hangs makes requests fail
	// closed at once rather than wait. Zero means DefaultLookupTimeout.
	LookupTimeout time.Duration

	// Now returns the current time. If nil, time.Now is used. The
	// service's background work (cache expiry, writing last-used times)
	// runs by it too.
	Now func() time.Time

	// Rand is the source of key ids and HMAC secrets. If nil,
	// crypto/rand.Reader is used.
	Rand io.Reader

	// Logger receives errors of the background work (writing last-used
	// times, watching the store). If nil, slog.Default() is used.
	Logger *slog.Logger
}

// A Service manages the keys of a [Store] and resolves keyids for the
// verifier. It is safe for concurrent use.
type Service struct {
	store         Store
	now           func() time.Time
	rand          io.Reader
	log           *slog.Logger
	ttl           int64 // nanoseconds
	negTTL        int64 // nanoseconds; 0: no negative cache
	interval      time.Duration
	lookupTimeout time.Duration

	seal    atomic.Pointer[sealState]
	rekeyMu sync.Mutex

	cache, neg *cache       // nil when off
	coarse     atomic.Int64 // UnixNano, moved on every tick and by lookups
	gen        atomic.Uint64
	trusted    atomic.Bool // the cache may be used: the store reports changes
	watching   atomic.Bool

	misses atomic.Uint64 // lookups that went to the store

	lookups singleflight.Group
	lost    bool // the store's watch lost track; touched by onEvent alone

	pendMu  sync.Mutex
	pending map[string]int64 // last uses of keys no longer cached, UnixNano

	mu        sync.Mutex // guards closed and wg.Add
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// sealState is the master key in use and the check value stored with it.
type sealState struct {
	s     *sealer
	check []byte
}

// New returns a service over store. It checks the master key against the
// store's check value, storing one made from it if the store has none, and
// returns an error wrapping [ErrWrongMasterKey] if it does not match. The
// service owns the store from then on: Close closes it. If New fails, the
// caller still owns the store.
func New(ctx context.Context, store Store, opts Options) (*Service, error) {
	if len(opts.MasterKey) == 0 {
		return nil, errors.New("keys: a master key is required")
	}
	sl, err := newSealer(opts.MasterKey)
	if err != nil {
		return nil, err
	}
	check, err := store.MasterCheck(ctx, sl.check())
	if err != nil {
		return nil, fmt.Errorf("keys: reading the master key check value: %w", err)
	}
	if !sl.opensCheck(check) {
		return nil, fmt.Errorf("%w: it is not the key this store's secrets are sealed with", ErrWrongMasterKey)
	}
	s := &Service{
		store:         store,
		now:           opts.Now,
		rand:          opts.Rand,
		log:           opts.Logger,
		ttl:           int64(opts.CacheTTL),
		negTTL:        int64(opts.NegativeTTL),
		interval:      opts.LastUsedInterval,
		lookupTimeout: opts.LookupTimeout,
		pending:       make(map[string]int64),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.ttl <= 0 {
		s.ttl = int64(DefaultCacheTTL)
	}
	if s.negTTL == 0 {
		s.negTTL = int64(DefaultNegativeTTL)
	}
	if s.interval <= 0 {
		s.interval = DefaultLastUsedInterval
	}
	if s.lookupTimeout <= 0 {
		s.lookupTimeout = DefaultLookupTimeout
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		s.cache = newCache(size)
		if s.negTTL > 0 {
			s.neg = newCache(size)
		}
	}
	s.seal.Store(&sealState{s: sl, check: check})
	s.coarse.Store(s.now().UnixNano())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	started := s.now()
	s.goBackground(func() { s.maintain(started) })
	return s, nil
}

// clock returns the time to record: UTC, to the microsecond, which every
// store keeps.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func notFound(id string) error { return fmt.Errorf("%w: %s", ErrNotFound, id) }

// get reads a key, refusing ids of a form the service never makes.
func (s *Service) get(ctx context.Context, id string) (*Record, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	rec, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(id)
	}
	return rec, err
}

// Create makes a key. For hmac-sha256 it makes a 256-bit secret and
// returns it in the result, this once; for an asymmetric algorithm it
// registers req.PublicKey. Invalid requests get an error wrapping
// [ErrInvalid].
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Created, error) {
	if err := checkOwner(req.Owner); err != nil {
		return nil, err
	}
	if err := checkLabel(req.Label); err != nil {
		return nil, err
	}
	scopes, err := normalizeScopes(req.Scopes)
	if err != nil {
		return nil, err
	}
	var meta json.RawMessage
	if req.Metadata != nil {
		if meta, err = normalizeMetadata(req.Metadata); err != nil {
			return nil, err
		}
	}
	var rl *RateLimit
	if !req.RateLimit.IsZero() {
		l, err := normalizeRateLimit(req.RateLimit)
		if err != nil {
			return nil, err
		}
		rl = &l
	}
	now := s.clock()
	uses, err := checkUses(req.Uses, now)
	if err != nil {
		return nil, err
	}
	expires := normTime(req.Expires)
	if !expires.IsZero() && !expires.After(now) {
		return nil, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalid, expires.Format(time.RFC3339))
	}
	st := s.seal.Load()
	rec, secret, err := s.newMaterial(req.Alg, req.PublicKey, st)
	if err != nil {
		return nil, err
	}
	rec.Owner, rec.Scopes, rec.Label, rec.Created, rec.Expires = req.Owner, scopes, req.Label, now, expires
	rec.Metadata, rec.RateLimit, rec.Uses, rec.Version = meta, rl, uses, 1
	w := &Write{
		Insert: []Record{rec},
		Events: []AuditEvent{{Time: now, Actor: req.Actor, Action: ActionCreate, KeyID: rec.ID, Detail: describe(&rec.Key)}},
	}
	if rec.Secret != nil {
		w.Check = st.check
	}
	if err := s.apply(ctx, w); err != nil {
		return nil, err
	}
	rec.asOf = now
	return &Created{Key: rec.Key, Secret: secret}, nil
}

// newMaterial makes the id and the key material of a new key: a sealed
// secret for HMAC, a checked public key otherwise.
func (s *Service) newMaterial(alg httpsig.Algorithm, pub []byte, st *sealState) (Record, []byte, error) {
	var rec Record
	if alg != "" {
		if _, err := httpsig.ParseAlgorithm(string(alg)); err != nil {
			return rec, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if alg.Symmetric() || alg == "" && len(pub) == 0 {
		if len(pub) != 0 {
			return rec, nil, fmt.Errorf("%w: an hmac-sha256 key takes no public key: the server makes its secret", ErrInvalid)
		}
		secret := make([]byte, hmacSecretSize)
		if _, err := io.ReadFull(s.rand, secret); err != nil {
			return rec, nil, fmt.Errorf("keys: reading random bits: %w", err)
		}
		id, err := newID(s.rand, httpsig.AlgHMACSHA256)
		if err != nil {
			return rec, nil, err
		}
		rec.ID, rec.Alg, rec.Secret = id, httpsig.AlgHMACSHA256, st.s.sealSecret(id, secret)
		return rec, secret, nil
	}
	if len(pub) == 0 {
		return rec, nil, fmt.Errorf("%w: an %s key is registered by its public key (PEM or JWK); none was given", ErrInvalid, alg)
	}
	alg, pemData, _, err := parsePublicKey(alg, pub)
	if err != nil {
		return rec, nil, err
	}
	id, err := newID(s.rand, alg)
	if err != nil {
		return rec, nil, err
	}
	rec.ID, rec.Alg, rec.PublicKey = id, alg, pemData
	return rec, nil, nil
}

// describe says what a new key is, for the audit log.
func describe(k *Key) string {
	var b strings.Builder
	fmt.Fprintf(&b, "alg=%s owner=%s scopes=%s", k.Alg, k.Owner, strings.Join(k.Scopes, ","))
	if !k.Expires.IsZero() {
		fmt.Fprintf(&b, " expires=%s", k.Expires.Format(time.RFC3339))
	}
	if k.Predecessor != "" {
		fmt.Fprintf(&b, " predecessor=%s", k.Predecessor)
	}
	if k.Label != "" {
		fmt.Fprintf(&b, " label=%q", k.Label)
	}
	if k.Metadata != nil {
		fmt.Fprintf(&b, " metadata=%dB", len(k.Metadata))
	}
	if k.RateLimit != nil {
		fmt.Fprintf(&b, " rate=%s", describeRateLimit(k.RateLimit))
	}
	if k.Uses != nil {
		fmt.Fprintf(&b, " uses=%s", describeUses(k.Uses))
	}
	return b.String()
}

// apply writes w and drops the keys it changed from this service's cache
// at once, without waiting for the store to report the change.
func (s *Service) apply(ctx context.Context, w *Write) error {
	err := s.store.Apply(ctx, w)
	if errors.Is(err, ErrWrongMasterKey) {
		return fmt.Errorf("%w: the store was rekeyed under another master key since this service started; restart it with the new one", ErrWrongMasterKey)
	}
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(w.Insert)+len(w.Update))
	for i := range w.Insert {
		ids = append(ids, w.Insert[i].ID)
	}
	for i := range w.Update {
		ids = append(ids, w.Update[i].ID)
	}
	s.invalidate(ids)
	return nil
}

// conflictRetries is how many times a change is tried again after another
// writer changed the key between reading and writing it.
const conflictRetries = 3

// update reads a key, lets change decide what to write, and writes it,
// trying again if another writer changed the key meanwhile.
func (s *Service) update(ctx context.Context, id string, change func(rec *Record) (*Write, error)) error {
	for attempt := 0; ; attempt++ {
		rec, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		w, err := change(rec)
		if err != nil || w == nil {
			return err
		}
		err = s.apply(ctx, w)
		if errors.Is(err, ErrConflict) && attempt < conflictRetries {
			continue
		}
		return err
	}
}

// Get returns the key with the given id, or an error wrapping ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Key, error) {
	rec, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	k := rec.Key
	s.overlayLastUsed(&k)
	k.asOf = s.clock()
	return &k, nil
}

// List returns every key f selects, oldest first. [Service.ListPage]
// returns them a page at a time.
func (s *Service) List(ctx context.Context, f ListFilter) ([]Key, error) {
	return s.list(ctx, ListQuery{ListFilter: f})
}

func (s *Service) list(ctx context.Context, q ListQuery) ([]Key, error) {
	if q.Status != "" {
		if _, err := ParseStatus(string(q.Status)); err != nil {
			return nil, err
		}
	}
	if q.Scope != "" && !ValidScope(q.Scope) {
		return nil, fmt.Errorf("%w: scope %q is not valid", ErrInvalid, q.Scope)
	}
	q.Now = s.clock()
	ks, err := s.store.List(ctx, q)
	if err != nil {
		return nil, err
	}
	for i := range ks {
		s.overlayLastUsed(&ks[i])
		ks[i].asOf = q.Now
	}
	return ks, nil
}

// ListPage returns a page of the keys req selects, oldest first, and the
// cursor of the next page. Keys created while a caller pages through them
// may or may not be on its pages; no key is on two. A cursor that this
// service did not make is an error wrapping ErrInvalid.
func (s *Service) ListPage(ctx context.Context, req ListRequest) (*KeyPage, error) {
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return nil, fmt.Errorf("%w: a page holds 1 to %d keys", ErrInvalid, MaxPageSize)
	}
	q := ListQuery{ListFilter: req.ListFilter, Limit: limit + 1}
	if req.Cursor != "" {
		pos, err := parseCursor(req.Cursor)
		if err != nil {
			return nil, err
		}
		q.After = pos
	}
	ks, err := s.list(ctx, q)
	if err != nil {
		return nil, err
	}
	p := &KeyPage{Keys: ks}
	if len(ks) > limit {
		p.Keys = ks[:limit]
		last := &ks[limit-1]
		p.Next = formatCursor(KeyPosition{Created: last.Created, ID: last.ID})
	}
	return p, nil
}

// A cursor is the position of the last key of a page: "1", its creation
// time in Unix microseconds and its id, separated by dots, in base64url.
func formatCursor(p KeyPosition) string {
	return base64.RawURLEncoding.EncodeToString([]byte("1." + strconv.FormatInt(p.Created.UnixMicro(), 10) + "." + p.ID))
}

func parseCursor(c string) (KeyPosition, error) {
	bad := fmt.Errorf("%w: the cursor is not one this service made", ErrInvalid)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return KeyPosition{}, bad
	}
	v, rest, ok1 := strings.Cut(string(raw), ".")
	us, id, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok1 || !ok2 || v != "1" || err != nil || !validID(id) {
		return KeyPosition{}, bad
	}
	return KeyPosition{Created: time.UnixMicro(n).UTC(), ID: id}, nil
}

// Rotate replaces the key req.ID by a new one with the same owner,
// algorithm, scopes, label, metadata and rate limit, the same lifetime if
// it had an expiry, and as many uses left as the old one has (with the
// same refill), if it has a budget; during the overlap each key spends
// its own. The new key is enabled, whether the old one is or not.
// The old key keeps working for req.Overlap (it expires then, or at its
// own expiry if that is sooner), and its Successor names the new key. An
// HMAC key gets a new secret, returned this once; an asymmetric key needs
// req.PublicKey. Rotating a revoked key, or one already rotated, is an
// error wrapping ErrConflict.
func (s *Service) Rotate(ctx context.Context, req RotateRequest) (*Created, error) {
	id, overlap, actor := req.ID, req.Overlap, req.Actor
	if overlap < 0 {
		return nil, fmt.Errorf("%w: overlap must not be negative", ErrInvalid)
	}
	var out *Created
	err := s.update(ctx, id, func(old *Record) (*Write, error) {
		switch {
		case !old.Revoked.IsZero():
			return nil, fmt.Errorf("%w: key %s is revoked; create a new key instead", ErrConflict, id)
		case old.Successor != "":
			return nil, fmt.Errorf("%w: key %s was rotated already, to %s; rotate that key", ErrConflict, id, old.Successor)
		}
		now := s.clock()
		st := s.seal.Load()
		rec, secret, err := s.newMaterial(old.Alg, req.PublicKey, st)
		if err != nil {
			return nil, err
		}
		if rec.PublicKey != nil && bytes.Equal(rec.PublicKey, old.PublicKey) {
			return nil, fmt.Errorf("%w: the new public key is the old one; make a new key pair", ErrInvalid)
		}
		rec.Owner, rec.Scopes, rec.Label, rec.Created, rec.Predecessor = old.Owner, old.Scopes, old.Label, now, old.ID
		rec.Metadata, rec.RateLimit, rec.Version = old.Metadata, old.RateLimit, 1
		if old.Uses != nil {
			u := *old.Uses
			u.Spend(0, now)
			rec.Uses = &u
		}
		if !old.Expires.IsZero() {
			rec.Expires = now.Add(old.Expires.Sub(old.Created))
		}
		upd := *old
		upd.Successor = rec.ID
		if end := now.Add(overlap); old.Expires.IsZero() || end.Before(old.Expires) {
			upd.Expires = end
		}
		w := &Write{
			Insert: []Record{rec},
			Update: []Record{upd},
			Events: []AuditEvent{
				{Time: now, Actor: actor, Action: ActionRotate, KeyID: old.ID, Detail: fmt.Sprintf("successor=%s overlap=%s expires=%s", rec.ID, overlap, upd.Expires.Format(time.RFC3339))},
				{Time: now, Actor: actor, Action: ActionCreate, KeyID: rec.ID, Detail: describe(&rec.Key)},
			},
		}
		if rec.Secret != nil {
			w.Check = st.check
		}
		rec.asOf = now
		out = &Created{Key: rec.Key, Secret: secret}
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Revoke revokes a key: from now on every service refuses it. Revoking a
// key again is an error wrapping ErrConflict.
func (s *Service) Revoke(ctx context.Context, id, actor string) error {
	return s.update(ctx, id, func(old *Record) (*Write, error) {
		if !old.Revoked.IsZero() {
			return nil, fmt.Errorf("%w: key %s was revoked already, at %s", ErrConflict, id, old.Revoked.Format(time.RFC3339))
		}
		now := s.clock()
		upd := *old
		upd.Revoked = now
		return &Write{
			Update: []Record{upd},
			Events: []AuditEvent{{Time: now, Actor: actor, Action: ActionRevoke, KeyID: id}},
		}, nil
	})
}

// SetScopes replaces the scopes of a key, as an [Service.Update] of its
// scopes alone does.
func (s *Service) SetScopes(ctx context.Context, id string, scopes []string, actor string) error {
	_, err := s.Update(ctx, UpdateRequest{ID: id, Scopes: &scopes, Actor: actor})
	return err
}

// Rekey seals every secret of the store under a new master key, in one
// transaction, and uses the new key from then on; the old one opens
// nothing any more. Other services on the store must be restarted with the
// new key: they refuse to seal secrets under the old one, and fail closed
// on secrets they have not cached.
func (s *Service) Rekey(ctx context.Context, newMasterKey []byte, actor string) error {
	s.rekeyMu.Lock()
	defer s.rekeyMu.Unlock()
	ns, err := newSealer(newMasterKey)
	if err != nil {
		return err
	}
	old := s.seal.Load()
	if old.s.sameKey(newMasterKey) {
		return fmt.Errorf("%w: the new master key is the one in use", ErrInvalid)
	}
	check := ns.check()
	ev := AuditEvent{Time: s.clock(), Actor: actor, Action: ActionRekey, Detail: "every secret sealed under a new master key"}
	err = s.store.Reseal(ctx, func(id string, sealed []byte) ([]byte, error) {
		secret, err := old.s.openSecret(id, sealed)
		if err != nil {
			return nil, err
		}
		return ns.sealSecret(id, secret), nil
	}, check, ev)
	if err != nil {
		return fmt.Errorf("keys: rekey: %w (nothing was changed)", err)
	}
	s.seal.Store(&sealState{s: ns, check: check})
	return nil
}

// Audit returns the audit events f selects, oldest first.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	return s.store.Audit(ctx, f)
}

// Ping reports whether the store can be reached, for health checks.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Close stops the background work, writes the last-used times not yet
// written, and closes the store.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = errors.Join(s.flush(ctx), s.store.Close())
	})
	return s.closeErr
}

// goBackground runs f in a goroutine that Close waits for, unless the
// service is closed.
func (s *Service) goBackground(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}
