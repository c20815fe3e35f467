package limit

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		r  Rate
		ok bool
	}{
		{Rate{N: 100, Per: time.Second}, true},
		{Rate{N: 1, Per: MaxPer}, true},
		{Rate{N: 1 << 40, Per: time.Millisecond}, true}, // an interval of 1 µs: a million a second
		{Rate{N: 1, Per: time.Microsecond}, true},
		{Rate{N: 10, Per: time.Hour, Burst: 1}, true},
		{Rate{N: 1, Per: 300 * 24 * time.Hour, Burst: 43}, true}, // 35 years of burst
		{Rate{N: 1, Per: 300 * 24 * time.Hour, Burst: 44}, false},
		{Rate{N: 1, Per: time.Microsecond, Burst: 1 << 50}, true},
		{Rate{N: 1, Per: time.Microsecond, Burst: 1<<50 + 1}, false},
		{Rate{}, false},
		{Rate{N: 0, Per: time.Second}, false},
		{Rate{N: -5, Per: time.Second}, false},
		{Rate{N: 1, Per: time.Microsecond - 1}, false},
		{Rate{N: 1, Per: MaxPer + 1}, false},
		{Rate{N: 1, Per: time.Second, Burst: -1}, false},
	} {
		err := tt.r.Validate()
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: Validate = %v, want ok %v", tt.r, err, tt.ok)
		}
	}
}

func TestInterval(t *testing.T) {
	for _, tt := range []struct {
		r    Rate
		want time.Duration
	}{
		{Rate{N: 100, Per: time.Second}, 10 * time.Millisecond},
		{Rate{N: 3, Per: time.Second}, 333334 * time.Microsecond},
		{Rate{N: 1 << 40, Per: time.Millisecond}, time.Microsecond},
		{Rate{N: 1000, Per: 24 * time.Hour}, 86400 * time.Microsecond * 1000},
	} {
		if got := tt.r.Interval(); got != tt.want {
			t.Errorf("%+v: Interval = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestScopeKeys(t *testing.T) {
	seen := map[string]string{}
	for _, tt := range []struct{ what, key string }{
		{"key a", ForKey("a")},
		{"key ab", ForKey("ab")},
		{"owner a", ForOwner("a")},
		{"route a for key b", ForRoute("a", "b")},
		{"route ab for all", ForRoute("ab", "")},
		{"route a: for key b", ForRoute("a:", "b")},
		{"route a for key :b", ForRoute("a", ":b")},
		{"route 1:a for key b", ForRoute("1:a", "b")},
		{"route for key 1:ab", ForRoute("", "1:ab")},
	} {
		if other, ok := seen[tt.key]; ok {
			t.Errorf("%s and %s have the same key %q", tt.what, other, tt.key)
		}
		seen[tt.key] = tt.what
	}
}
