package keys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/signet-dev/signet/limit"
)

// A Rate is a number of requests per period, such as 100 a second. Its
// text form, which [ParseRate] reads and String writes, is "100/s",
// "1000/day", "5/15m".
type Rate struct {
	N   int64
	Per time.Duration
}

// Bounds of a [Rate].
const (
	MaxRateN   = 1 << 40
	MinRatePer = time.Millisecond
	MaxRatePer = 366 * 24 * time.Hour
)

// rateUnits are the period names ParseRate takes after the slash; the
// first name of each period is the one String writes.
var rateUnits = []struct {
	per   time.Duration
	names []string
}{
	{time.Millisecond, []string{"ms"}},
	{time.Second, []string{"s", "sec", "second"}},
	{time.Minute, []string{"min", "m", "minute"}},
	{time.Hour, []string{"h", "hr", "hour"}},
	{24 * time.Hour, []string{"day", "d"}},
	{7 * 24 * time.Hour, []string{"week", "w"}},
}

// ParseRate parses a rate: a count, a slash, and a period, which is a unit
// (ms, s, min or m, h, day or d, week or w, and their long names) or a
// duration as [ParseDuration] reads it ("15m", "7d", "1h30m"). The count
// is 1 to [MaxRateN], the period 1 ms to 366 days.
func ParseRate(s string) (Rate, error) {
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want COUNT/PERIOD, such as 100/s or 1000/day", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > MaxRateN || num[0] == '+' {
		return Rate{}, fmt.Errorf("rate %q: the count must be a whole number from 1 to %d", s, int64(MaxRateN))
	}
	r := Rate{N: n}
	for _, u := range rateUnits {
		for _, name := range u.names {
			if per == name {
				r.Per = u.per
			}
		}
	}
	if r.Per == 0 {
		d, err := ParseDuration(per)
		if err != nil || per == "" || per[0] < '0' || per[0] > '9' {
			return Rate{}, fmt.Errorf("rate %q: the period must be a unit (s, min, h, day, week) or a duration such as 15m or 7d", s)
		}
		r.Per = d
	}
	if err := r.check(); err != nil {
		return Rate{}, fmt.Errorf("rate %q: %w", s, err)
	}
	return r, nil
}

func (r Rate) check() error {
	switch {
	case r.N < 1 || r.N > MaxRateN:
		return fmt.Errorf("the count must be from 1 to %d", int64(MaxRateN))
	case r.Per < MinRatePer || r.Per > MaxRatePer:
		return errors.New("the period must be from 1ms to 366 days")
	case r.Per%time.Millisecond != 0:
		return errors.New("the period must be whole milliseconds")
	}
	return nil
}

// IsZero reports whether r is the zero Rate, which stands for none.
func (r Rate) IsZero() bool { return r == Rate{} }

// String returns the text form of r, which ParseRate reads back; the zero
// Rate is "".
func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	for _, u := range rateUnits {
		if r.Per == u.per {
			return strconv.FormatInt(r.N, 10) + "/" + u.names[0]
		}
	}
	return strconv.FormatInt(r.N, 10) + "/" + FormatDuration(r.Per)
}

// MarshalText implements [encoding.TextMarshaler] with String.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler] with ParseRate; ""
// is the zero Rate.
func (r *Rate) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*r = Rate{}
		return nil
	}
	v, err := ParseRate(string(text))
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	*r = v
	return nil
}

// FormatDuration writes d as [ParseDuration] reads it, briefly: "7d",
// "36h", "1h30m", "90s", "250ms".
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// A RateLimit says how fast a key may make requests: on average Rate, and
// at most Burst at once. A gateway enforces it (in memory, or in Redis for
// many instances); the key store only keeps it.
type RateLimit struct {
	Rate  Rate  `json:"rate"`
	Burst int64 `json:"burst"`
}

// IsZero reports whether l is the zero RateLimit, which stands for none.
func (l RateLimit) IsZero() bool { return l == RateLimit{} }

func (l RateLimit) String() string {
	return fmt.Sprintf("%s, burst %d", l.Rate, l.Burst)
}

// normalizeRateLimit checks l, and gives it a burst of Rate.N if it has
// none.
func normalizeRateLimit(l RateLimit) (RateLimit, error) {
	if err := l.Rate.check(); err != nil {
		return l, fmt.Errorf("%w: rate limit: %w", ErrInvalid, err)
	}
	if l.Burst == 0 {
		l.Burst = l.Rate.N
	}
	if l.Burst < 1 || l.Burst > MaxRateN {
		return l, fmt.Errorf("%w: rate limit: the burst must be from 1 to %d", ErrInvalid, int64(MaxRateN))
	}
	// What a gateway's limiter can apply: a burst whose intervals last
	// more than limit.MaxTolerance cannot be.
	if err := (limit.Rate{N: l.Rate.N, Per: l.Rate.Per, Burst: l.Burst}).Validate(); err != nil {
		return l, fmt.Errorf("%w: rate limit %s burst %d: a burst of %d at this rate lasts longer than a limiter can count (%d years); lower the burst",
			ErrInvalid, l.Rate, l.Burst, l.Burst, int64(limit.MaxTolerance/(365*24*time.Hour)))
	}
	return l, nil
}

// Uses is a key's budget of requests: each request a gateway accepts
// spends one, and at none left it refuses them.
//
// The key store holds the count: [Service.SpendUses] spends from it
// atomically, for any number of gateways. A gateway spends ahead, a few
// uses at a time, and counts them down in memory, so the store is written
// once per batch, not per request; uses spent ahead by a gateway that
// stops are lost, never granted twice.
type Uses struct {
	// Remaining is how many uses are left in the store: the requests
	// the key may still make, less those that gateways spent ahead.
	Remaining int64 `json:"remaining"`
	// Refill, if not zero, puts Remaining back to Refill.N at the start
	// of every period of Refill.Per, periods counted in UTC from the zero
	// time of package time: "1000/day" refills at midnight UTC,
	// "5000/week" on Mondays. Unspent uses do not carry over.
	Refill Rate `json:"refill,omitzero"`
	// Refilled is when Remaining was last refilled or set.
	Refilled time.Time `json:"refilled,omitzero"`
	// Set is when the budget was last set. A gateway that spent uses
	// ahead drops them when the key's Set moves on.
	Set time.Time `json:"set"`
}

// IsZero reports whether u is the zero Uses, which stands for no budget
// when a change is asked for.
func (u Uses) IsZero() bool {
	return u.Remaining == 0 && u.Refill.IsZero() && u.Refilled.IsZero() && u.Set.IsZero()
}

// Spend refills u if a refill is due at now, then takes up to n of its
// remaining uses, and returns what it took. A store calls it within the
// transaction that reads and writes the key's uses.
func (u *Uses) Spend(n int64, now time.Time) UsesGrant {
	var until time.Time
	if !u.Refill.IsZero() {
		p := u.periodStart(now)
		if p.After(u.Refilled) {
			u.Remaining, u.Refilled = u.Refill.N, p
		}
		until = p.Add(u.Refill.Per)
	}
	took := max(min(n, u.Remaining), 0)
	u.Remaining -= took
	return UsesGrant{Spent: took, Remaining: u.Remaining, Set: u.Set, Until: until}
}

func (u *Uses) periodStart(now time.Time) time.Time {
	return now.UTC().Truncate(u.Refill.Per)
}

// A UsesGrant is what [Service.SpendUses] spent of a key's uses.
type UsesGrant struct {
	// Unlimited says that the key has no budget: every request may pass.
	Unlimited bool `json:"unlimited,omitempty"`
	// Spent is how many uses were taken, at most as many as asked for.
	Spent int64 `json:"spent"`
	// Remaining is how many are left in the store after them.
	Remaining int64 `json:"remaining"`
	// Set is the Set of the budget they were taken from.
	Set time.Time `json:"set,omitzero"`
	// Until is when they lapse: the next refill, when Remaining is put
	// back, so uses taken before it must not be spent after it. Zero if
	// the key is not refilled.
	Until time.Time `json:"until,omitzero"`
}

// checkUses checks a budget asked for, and returns it as stored from now
// on: set at now, counting from now.
func checkUses(u Uses, now time.Time) (*Uses, error) {
	if u.IsZero() {
		return nil, nil
	}
	if u.Remaining < 0 || u.Remaining > MaxRateN {
		return nil, fmt.Errorf("%w: uses must be from 0 to %d", ErrInvalid, int64(MaxRateN))
	}
	if !u.Refill.IsZero() {
		if err := u.Refill.check(); err != nil {
			return nil, fmt.Errorf("%w: refill: %w", ErrInvalid, err)
		}
		if u.Refill.Per < time.Minute {
			return nil, fmt.Errorf("%w: refill: the period must be a minute or more (a rate limit is for less)", ErrInvalid)
		}
	}
	return &Uses{Remaining: u.Remaining, Refill: u.Refill, Refilled: now, Set: now}, nil
}

// describeUses says what a budget is, for the audit log.
func describeUses(u *Uses) string {
	if u == nil {
		return "none"
	}
	if u.Refill.IsZero() {
		return strconv.FormatInt(u.Remaining, 10)
	}
	return fmt.Sprintf("%d refill %s", u.Remaining, u.Refill)
}

func describeRateLimit(l *RateLimit) string {
	if l == nil {
		return "none"
	}
	return fmt.Sprintf("%s burst %d", l.Rate, l.Burst)
}
