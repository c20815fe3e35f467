package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSampledLog: the first record of a burst is logged in full, the rest
// of the interval's are summed up in one record, and a quiet interval
// closes the window so that the next record is logged at once.
func TestSampledLog(t *testing.T) {
	var buf bytes.Buffer
	s := newSampledLog(slog.New(slog.NewJSONHandler(&buf, nil)), slog.LevelError, "verification unavailable")
	s.interval = time.Hour // the test ends intervals itself
	for i := range 1000 {
		s.add("redis: timeout "+string(rune('a'+i%26)), "request_id", i)
	}
	s.summarise()
	s.summarise() // a quiet interval
	s.add("back again", "request_id", "next")

	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("want 3 records, got %d:\n%s", len(recs), &buf)
	}
	if recs[0]["msg"] != "verification unavailable" || recs[0]["request_id"] != 0.0 || recs[0]["level"] != "ERROR" {
		t.Errorf("first record: %v", recs[0])
	}
	if recs[1]["msg"] != "verification unavailable (summary)" || recs[1]["count"] != 999.0 || recs[1]["last_error"] != "redis: timeout l" {
		t.Errorf("summary: %v", recs[1])
	}
	if recs[2]["request_id"] != "next" {
		t.Errorf("after a quiet interval: %v", recs[2])
	}
}
