package keys

import (
	"testing"
	"time"
)

func TestParseExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"90d":                  now.Add(90 * 24 * time.Hour),
		"36h":                  now.Add(36 * time.Hour),
		"1h30m":                now.Add(90 * time.Minute),
		"2031-02-03T04:05:06Z": time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC),
	} {
		got, err := ParseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-3d", "0s", "-1h", "tomorrow", "90", "2031-02-03", "2001-01-01T00:00:00Z"} {
		if _, err := ParseExpiry(in, now); err == nil {
			t.Errorf("ParseExpiry(%q) succeeded", in)
		}
	}
}
