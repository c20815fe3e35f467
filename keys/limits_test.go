package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100/s":           {100, time.Second},
		"100/sec":         {100, time.Second},
		"1/second":        {1, time.Second},
		"5/m":             {5, time.Minute},
		"5/min":           {5, time.Minute},
		"60/minute":       {60, time.Minute},
		"3600/h":          {3600, time.Hour},
		"3600/hour":       {3600, time.Hour},
		"1000/day":        {1000, 24 * time.Hour},
		"1000/d":          {1000, 24 * time.Hour},
		"7000/week":       {7000, 7 * 24 * time.Hour},
		"10/ms":           {10, time.Millisecond},
		"5/15m":           {5, 15 * time.Minute},
		"5/90s":           {5, 90 * time.Second},
		"2/7d":            {2, 7 * 24 * time.Hour},
		"9/1h30m":         {9, 90 * time.Minute},
		"1099511627776/s": {MaxRateN, time.Second},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "100", "/s", "100/", "0/s", "-1/s", "+1/s", "1.5/s", "1e3/s", "1099511627777/s", "100/ns", "100/1us",
		"100/0s", "100/-1s", "100/367d", "100/fortnight", "100/s ", " 100/s", "100/S", "100/1.5ms", "100//s", "100/s/s",
		"100/1d12h",
	} {
		if r, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, r)
		}
	}
}

func TestRateString(t *testing.T) {
	for r, want := range map[Rate]string{
		{}:                           "",
		{100, time.Second}:           "100/s",
		{5, time.Minute}:             "5/min",
		{1, time.Hour}:               "1/h",
		{1000, 24 * time.Hour}:       "1000/day",
		{7, 7 * 24 * time.Hour}:      "7/week",
		{10, time.Millisecond}:       "10/ms",
		{5, 15 * time.Minute}:        "5/15m",
		{5, 90 * time.Second}:        "5/1m30s",
		{2, 14 * 24 * time.Hour}:     "2/14d",
		{9, 36 * time.Hour}:          "9/36h",
		{9, 1500 * time.Millisecond}: "9/1.5s",
	} {
		if got := r.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", r, got, want)
		}
		if want == "" {
			continue
		}
		if back, err := ParseRate(want); err != nil || back != r {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", want, back, err, r)
		}
	}
	var v struct {
		R Rate `json:"r,omitzero"`
	}
	if err := json.Unmarshal([]byte(`{"r":"100/s"}`), &v); err != nil || v.R != (Rate{100, time.Second}) {
		t.Errorf("JSON decode: %v, %v", v.R, err)
	}
	if err := json.Unmarshal([]byte(`{"r":"100/fortnight"}`), &v); err == nil {
		t.Error("JSON decode of a bad rate succeeded")
	}
	if b, _ := json.Marshal(v); string(b) != `{"r":"100/s"}` {
		t.Errorf("JSON encode: %s", b)
	}
	v.R = Rate{}
	if b, _ := json.Marshal(v); string(b) != `{}` {
		t.Errorf("JSON encode of no rate: %s", b)
	}
}

// FuzzParseRate checks that what ParseRate accepts it writes back as text
// that parses to the same rate.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "1000/day", "5/15m", "9/1h30m", "1/7d", "3/1.5s", "0/s", "100/fortnight"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.check() != nil {
			t.Fatalf("ParseRate(%q) = %v, which is out of bounds", s, r)
		}
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRate(%q) = %v, written %q, read back %v, %v", s, r, r.String(), back, err)
		}
	})
}

func TestUsesSpend(t *testing.T) {
	set := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	u := Uses{Remaining: 3, Refill: Rate{N: 100, Per: time.Hour}, Refilled: set, Set: set}
	if g := u.Spend(5, set.Add(30*time.Minute)); g != (UsesGrant{Spent: 3, Remaining: 0, Set: set, Until: set.Add(time.Hour)}) {
		t.Errorf("Spend in the hour the budget was set = %+v", g)
	}
	if g := u.Spend(5, set.Add(time.Hour)); g != (UsesGrant{Spent: 5, Remaining: 95, Set: set, Until: set.Add(2 * time.Hour)}) || !u.Refilled.Equal(set.Add(time.Hour)) {
		t.Errorf("Spend at the next hour = %+v, refilled %v", g, u.Refilled)
	}
	v := Uses{Remaining: 2}
	if g := v.Spend(-1, set); g.Spent != 0 || v.Remaining != 2 {
		t.Errorf("Spend(-1) = %+v, left %d", g, v.Remaining)
	}
}

func TestNormalizeMetadata(t *testing.T) {
	for in, want := range map[string]string{
		`{"b": 1, "a": "x"}`:                             `{"a":"x","b":1}`,
		`{"a":1,"a":2}`:                                  `{"a":2}`,
		`{"n": 12345678901234567890.5e3}`:                `{"n":12345678901234567890.5e3}`,
		`{"html": "<b>&</b>"}`:                           `{"html":"<b>&</b>"}`,
		`{"nested": {"z": [1, {"y": null}], "a": true}}`: `{"nested":{"a":true,"z":[1,{"y":null}]}}`,
		`  {"a":1}  `:                                    `{"a":1}`,
		`{}`:                                             ``,
		`null`:                                           ``,
	} {
		got, err := normalizeMetadata(json.RawMessage(in))
		if err != nil || string(got) != want {
			t.Errorf("normalizeMetadata(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	big := `{"a":"` + strings.Repeat("x", MaxMetadataSize) + `"}`
	for _, in := range []string{``, `[1]`, `"x"`, `1`, `{"a":1} {"b":2}`, `{"a":1}x`, `{"a":`, big, `{"a":"` + strings.Repeat(" ", 20*MaxMetadataSize) + `"}`} {
		if got, err := normalizeMetadata(json.RawMessage(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("normalizeMetadata(%.40s) = %s, %v; want ErrInvalid", in, got, err)
		}
	}
	fits := `{"a":"` + strings.Repeat("x", MaxMetadataSize-8) + `"}`
	if got, err := normalizeMetadata(json.RawMessage(fits)); err != nil || !bytes.Equal(got, []byte(fits)) {
		t.Errorf("metadata of exactly %d bytes: %v", len(fits), err)
	}
}
