package keys

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration as time.ParseDuration does, plus whole
// days ("90d"), the unit key lifetimes are usually given in.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return 0, errors.New("invalid duration " + strconv.Quote(s))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// ParseExpiry parses when a key expires: empty for never, a duration from
// now ("90d", "12h") or an RFC 3339 time. It must be in the future.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d, derr := ParseDuration(s)
		if derr != nil {
			return time.Time{}, errors.New("want a duration such as 90d or 24h, or an RFC 3339 time")
		}
		t = now.Add(d)
	}
	if !t.After(now) {
		return time.Time{}, errors.New("must be in the future")
	}
	return t, nil
}
