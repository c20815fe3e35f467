// Package redis implements an [httpsig.NonceStore] in Redis, shared by every
// instance of a gateway: [New] connects a [*Store] to a redis:// URL.
//
// Each pair is one Redis string written with SET NX PX, so that only the
// first of any number of concurrent instances records it, and Redis drops it
// when its time is up. The key is [Options.KeyPrefix] followed by 22
// URL-safe base64 characters: the first 128 bits of the SHA-256 of the keyid
// length (8 bytes, big-endian), the keyid and the nonce. The keys thus have a
// fixed size whatever the client sends, carry neither keyids nor nonces, and
// never confuse ("ab", "c") with ("a", "bc").
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
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
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
}

// A Store remembers (keyid, nonce) pairs in Redis. It is safe for concurrent
// use.
type Store struct {
	client  rueidis.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
}

var _ httpsig.NonceStore = (*Store)(nil)

// New connects to the Redis server at url and returns a store that keeps its
// pairs there. The URL has the form redis://[user:password@]host[:port][/db],
// or rediss:// for TLS; query parameters are those of rueidis.ParseURL. New
// returns an error if it cannot reach the server, so that a misconfigured
// gateway does not start; once made, a store rides out outages by itself.
func New(url string, opts Options) (*Store, error) {
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
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return &Store{client: client, prefix: prefix, timeout: timeout, now: time.Now}, nil
}

// Remember records the pair (keyID, nonce) until the given time and returns
// nil, or returns [httpsig.ErrReplayed] if the pair is recorded already. A
// pair is held through until itself, rounded up to the millisecond, by the
// local clock: the time to live sent to Redis is until less the local time,
// so a Redis server whose clock is off does not shorten it. A time that has
// already passed records nothing and returns nil. Any other error means
// Redis did not answer in time or at all: the pair may or may not have been
// recorded.
func (s *Store) Remember(ctx context.Context, keyID, nonce string, _, until time.Time) error {
	ttl := until.Sub(s.now())
	if ttl < 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := s.client.B().Set().Key(s.key(keyID, nonce)).Value("1").Nx().
		PxMilliseconds(ttl.Milliseconds() + 1).Build()
	err := s.client.Do(ctx, cmd).Error()
	switch {
	case err == nil:
		return nil
	case rueidis.IsRedisNil(err): // NX refused: the key exists
		return httpsig.ErrReplayed
	default:
		return fmt.Errorf("redis: remember nonce: %w", err)
	}
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
	s.client.Close()
	return nil
}

const hashLen = 16 // bytes of SHA-256 kept in a key

func (s *Store) key(keyID, nonce string) string {
	buf := make([]byte, 8, 8+len(keyID)+len(nonce))
	binary.BigEndian.PutUint64(buf, uint64(len(keyID)))
	buf = append(buf, keyID...)
	buf = append(buf, nonce...)
	sum := sha256.Sum256(buf)
	enc := base64.RawURLEncoding
	key := make([]byte, len(s.prefix), len(s.prefix)+enc.EncodedLen(hashLen))
	copy(key, s.prefix)
	return string(enc.AppendEncode(key, sum[:hashLen]))
}
