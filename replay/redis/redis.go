// Package redis implements an [httpsig.NonceStore] in Redis, shared by every
// instance of a gateway: [New] connects a [*Store] to a redis:// URL, of a
// single server or of a Redis Cluster.
//
// Each pair is one Redis string written with SET NX PX, so that only the
// first of any number of concurrent instances records it, and Redis drops it
// when its time is up. Its key is [Options.KeyPrefix], a hash tag, and 22
// URL-safe base64 characters: the first 128 bits of the SHA-256 of the keyid
// length (8 bytes, big-endian), the keyid and the nonce. The keys thus have a
// fixed size whatever the client sends, carry neither keyids nor nonces, and
// never confuse ("ab", "c") with ("a", "bc").
//
// # Losing data
//
// A Redis server that restarts without persistence, fails over to an empty
// replica, or is flushed, forgets the nonces it held, and would let every
// request captured in the last maximum age through again. The store detects
// it. Beside the pairs it keeps sentinels, one per hash tag, that never
// expire and hold a horizon: the earliest created time of a signature the
// store vouches for. Every call runs one script that reads the sentinel of
// its pair's tag and sets the pair, atomically, so that no call can miss a
// loss: a call that finds its sentinel gone sets it again, with a horizon of
// now plus [Options.MaxSkew], and every signature created before a horizon
// is refused with [replay.ErrUnvouched]. Requests captured before the loss
// are thus refused for as long as they would otherwise be fresh; requests
// created in the MaxSkew after it are refused too, since a client whose
// clock ran that far ahead may have sent them before the loss. [New] sets
// the sentinels that are missing, and cannot tell a new Redis from one that
// lost its data: it treats both as a loss, and reports it through
// [Options.OnLoss], so a first deployment refuses signatures for MaxSkew,
// unless [Init] was run first, on the operator's word that the Redis is new.
//
// Each sentinel covers one of 1,024 hash tags, and a pair's key carries the
// tag of its sentinel, so that in a Redis Cluster the script touches keys of
// one slot, and a node that loses its data is detected for its slots.
//
// What the sentinels cannot see is a partial loss: writes of the last moment
// lost by a crash under appendfsync everysec, or by a failover to a replica
// that had not received them. Run Redis as Signet recommends: appendonly yes
// with appendfsync always (or everysec, accepting that a crash may let
// through replays of the requests of its last second), and maxmemory-policy
// noeviction, so that a full Redis refuses writes (the gateway answers 503)
// rather than evicting live nonces. With replicas, min-replicas-to-write 1
// bounds what a failover can lose.
//
// Concurrent calls share a few connections, their commands pipelined
// (github.com/redis/rueidis does so), so that the round trip to Redis does
// not cap throughput. Every call is bounded by [Options.Timeout]; when Redis
// is unreachable or slow, Remember returns an error that is not
// [httpsig.ErrReplayed] and the verifier fails closed. The store reconnects
// by itself once Redis is back.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay"
)

// Defaults for the zero fields of [Options].
const (
	DefaultKeyPrefix   = "signet:nonce:"
	DefaultTimeout     = 200 * time.Millisecond
	DefaultDialTimeout = time.Second
)

// Options configures a [Store]. The zero value gives the defaults.
type Options struct {
	// KeyPrefix starts every key the store writes, so that the keys can share
	// a database with others. Stores must use the same prefix to see each
	// other's nonces. If empty, DefaultKeyPrefix is used.
	KeyPrefix string

	// Timeout bounds each call to Redis, including any reconnecting it
	// waits for; a sooner deadline on the caller's context wins. Keep it
	// short: the request being verified waits for it. If zero or less,
	// DefaultTimeout is used.
	Timeout time.Duration

	// DialTimeout bounds the making of a connection, including the TLS
	// handshake and authentication, in New; within a call, Timeout bounds it
	// too. If zero or less, DefaultDialTimeout is used.
	DialTimeout time.Duration

	// MaxSkew is the verifier's (see [httpsig.Policy]): how far ahead of
	// the clock a created time may be. A horizon set after a loss is that
	// far after the loss was found. Zero means httpsig.DefaultMaxSkew;
	// negative means none.
	MaxSkew time.Duration

	// OnLoss, if set, is called when the store finds that Redis holds no
	// record of the nonces of earlier requests, with the horizon before
	// which it now refuses signatures: in New, for a new Redis or one that
	// lost its data while no store was connected, and whenever a call finds
	// a sentinel gone. It is called once for the sentinels that one loss
	// removed, from a goroutine of its own; a server logs it.
	OnLoss func(horizon time.Time)
}

// A Store remembers (keyid, nonce) pairs in Redis. It is safe for concurrent
// use.
type Store struct {
	client    rueidis.Client
	prefix    string
	sentinels [tags]string // the sentinel key of each tag
	timeout   time.Duration
	skew      time.Duration
	onLoss    func(time.Time)
	now       func() time.Time

	restoring atomic.Bool    // sentinels are being set again after a loss
	reported  atomic.Int64   // when the last loss was reported, Unix ns
	bg        sync.WaitGroup // the goroutine that sets them
	set       int            // sentinels New set
}

var _ httpsig.NonceStore = (*Store)(nil)

const (
	// tags is how many hash tags the keys are spread over, each with its
	// sentinel: enough for the slots of a cluster's masters to get about
	// as many each.
	tags = 1024

	// initTimeout bounds the setting of the sentinels in New and Init.
	initTimeout = 5 * time.Second
)

// rememberScript records a pair unless its signature was created before
// the horizon of its tag, setting the horizon first if the tag's sentinel
// is gone. It returns 0 if it recorded the pair, 1 if the pair was recorded
// already, 2 if the signature is before the horizon, plus 4 if it found the
// sentinel gone.
//
// KEYS[1] is the sentinel, KEYS[2] the pair's key; ARGV[1] is the created
// time in Unix milliseconds, or empty if there is none; ARGV[2] the time to
// live of the pair, in milliseconds, or 0 to look for the pair without
// recording it; ARGV[3] the horizon to set, in Unix milliseconds.
var rememberScript = rueidis.NewLuaScript(`
local horizon = redis.call('GET', KEYS[1])
local lost = 0
if not horizon then
	horizon = ARGV[3]
	redis.call('SET', KEYS[1], horizon)
	lost = 4
end
if ARGV[1] == '' or tonumber(ARGV[1]) < tonumber(horizon) then
	return 2 + lost
end
if ARGV[2] == '0' then
	return redis.call('EXISTS', KEYS[2]) + lost
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
	return lost
end
return 1 + lost
`)

// Results of rememberScript.
const (
	recorded   = 0
	replayed   = 1
	unvouched  = 2
	lostRecord = 4
)

// New connects to the Redis server at url and returns a store that keeps its
// pairs there. The URL has the form redis://[user:password@]host[:port][/db],
// or rediss:// for TLS; query parameters are those of rueidis.ParseURL. A
// node of a Redis Cluster is found to be one, and the store then works with
// the whole cluster; name more nodes with addr parameters, so that the store
// can start while one is down:
// redis://node1:6379?addr=node2:6379&addr=node3:6379. New sets the sentinels that are missing (see the
// package documentation). It returns an error if it cannot reach the server
// or set them, so that a misconfigured gateway does not start; once made, a
// store rides out outages by itself.
func New(url string, opts Options) (*Store, error) {
	return open(url, opts, false)
}

// open is New, or Init if fresh is set: the missing sentinels are then set
// with no horizon.
func open(url string, opts Options, fresh bool) (*Store, error) {
	co, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	co.Dialer.Timeout = opts.DialTimeout
	if co.Dialer.Timeout <= 0 {
		co.Dialer.Timeout = DefaultDialTimeout
	}
	// A connection with replies overdue by this much is dropped and made
	// anew: callers have given up on it long before, and a Redis server that
	// was replaced behind the same address would otherwise be waited on for
	// rueidis's default of ten seconds.
	co.ConnWriteTimeout = max(time.Second, 5*timeout)
	// The store sends only writes, so tracking keys for a client-side cache
	// would be wasted on the server.
	co.DisableCache = true

	client, err := rueidis.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("redis: connect: %w", err)
	}
	s := &Store{
		client:  client,
		timeout: timeout,
		skew:    opts.MaxSkew,
		onLoss:  opts.OnLoss,
		now:     time.Now,
	}
	s.setPrefix(opts.KeyPrefix)
	switch {
	case s.skew == 0:
		s.skew = httpsig.DefaultMaxSkew
	case s.skew < 0:
		s.skew = 0
	}
	// Setting the sentinels takes one pipeline of 1,024 commands: more
	// than a call's timeout on a busy machine, and a start can wait.
	ctx, cancel := context.WithTimeout(context.Background(), max(initTimeout, co.Dialer.Timeout))
	defer cancel()
	horizon := s.now().Add(s.skew)
	if fresh {
		horizon = time.UnixMilli(0)
		if err := s.checkNoneOrAll(ctx); err != nil {
			client.Close()
			return nil, err
		}
	}
	s.set, err = s.restoreSentinels(ctx, horizon)
	if err != nil {
		client.Close()
		return nil, err
	}
	if s.set > 0 && s.onLoss != nil {
		s.onLoss(horizon)
	}
	return s, nil
}

func (s *Store) setPrefix(prefix string) {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	s.prefix = prefix
	for i := range s.sentinels {
		s.sentinels[i] = prefix + "{" + tagOf(i) + "}"
	}
}

func tagOf(i int) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[i>>8&0xf], hex[i>>4&0xf], hex[i&0xf]})
}

// Init prepares a Redis server that has never held the nonces of stores
// with opts.KeyPrefix, so that they vouch for every signature from the
// start: it sets the missing sentinels with no horizon, and returns how many
// it set. Without it, the first stores on a new Redis take it for one that
// lost its data, and refuse requests created in their first MaxSkew.
//
// Run it once, on a new Redis (and in tests), before any store. Run on a
// Redis that lost its data, it would let every request captured before the
// loss through again: a store that is running finds the loss itself. It
// changes no sentinel that is there, and refuses, with
// [ErrPartlyPrepared], a Redis that holds some sentinels and lacks others,
// which has lost part of its data.
func Init(ctx context.Context, url string, opts Options) (int, error) {
	s, err := open(url, Options{KeyPrefix: opts.KeyPrefix, Timeout: opts.Timeout, DialTimeout: opts.DialTimeout}, true)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.set, nil
}

// ErrPartlyPrepared is returned by [Init] on a Redis that holds some of the
// sentinels of its prefix and lacks others.
var ErrPartlyPrepared = errors.New("redis: some sentinels of the prefix are there and others are missing: part of the data was lost (a node of a Cluster restarted empty, a partial flush), and Init would vouch for the nonces it held; the stores set horizons for the missing ones themselves")

// checkNoneOrAll returns ErrPartlyPrepared unless Redis holds every
// sentinel or none. A Redis that holds some has lost part of its data (or
// an Init was cut short, which the stores then treat as a loss: the safe
// side), and Init would let the replays of that part through.
func (s *Store) checkNoneOrAll(ctx context.Context) error {
	cmds := make(rueidis.Commands, tags)
	for i, key := range s.sentinels {
		cmds[i] = s.client.B().Exists().Key(key).Build()
	}
	present := 0
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		n, err := r.AsInt64()
		if err != nil {
			return fmt.Errorf("redis: read sentinels: %w", err)
		}
		present += int(n)
	}
	if present > 0 && present < tags {
		return fmt.Errorf("%w (%d of %d there)", ErrPartlyPrepared, present, tags)
	}
	return nil
}

// restoreSentinels sets every missing sentinel, with a horizon of
// horizon, and returns how many it set.
func (s *Store) restoreSentinels(ctx context.Context, horizon time.Time) (int, error) {
	value := strconv.FormatInt(horizon.UnixMilli(), 10)
	cmds := make(rueidis.Commands, tags)
	for i, key := range s.sentinels {
		cmds[i] = s.client.B().Set().Key(key).Value(value).Nx().Build()
	}
	set := 0
	var firstErr error
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		switch err := r.Error(); {
		case err == nil:
			set++
		case rueidis.IsRedisNil(err): // NX refused: the sentinel is there
		case firstErr == nil:
			firstErr = fmt.Errorf("redis: set sentinels: %w", err)
		}
	}
	return set, firstErr
}

// Remember records the pair (keyID, nonce) until the given time and returns
// nil, or returns [httpsig.ErrReplayed] if the pair is recorded already, or
// [replay.ErrUnvouched] if created is before the horizon of the pair's
// sentinel, or zero. A pair is held through until itself, rounded up to the
// millisecond, by the local clock: the time to live sent to Redis is until
// less the local time, so a Redis server whose clock is off does not shorten
// it. A time that has already passed records nothing, but a pair still held
// is refused all the same. Any other error means Redis did not answer in
// time or at all: the pair may or may not have been recorded.
func (s *Store) Remember(ctx context.Context, keyID, nonce string, created, until time.Time) error {
	ttl := until.Sub(s.now())
	ttlMS := "0"
	if ttl >= 0 {
		ttlMS = strconv.FormatInt(ttl.Milliseconds()+1, 10)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key, tag := s.key(keyID, nonce)
	var createdMS string
	if !created.IsZero() {
		createdMS = strconv.FormatInt(created.UnixMilli(), 10)
	}
	horizon := s.now().Add(s.skew).UnixMilli()
	res, err := rememberScript.Exec(ctx, s.client,
		[]string{s.sentinels[tag], key},
		[]string{createdMS, ttlMS, strconv.FormatInt(horizon, 10)},
	).AsInt64()
	if err != nil {
		return fmt.Errorf("redis: remember nonce: %w", err)
	}
	if res&lostRecord != 0 {
		s.lost(time.UnixMilli(horizon))
	}
	switch res &^ lostRecord {
	case recorded:
		return nil
	case replayed:
		return httpsig.ErrReplayed
	case unvouched:
		return replay.ErrUnvouched
	}
	return fmt.Errorf("redis: remember nonce: unexpected reply %d", res)
}

// lost sets the other sentinels again after a call found one gone, as a
// loss seldom takes one alone, and reports the loss, in the background.
// Calls that find sentinels gone meanwhile set their own, and the loss is
// reported once: calls that were under way while the sentinels were set
// again may still find theirs gone, and a report within initTimeout of the
// last is of the same loss.
func (s *Store) lost(horizon time.Time) {
	if !s.restoring.CompareAndSwap(false, true) {
		return
	}
	s.bg.Go(func() {
		defer s.restoring.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
		defer cancel()
		// Redis may be coming back still: try again for a while. Calls meet
		// the same errors and fail closed, and a sentinel still missing in
		// the end is set by the first call that needs it.
		for {
			if _, err := s.restoreSentinels(ctx, horizon); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(s.timeout / 4)
		}
		now := time.Now().UnixNano()
		if last := s.reported.Load(); last != 0 && now-last < int64(initTimeout) {
			return
		}
		s.reported.Store(now)
		if s.onLoss != nil {
			s.onLoss(horizon)
		}
	})
}

// Ping checks that Redis answers within the store's timeout, and returns nil
// if it does. It is meant for a health check.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Do(ctx, s.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// Close closes the store's connections. Calls to Remember and Ping made after
// it return an error. Close always returns nil; it has an error result so
// that a Store is an io.Closer.
func (s *Store) Close() error {
	s.bg.Wait()
	s.client.Close()
	return nil
}

const hashLen = 16 // bytes of SHA-256 kept in a key

// key returns the key of the pair (keyID, nonce) and its tag.
func (s *Store) key(keyID, nonce string) (string, int) {
	buf := make([]byte, 8, 8+len(keyID)+len(nonce))
	binary.BigEndian.PutUint64(buf, uint64(len(keyID)))
	buf = append(buf, keyID...)
	buf = append(buf, nonce...)
	sum := sha256.Sum256(buf)
	tag := int(binary.BigEndian.Uint16(sum[hashLen:])) % tags
	enc := base64.RawURLEncoding
	sentinel := s.sentinels[tag]
	key := make([]byte, len(sentinel), len(sentinel)+enc.EncodedLen(hashLen))
	copy(key, sentinel)
	return string(enc.AppendEncode(key, sum[:hashLen])), tag
}
