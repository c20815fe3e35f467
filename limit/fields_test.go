package limit

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestFields(t *testing.T) {
	perSecond := Rate{N: 100, Per: time.Second, Burst: 200}
	for _, tt := range []struct {
		name          string
		add           func(f *Fields)
		policy, state string
		retryAfter    string
		refused       bool
	}{
		{
			name: "rate allowed",
			add: func(f *Fields) {
				f.AddRate("key", perSecond, Decision{Allowed: true, Remaining: 150, Reset: 490 * time.Millisecond})
			},
			policy: `"key";q=100;w=1;signet-burst=200`,
			state:  `"key";r=150;t=1`,
		},
		{
			name: "rate refused",
			add: func(f *Fields) {
				f.AddRate("key", perSecond, Decision{Reset: 2 * time.Second, RetryAfter: 10 * time.Millisecond})
			},
			policy:     `"key";q=100;w=1;signet-burst=200`,
			state:      `"key";r=0;t=1`,
			retryAfter: "1",
			refused:    true,
		},
		{
			name: "fresh key, burst defaults to N",
			add: func(f *Fields) {
				f.AddRate("key", Rate{N: 1000, Per: 24 * time.Hour}, Decision{Allowed: true, Remaining: 1000})
			},
			policy: `"key";q=1000;w=86400;signet-burst=1000`,
			state:  `"key";r=1000;t=0`,
		},
		{
			name: "period not whole seconds",
			add: func(f *Fields) {
				f.AddRate("fast", Rate{N: 3, Per: 1500 * time.Millisecond, Burst: 1}, Decision{Allowed: true, Reset: 500 * time.Millisecond})
			},
			policy: `"fast";q=4;w=2;signet-burst=1`,
			state:  `"fast";r=0;t=1`,
		},
		{
			name: "huge counts are capped at what a structured field carries",
			add: func(f *Fields) {
				f.AddRate("huge", Rate{N: 1 << 62, Per: time.Millisecond, Burst: 1 << 62}, Decision{Allowed: true, Remaining: 1 << 62})
			},
			policy: `"huge";q=999999999999999;w=1;signet-burst=999999999999999`,
			state:  `"huge";r=999999999999999;t=0`,
		},
		{
			name: "uses refilled",
			add: func(f *Fields) {
				f.AddUses("uses", Rate{N: 1000, Per: 24 * time.Hour}, Decision{Allowed: true, Remaining: 412, Reset: 3*time.Hour + time.Microsecond})
			},
			policy: `"uses";q=1000;w=86400`,
			state:  `"uses";r=412;t=10801`,
		},
		{
			name: "uses spent, refilled",
			add: func(f *Fields) {
				f.AddUses("uses", Rate{N: 1000, Per: 24 * time.Hour}, Decision{Reset: time.Hour, RetryAfter: time.Hour})
			},
			policy:     `"uses";q=1000;w=86400`,
			state:      `"uses";r=0;t=3600`,
			retryAfter: "3600",
			refused:    true,
		},
		{
			name: "uses spent, not refilled: no wait would help",
			add: func(f *Fields) {
				f.AddUses("uses", Rate{}, Decision{})
			},
			state:   `"uses";r=0`,
			refused: true,
		},
		{
			name: "no budget",
			add: func(f *Fields) {
				f.AddUses("uses", Rate{}, Decision{Allowed: true, Remaining: Unlimited})
			},
		},
		{
			name: "several limits: the longest wait",
			add: func(f *Fields) {
				f.AddRate("owner", Rate{N: 10, Per: time.Minute}, Decision{Reset: 70 * time.Second, RetryAfter: 4500 * time.Millisecond})
				f.AddRate("key", perSecond, Decision{Allowed: true, Remaining: 3, Reset: time.Second})
				f.AddRate("route", Rate{N: 1, Per: time.Second}, Decision{Reset: time.Second, RetryAfter: 900 * time.Millisecond})
				f.AddUses("uses", Rate{}, Decision{Allowed: true, Remaining: 7})
			},
			policy:     `"owner";q=10;w=60;signet-burst=10, "key";q=100;w=1;signet-burst=200, "route";q=1;w=1;signet-burst=1`,
			state:      `"owner";r=0;t=5, "key";r=3;t=1, "route";r=0;t=1, "uses";r=7`,
			retryAfter: "5",
			refused:    true,
		},
		{
			name: "names are structured-field strings",
			add: func(f *Fields) {
				f.AddRate("a \"b\" \\c\x00\n\xff", Rate{N: 1, Per: time.Second}, Decision{Allowed: true})
			},
			policy: `"a \"b\" \\c___";q=1;w=1;signet-burst=1`,
			state:  `"a \"b\" \\c___";r=0;t=0`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f Fields
			tt.add(&f)
			h := http.Header{}
			f.AddTo(h)
			if got := h.Get("RateLimit-Policy"); got != tt.policy {
				t.Errorf("RateLimit-Policy: %s\nwant %s", got, tt.policy)
			}
			if got := h.Get("RateLimit"); got != tt.state {
				t.Errorf("RateLimit: %s\nwant %s", got, tt.state)
			}
			if got := h.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After: %q, want %q", got, tt.retryAfter)
			}
			if f.Refused() != tt.refused {
				t.Errorf("Refused() = %v, want %v", f.Refused(), tt.refused)
			}
			f.Reset()
			h = http.Header{}
			f.AddTo(h)
			if len(h) != 0 || f.Refused() {
				t.Errorf("after Reset: %v, refused %v; want nothing", h, f.Refused())
			}
		})
	}
}

// TestFieldsBesideUpstream checks that the fields go beside an upstream's
// own, as further lines of the same lists.
func TestFieldsBesideUpstream(t *testing.T) {
	h := http.Header{}
	h.Set("RateLimit-Policy", `"api";q=5;w=1`)
	h.Set("RateLimit", `"api";r=4;t=1`)
	var f Fields
	f.AddRate("key", Rate{N: 100, Per: time.Second}, Decision{Allowed: true, Remaining: 99, Reset: 10 * time.Millisecond})
	f.AddTo(h)
	if got := h.Values("RateLimit-Policy"); len(got) != 2 || got[0] != `"api";q=5;w=1` {
		t.Errorf("RateLimit-Policy lines: %q", got)
	}
	if got := h.Values("RateLimit"); len(got) != 2 || got[1] != `"key";r=99;t=1` {
		t.Errorf("RateLimit lines: %q", got)
	}
}

func TestFieldsResetDoesNotAllocate(t *testing.T) {
	var f Fields
	r := Rate{N: 100, Per: time.Second}
	d := Decision{Allowed: true, Remaining: 99, Reset: 10 * time.Millisecond}
	f.AddRate("key", r, d)
	f.AddUses("uses", Rate{}, d)
	if n := testing.AllocsPerRun(100, func() {
		f.Reset()
		f.AddRate("key", r, d)
		f.AddUses("uses", Rate{}, d)
	}); n != 0 {
		t.Errorf("a Fields reused: %v allocations, want 0", n)
	}
}

// sfString matches a structured-field string (RFC 8941 §3.3.3).
var sfString = regexp.MustCompile(`^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"$`)

// FuzzFieldsName checks that any name comes out as a structured-field
// string, which reads back as the name with the bytes a string cannot
// hold made '_'.
func FuzzFieldsName(f *testing.F) {
	for _, s := range []string{"", "key", `a"b`, `a\b`, "\x00", "\x7f", "ключ", "a, b;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := string(appendItem(nil, name))
		if !sfString.MatchString(got) {
			t.Fatalf("appendItem(%q) = %s: not a structured-field string", name, got)
		}
		unquoted := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(got[1 : len(got)-1])
		want := []byte(name)
		for i, c := range want {
			if c < 0x20 || c > 0x7e {
				want[i] = '_'
			}
		}
		if unquoted != string(want) {
			t.Fatalf("appendItem(%q) reads back as %q, want %q", name, unquoted, want)
		}
	})
}
