package limit

import (
	"math/bits"
	"net/http"
	"strconv"
	"time"
)

// Fields collects, for the limits applied to one request, the header
// fields that tell a client where it stands: RateLimit-Policy and RateLimit
// as draft-ietf-httpapi-ratelimit-headers-11 (May 2026) defines them, and
// Retry-After (RFC 9110 §10.2.3) when a limit refused the request. Add
// each limit applied, under a name of its own, then call AddTo. The zero
// value is ready to use; Reset makes a Fields ready for another request.
//
// A rate of N per Per with burst B is the policy
//
//	RateLimit-Policy: "key";q=N;w=PER;signet-burst=B
//
// with PER in seconds (a period that is not whole seconds is given as the
// next whole number of seconds, with the quota of that many seconds,
// rounded down), and its state
//
//	RateLimit: "key";r=REMAINING;t=SECONDS
//
// where t is, when the request passed, how long until a full burst may
// pass again, and when it was refused, how long until it would pass,
// which is also its Retry-After. A client that sends no more than r
// requests in the next t seconds is not refused by the limit. Uses refilled
// N every PER are the policy "uses";q=N;w=PER and the state
// "uses";r=REMAINING;t=SECONDS until the refill; uses that are not refilled
// have no policy and no t. Times are rounded up to whole seconds.
//
// The draft's partition key (pk) is left out: it would tell clients how
// the server divides its capacity, and they know which key they sign
// with.
type Fields struct {
	policy, state []byte
	refused       bool
	retry         time.Duration // the longest RetryAfter of a refusal
}

// AddRate adds a rate limit applied to the request, under name, and its
// decision. Names are the policies' names in the fields: printable ASCII,
// and distinct within a response.
func (f *Fields) AddRate(name string, r Rate, d Decision) {
	q, w := quota(r.N, r.Per)
	f.policy = appendItem(f.policy, name)
	f.policy = appendParam(f.policy, "q", q)
	f.policy = appendParam(f.policy, "w", w)
	burst := r.Burst
	if burst == 0 {
		burst = r.N
	}
	f.policy = appendParam(f.policy, "signet-burst", burst)

	t := d.Reset
	if !d.Allowed {
		t = d.RetryAfter
	}
	f.state = appendItem(f.state, name)
	f.state = appendParam(f.state, "r", d.Remaining)
	f.state = appendParam(f.state, "t", seconds(t))
	f.decided(d)
}

// AddUses adds a budget of uses applied to the request, under name, and
// its decision: refill is the budget's refill, N uses every Per, or the
// zero Rate if it has none. A decision on a key with no budget
// ([Unlimited]) adds nothing.
func (f *Fields) AddUses(name string, refill Rate, d Decision) {
	if d.Remaining == Unlimited {
		return
	}
	if refill.N > 0 {
		q, w := quota(refill.N, refill.Per)
		f.policy = appendItem(f.policy, name)
		f.policy = appendParam(f.policy, "q", q)
		f.policy = appendParam(f.policy, "w", w)
	}
	f.state = appendItem(f.state, name)
	f.state = appendParam(f.state, "r", d.Remaining)
	if d.Reset > 0 {
		f.state = appendParam(f.state, "t", seconds(d.Reset))
	}
	f.decided(d)
}

func (f *Fields) decided(d Decision) {
	if !d.Allowed {
		f.refused = true
		f.retry = max(f.retry, d.RetryAfter)
	}
}

// Refused reports whether a decision added was a refusal.
func (f *Fields) Refused() bool { return f.refused }

// AddTo adds the RateLimit-Policy and RateLimit fields to h, as field
// lines of their own beside any that h holds already (an upstream's: the
// lists join), and, if a limit refused the request and waiting would help,
// sets Retry-After to the longest wait.
func (f *Fields) AddTo(h http.Header) {
	if len(f.policy) > 0 {
		h.Add("RateLimit-Policy", string(f.policy))
	}
	if len(f.state) > 0 {
		h.Add("RateLimit", string(f.state))
	}
	if f.retry > 0 {
		h.Set("Retry-After", strconv.FormatInt(seconds(f.retry), 10))
	}
}

// Reset empties f, keeping its memory, for another request.
func (f *Fields) Reset() {
	*f = Fields{policy: f.policy[:0], state: f.state[:0]}
}

// quota returns the q and w of a policy of n per per: w whole seconds.
func quota(n int64, per time.Duration) (q, w int64) {
	if per%time.Second == 0 {
		return n, int64(per / time.Second)
	}
	w = seconds(per)
	// n×w/per, in 128 bits.
	hi, lo := bits.Mul64(uint64(n), uint64(w)*uint64(time.Second))
	if hi >= uint64(per) {
		return maxInteger, w
	}
	quo, _ := bits.Div64(hi, lo, uint64(per))
	return int64(min(quo, maxInteger)), w
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// appendItem starts a list member whose value is the string name.
func appendItem(b []byte, name string) []byte {
	if len(b) > 0 {
		b = append(b, ", "...)
	}
	b = append(b, '"')
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '_') // a structured-field string holds printable ASCII only
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// maxInteger is the largest integer a structured field carries (RFC 8941
// §3.3.1).
const maxInteger = 999_999_999_999_999

func appendParam(b []byte, key string, v int64) []byte {
	v = min(v, maxInteger)
	b = append(b, ';')
	b = append(b, key...)
	b = append(b, '=')
	return strconv.AppendInt(b, v, 10)
}
