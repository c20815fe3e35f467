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
// store vouches for. Every call sets its pair, then reads the sentinel of
// its pair's tag, setting it if it is gone, so that no call can miss a loss:
// a call that finds its sentinel gone sets it again, with a horizon of now
// plus [Options.MaxSkew], and every signature created before a horizon is
// refused with [replay.ErrUnvouched] (its pair is recorded all the same).
// Requests captured before the loss are thus refused for as long as they
// would otherwise be fresh; requests
// created in the MaxSkew after it are refused too, since a client whose
// clock ran that far ahead may have sent them before the loss. [New] sets
// the sentinels that are missing, and cannot tell a new Redis from one that
// lost its data: it treats both as a loss, and reports it through
// [Options.OnLoss], so a first deployment refuses signatures for MaxSkew,
// unless [Init] was run first, on the operator's word that the Redis is new.
//
// The two commands of a call are plain commands, not a script: a script
// cost Redis more CPU than the commands it ran. They still see every loss a
// script would, because the sentinel is read after the pair is set, by
// Redis, which runs the commands of one connection in order; see
// [Store.Remember].
//
// Each sentinel covers one of 1,024 hash tags, and a pair's key carries the
// tag of its sentinel, so that in a Redis Cluster a call touches keys of
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
// Concurrent calls share connections, their commands pipelined, so that
// the round trip to Redis does not cap throughput. On a single server
// (redis:// or rediss://, with the user, password and database of the URL,
// and none of rueidis's other query parameters but db, dial_timeout,
// write_timeout, skip_verify, protocol, client_cache and max_retries)
// Remember has a path of its own: the calls share one connection, and
// each caller writes its commands and reads its replies itself, together
// with those of the calls that came while it did ("flat combining"); the
// calls that come while replies of two calls or more are awaited are
// written together once some come in (within the awaiting caller's
// deadline at the latest). This
// costs less CPU than github.com/redis/rueidis, which the store uses for
// everything else, and for Remember elsewhere (a Cluster, Sentinel, a Unix
// socket): there, each call hands its commands to a writer goroutine and
// waits for a reader goroutine, three wake-ups a call, and fewer calls
// share a write, so that Redis too does more work a call. Measured on two
// cores with 8 to 64 concurrent callers, the fast path cut the CPU time of
// a call, the caller's and Redis's, by 15 to 20%, about half of it Redis's
// (BenchmarkRememberServer); that of a gateway's request, Redis's
// included, by about 8% (tools/loadbench); writing the calls that come
// while replies are awaited together took about 10% more off with 32
// connections (Redis read about 7 commands at a time instead of 4). A
// connection on which any
// reply is in doubt (an I/O error, a reply of a kind its command does not
// answer, a reply to a command not yet written, a reply overdue by five
// timeouts and at least a second since its command was written) is
// closed, every call waiting on it fails, and none is retried.
//
// Every call is bounded by [Options.Timeout]; when Redis is unreachable or
// slow, Remember returns an error that is not [httpsig.ErrReplayed] and
// the verifier fails closed. The store reconnects by itself once Redis is
// back.
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
	cluster   bool  // client is a Redis Cluster's: calls are transactions
	fast      *pipe // Remember's path on a single server, if not nil
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
		cluster: client.Mode() == rueidis.ClientModeCluster,
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
			s.Close()
			return nil, err
		}
	}
	if !fresh {
		s.fast = newPipe(client, co, timeout, co.ConnWriteTimeout)
	}
	if s.fast != nil {
		// Dial it now, so that a server the pipe cannot talk to stops
		// New, as one rueidis cannot does.
		if _, err := s.fast.get(ctx); err != nil {
			s.fast.close()
			client.Close()
			return nil, err
		}
	}
	s.set, err = s.restoreSentinels(ctx, horizon)
	if err != nil {
		s.Close()
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
// horizon, and returns how many it set. It uses the command Remember does,
// SET NX GET, so that New fails on a Redis too old to run it.
func (s *Store) restoreSentinels(ctx context.Context, horizon time.Time) (int, error) {
	value := strconv.FormatInt(horizon.UnixMilli(), 10)
	cmds := make(rueidis.Commands, tags)
	for i, key := range s.sentinels {
		cmds[i] = s.client.B().Set().Key(key).Value(value).Nx().Get().Build()
	}
	set := 0
	var firstErr error
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		switch err := r.Error(); {
		case rueidis.IsRedisNil(err): // GET found none: NX set it
			set++
		case err == nil: // the sentinel is there
		case firstErr == nil:
			firstErr = fmt.Errorf("redis: set sentinels: %w", err)
			if _, ok := rueidis.IsRedisErr(err); ok {
				firstErr = fmt.Errorf("redis: set sentinels (with SET NX GET, of Redis 7.0 or later): %w", err)
			}
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
//
// A call sends two commands, in this order: SET of the pair with NX and PX
// (EXISTS if there is nothing to record), and SET of the sentinel with NX
// and GET, which reads the horizon, or, if the sentinel is gone, sets it to
// now plus the skew and reads nothing. The order is what detects a loss:
// Redis runs the commands of one connection one after the other, so a loss
// that happened before the pair was set, and so let a replay set it, also
// happened before the sentinel was read, which then finds the sentinel gone
// or set again, by the call that found it gone, with a horizon after the
// loss; either way the replay, created before the loss, is refused. A loss
// between the two commands erases the pair just set, and the read after it
// sees the loss as well: the call refuses itself unless its created time is
// past the new horizon, which is where an atomic script that ran just
// before the loss would leave it. Reading the sentinel first would not do:
// a loss between the read and the SET would let a replay through unseen.
//
// On a single server (or a primary named through Sentinel) the two commands
// go in one pipeline on one connection, and a broken connection fails the
// call rather than send the second elsewhere: the fast path never retries
// a call once its commands may have been written, and rueidis retries a
// pipeline only when all its commands are reads.
// In a Redis Cluster they are wrapped in MULTI and EXEC, which the node that
// serves their slot runs as one; a pipeline could be split there, a
// redirection (ASK while the slot migrates) sending the SET to one node and
// the read to another. Both keys carry the tag, so share a slot.
func (s *Store) Remember(ctx context.Context, keyID, nonce string, created, until time.Time) error {
	now := s.now()
	ttl := until.Sub(now)
	horizon := now.Add(s.skew).UnixMilli()
	key, tag := s.key(keyID, nonce)
	// Nothing to record (an unvouched call records nothing either way):
	// look for the pair.
	pttl := int64(-1)
	if ttl >= 0 && !created.IsZero() {
		pttl = ttl.Milliseconds() + 1
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var pairReply, sentinelReply reply
	var err error
	if s.fast != nil {
		pairReply, sentinelReply, err = s.fast.remember(ctx, key, pttl, s.sentinels[tag], horizon)
	} else {
		b := s.client.B()
		var pair rueidis.Completed
		if pttl >= 0 {
			pair = b.Set().Key(key).Value("1").Nx().PxMilliseconds(pttl).Build()
		} else {
			pair = b.Exists().Key(key).Build()
		}
		sentinel := b.Set().Key(s.sentinels[tag]).Value(strconv.FormatInt(horizon, 10)).Nx().Get().Build()
		if s.cluster {
			pairReply, sentinelReply, err = s.transaction(ctx, pair, sentinel)
		} else {
			pairReply, sentinelReply, err = s.pipeline(ctx, pair, sentinel)
		}
	}
	if err != nil {
		return fmt.Errorf("redis: remember nonce: %w", err)
	}
	// A sentinel this call set is a loss found, even if the pair's command
	// failed.
	found := sentinelReply.kind == kindNil
	if found {
		s.lost(time.UnixMilli(horizon))
	}
	for _, r := range []reply{pairReply, sentinelReply} {
		if r.kind == kindError {
			return fmt.Errorf("redis: remember nonce: %w", r.err)
		}
	}
	vouched := horizon // the sentinel was gone, and this call set it
	if !found {
		if sentinelReply.kind != kindString {
			return fmt.Errorf("redis: remember nonce: sentinel: unexpected reply %v", sentinelReply)
		}
		v := sentinelReply.str
		if vouched, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("redis: remember nonce: sentinel holds %q: %w", v, err)
		}
	}
	if created.IsZero() || created.UnixMilli() < vouched {
		return replay.ErrUnvouched
	}
	switch pairReply.kind {
	case kindNil: // SET NX refused: the pair is there
		return httpsig.ErrReplayed
	case kindInt: // EXISTS
		if pairReply.n != 0 {
			return httpsig.ErrReplayed
		}
		return nil
	}
	if pairReply.kind != kindString || pairReply.str != "OK" {
		return fmt.Errorf("redis: remember nonce: unexpected reply %v", pairReply)
	}
	return nil
}

// pipeline sends pair and then sentinel on one connection and returns
// their replies.
func (s *Store) pipeline(ctx context.Context, pair, sentinel rueidis.Completed) (p, q reply, err error) {
	rs := s.client.DoMulti(ctx, pair, sentinel)
	return replyOf(rs[0].ToMessage()), replyOf(rs[1].ToMessage()), nil
}

// transaction runs pair and then sentinel in MULTI and EXEC, and returns
// their replies; err is the transaction's, when it did not run.
func (s *Store) transaction(ctx context.Context, pair, sentinel rueidis.Completed) (p, q reply, err error) {
	b := s.client.B()
	rs := s.client.DoMulti(ctx, b.Multi().Build(), pair, sentinel, b.Exec().Build())
	for _, r := range rs[:3] {
		if err := r.Error(); err != nil {
			return p, q, err
		}
	}
	replies, err := rs[3].ToArray()
	if err != nil {
		return p, q, err
	}
	if len(replies) != 2 {
		return p, q, fmt.Errorf("%d replies to a transaction of 2 commands", len(replies))
	}
	return replyOf(replies[0], replies[0].Error()), replyOf(replies[1], replies[1].Error()), nil
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
	if s.fast != nil {
		s.fast.close()
	}
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
