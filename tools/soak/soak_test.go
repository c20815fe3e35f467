package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testenv"
)

// TestSoakShort runs the soak for a few seconds on SQLite and Redis: every
// kind of traffic gets its answer, and the report has its parts.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds signet and runs two gateways")
	}
	var out bytes.Buffer
	ok, err := soak(context.Background(), options{
		duration: 4 * time.Second, interval: 2 * time.Second, conns: 4, rate: 200,
		keys: "sqlite", redisURL: testenv.RequireRedis(t), maxRequests: 100_000, out: &out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("unexpected answers")
	}
	for _, want := range []string{"good p99", "gateway A (idle", "gateway B (idle", "(errors 0)", "unexpected answers 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
