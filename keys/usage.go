package keys

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// A UsageCount is how many requests of one key, in one hour, on one route
// had one outcome.
type UsageCount struct {
	// KeyID is the key the requests were signed with; empty for requests
	// whose key was not known (and, past [MeterOptions.MaxSeries], for
	// the overflow), or for sums over keys.
	KeyID string    `json:"key_id,omitempty"`
	Hour  time.Time `json:"hour"` // the start of the hour, UTC
	// Route is the name of the route the requests went to, if the
	// gateway names routes.
	Route string `json:"route,omitempty"`
	// Outcome is the reason code of a refusal; empty for accepted
	// requests.
	Outcome httpsig.Reason `json:"outcome,omitempty"`
	N       int64          `json:"n"`
}

// A UsageBatch is counts to add to a store at once: see [Store.AddUsage].
type UsageBatch struct {
	// ID names the batch, so that the store adds it once however often
	// it is given: 1 to 64 bytes, unique.
	ID     string
	Time   time.Time // when it was made
	Counts []UsageCount
}

// A UsageQuery selects usage counts: those of one key, or of one owner's
// keys, or (both empty) of every key, unknown ones included, in the hours
// from Since to Until.
type UsageQuery struct {
	KeyID string
	Owner string
	Since time.Time // the first hour: counts of hours that start at or after it
	Until time.Time // counts of hours that start before it; zero: no end
	// ByKey keeps the counts of each key apart; otherwise they are
	// summed over keys (and their KeyID is empty).
	ByKey bool
}

// UsageTotals are the requests accepted, and those refused by reason (a
// map that is never nil in a [UsageReport]).
type UsageTotals struct {
	Accepted int64                    `json:"accepted"`
	Refused  map[httpsig.Reason]int64 `json:"refused"`
}

func (t *UsageTotals) add(outcome httpsig.Reason, n int64) {
	if outcome == "" {
		t.Accepted += n
		return
	}
	t.Refused[outcome] += n
}

// A UsageHour is the totals of one hour (and route, and key when the query
// asked for them apart).
type UsageHour struct {
	Hour  time.Time `json:"hour"`
	KeyID string    `json:"key_id,omitempty"`
	Route string    `json:"route,omitempty"`
	UsageTotals
}

// A UsageReport is what [Service.Usage] found.
type UsageReport struct {
	KeyID string      `json:"key_id,omitempty"`
	Owner string      `json:"owner,omitempty"`
	Since time.Time   `json:"since"`
	Until time.Time   `json:"until"`
	Total UsageTotals `json:"total"`
	// Hours are the hours with requests, oldest first; within an hour,
	// by route, then key.
	Hours []UsageHour `json:"hours"`
}

// MaxUsageRange is the longest span of hours [Service.Usage] reports on.
const MaxUsageRange = 366 * 24 * time.Hour

// Usage reports the requests counted for the keys q selects, by hour,
// from q.Since (default: a day ago) to q.Until (default: now), both
// rounded down to the hour, with their totals. Counts reach the store from
// each [Meter] once per flush interval. A query of a key that does not
// exist fails with an error wrapping ErrNotFound.
func (s *Service) Usage(ctx context.Context, q UsageQuery) (*UsageReport, error) {
	now := s.clock()
	if q.KeyID != "" {
		if _, err := s.get(ctx, q.KeyID); err != nil {
			return nil, err
		}
	}
	if q.Until.IsZero() {
		q.Until = now.Add(time.Hour)
	}
	if q.Since.IsZero() {
		q.Since = now.Add(-24 * time.Hour)
	}
	q.Since, q.Until = q.Since.UTC().Truncate(time.Hour), q.Until.UTC().Truncate(time.Hour)
	switch {
	case !q.Since.Before(q.Until):
		return nil, fmt.Errorf("%w: usage: the range ends before it starts", ErrInvalid)
	case q.Until.Sub(q.Since) > MaxUsageRange:
		return nil, fmt.Errorf("%w: usage: at most %s at once", ErrInvalid, FormatDuration(MaxUsageRange))
	}
	counts, err := s.store.Usage(ctx, q)
	if err != nil {
		return nil, err
	}
	r := &UsageReport{KeyID: q.KeyID, Owner: q.Owner, Since: q.Since, Until: q.Until, Hours: []UsageHour{},
		Total: UsageTotals{Refused: map[httpsig.Reason]int64{}}}
	for _, c := range counts {
		r.Total.add(c.Outcome, c.N)
		n := len(r.Hours)
		if n == 0 || !r.Hours[n-1].Hour.Equal(c.Hour) || r.Hours[n-1].Route != c.Route || r.Hours[n-1].KeyID != c.KeyID {
			r.Hours = append(r.Hours, UsageHour{Hour: c.Hour, KeyID: c.KeyID, Route: c.Route, UsageTotals: UsageTotals{Refused: map[httpsig.Reason]int64{}}})
			n++
		}
		r.Hours[n-1].add(c.Outcome, c.N)
	}
	return r, nil
}

// AddUsage adds a batch of counts to the store: a [Service] is a
// [UsageWriter] for a [Meter].
func (s *Service) AddUsage(ctx context.Context, b *UsageBatch) error {
	return s.store.AddUsage(ctx, b)
}

// A UsageWriter stores batches of usage counts, as [Store.AddUsage] says;
// a [Store] and a [Service] are UsageWriters.
type UsageWriter interface {
	AddUsage(ctx context.Context, b *UsageBatch) error
}

// Defaults of [MeterOptions].
const (
	DefaultMeterInterval  = 10 * time.Second
	DefaultMeterMaxSeries = 100000
)

// MeterOptions configures a [Meter]. The zero value is ready to use.
type MeterOptions struct {
	// Interval is how often counts are written to the store. A process
	// that crashes loses the counts it made since the last write that
	// succeeded: at most an interval, plus the tick that starts a write
	// (a second, or the interval if shorter), plus the write itself; one
	// that closes its Meter loses none. Zero means DefaultMeterInterval.
	Interval time.Duration

	// MaxSeries bounds the counters held in memory: one per key, route
	// and outcome in the current hour. Past it, the requests of new
	// series are counted under the empty key id and route, so that the
	// totals stay right. Zero means DefaultMeterMaxSeries.
	MaxSeries int

	// Now returns the current time, which says what hour a request is
	// counted in. If nil, time.Now is used.
	Now func() time.Time

	// Logger receives the errors of writing counts. If nil,
	// slog.Default() is used.
	Logger *slog.Logger
}

// A Meter counts requests per key, hour, route and outcome in memory, and
// writes the counts to a store in batches: every [MeterOptions.Interval],
// and on Close. Counting a request costs a map lookup and an atomic
// increment, and allocates nothing once the series exists. A batch whose
// write fails is written again, under the same id, before any other, so
// that the store adds it once; meanwhile new counts wait in memory. It is
// safe for concurrent use.
type Meter struct {
	w         UsageWriter
	interval  time.Duration
	maxSeries int64
	now       func() time.Time
	log       *slog.Logger

	hour   atomic.Int64 // start of the current hour, Unix seconds
	seed   maphash.Seed
	shards [meterShards]meterShard
	series atomic.Int64 // series held, overflow series aside

	flushMu  sync.Mutex // one flush at a time; guards the fields below
	pending  *UsageBatch
	retired  []retiredSeries
	overflow int64 // the hour whose overflow was last logged

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

const meterShards = 64

// A seriesKey names what one counter counts.
type seriesKey struct {
	key, route string
	outcome    httpsig.Reason
	hour       int64
}

// A meterShard maps series to counters. Readers take no lock: the map is
// replaced, never changed, under mu.
type meterShard struct {
	mu sync.Mutex
	m  atomic.Pointer[map[seriesKey]*atomic.Int64]
	_  [48]byte // keeps shards' hot words off each other's cache lines
}

// retiredSeries is a counter taken out of its shard because its hour has
// passed; a Count that found it just before is drained at the next flush.
type retiredSeries struct {
	k seriesKey
	c *atomic.Int64
}

// NewMeter returns a meter that writes to w, and starts its background
// writes. Close it to write the last counts.
func NewMeter(w UsageWriter, opts MeterOptions) *Meter {
	m := &Meter{
		w: w, interval: opts.Interval, maxSeries: int64(opts.MaxSeries), now: opts.Now, log: opts.Logger,
		seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if m.interval <= 0 {
		m.interval = DefaultMeterInterval
	}
	if m.maxSeries <= 0 {
		m.maxSeries = DefaultMeterMaxSeries
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for i := range m.shards {
		mp := make(map[seriesKey]*atomic.Int64)
		m.shards[i].m.Store(&mp)
	}
	m.setHour(m.now())
	go m.run()
	return m
}

func (m *Meter) setHour(now time.Time) {
	m.hour.Store(now.Unix() - now.Unix()%3600)
}

// Count counts one request of the key keyID on route (empty if routes are
// not named) with outcome: empty for accepted, else the reason code of
// the refusal. Requests whose key is not known are best counted under the
// empty keyID: every keyid counted takes a series.
func (m *Meter) Count(keyID, route string, outcome httpsig.Reason) {
	k := seriesKey{keyID, route, outcome, m.hour.Load()}
	sh := &m.shards[maphash.String(m.seed, keyID)&(meterShards-1)]
	if c := (*sh.m.Load())[k]; c != nil {
		c.Add(1)
		return
	}
	m.addSeries(sh, k)
}

// addSeries counts the first request of a series.
func (m *Meter) addSeries(sh *meterShard, k seriesKey) {
	overflow := k.key != "" || k.route != ""
	if overflow && m.series.Load() >= m.maxSeries {
		m.noteOverflow(k.hour)
		m.Count("", "", k.outcome)
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := *sh.m.Load()
	if c := old[k]; c != nil {
		c.Add(1)
		return
	}
	// The ids come from requests: copies keep the requests' memory from
	// being held as long as the series.
	k.key, k.route, k.outcome = strings.Clone(k.key), strings.Clone(k.route), httpsig.Reason(strings.Clone(string(k.outcome)))
	mp := make(map[seriesKey]*atomic.Int64, len(old)+1)
	for ok, oc := range old {
		mp[ok] = oc
	}
	c := new(atomic.Int64)
	c.Store(1)
	mp[k] = c
	sh.m.Store(&mp)
	if overflow {
		m.series.Add(1)
	}
}

func (m *Meter) noteOverflow(hour int64) {
	if !m.flushMu.TryLock() {
		return
	}
	defer m.flushMu.Unlock()
	if m.overflow != hour {
		m.overflow = hour
		m.log.Warn("keys: the usage meter holds as many series as it may; counting the requests of new ones under the empty key id this hour", "max_series", m.maxSeries)
	}
}

// collect takes the counts made since the last collection, and drops the
// series of past hours.
func (m *Meter) collect(now time.Time) *UsageBatch {
	var id [16]byte
	rand.Read(id[:])
	b := &UsageBatch{ID: base64.RawURLEncoding.EncodeToString(id[:]), Time: now.UTC()}
	add := func(k seriesKey, n int64) {
		if n > 0 {
			b.Counts = append(b.Counts, UsageCount{KeyID: k.key, Hour: time.Unix(k.hour, 0).UTC(), Route: k.route, Outcome: k.outcome, N: n})
		}
	}
	for _, r := range m.retired {
		add(r.k, r.c.Swap(0))
	}
	m.retired = m.retired[:0]
	cur := m.hour.Load()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		old := *sh.m.Load()
		stale := 0
		for k, c := range old {
			add(k, c.Swap(0))
			if k.hour < cur {
				stale++
			}
		}
		if stale > 0 {
			mp := make(map[seriesKey]*atomic.Int64, len(old)-stale)
			for k, c := range old {
				if k.hour < cur {
					m.retired = append(m.retired, retiredSeries{k, c})
					if k.key != "" || k.route != "" {
						m.series.Add(-1)
					}
				} else {
					mp[k] = c
				}
			}
			sh.m.Store(&mp)
		}
		sh.mu.Unlock()
	}
	return b
}

// Flush writes the counts not yet written: first a batch whose write
// failed before, if any, then the counts made since. If a write fails, its
// counts are kept for the next flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	now := m.now()
	m.setHour(now)
	if m.pending != nil {
		if err := m.w.AddUsage(ctx, m.pending); err != nil {
			return fmt.Errorf("keys: writing usage counts: %w", err)
		}
		m.pending = nil
	}
	b := m.collect(now)
	if len(b.Counts) == 0 {
		return nil
	}
	if err := m.w.AddUsage(ctx, b); err != nil {
		m.pending = b
		return fmt.Errorf("keys: writing usage counts: %w", err)
	}
	return nil
}

// run moves the hour on and flushes every interval, by the meter's clock,
// which it looks at every second at most.
func (m *Meter) run() {
	defer close(m.done)
	t := time.NewTicker(min(time.Second, m.interval))
	defer t.Stop()
	last := m.now()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := m.now()
		m.setHour(now)
		if now.Sub(last) < m.interval {
			continue
		}
		last = now
		ctx, cancel := context.WithTimeout(context.Background(), m.interval)
		err := m.Flush(ctx)
		cancel()
		if err != nil {
			m.log.Warn("keys: writing usage counts; they are kept for the next try", "error", err.Error())
		}
	}
}

// Close stops the background writes and writes the counts not yet
// written, waiting up to 5 seconds for the store.
func (m *Meter) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.closeErr = m.Flush(ctx)
		if m.closeErr != nil && m.pending != nil {
			m.closeErr = errors.Join(m.closeErr, fmt.Errorf("keys: %d usage counts were not written", len(m.pending.Counts)))
		}
	})
	return m.closeErr
}
