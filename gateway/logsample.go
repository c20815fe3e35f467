package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logSummaryInterval is how often a sampledLog sums up the records it held
// back.
const logSummaryInterval = 10 * time.Second

// sampledLog writes a record of one kind at most once per interval: the
// first at once, in full; then, at the end of each interval in which more
// came, one summary with their count and the last one's error. An outage
// refused at thousands of requests a second thus costs a line every ten
// seconds, and the first line still says when it began and why.
type sampledLog struct {
	log      *slog.Logger
	level    slog.Level
	msg      string
	interval time.Duration

	mu      sync.Mutex
	open    bool // an interval is running: records are held back
	held    int
	lastErr string
}

func newSampledLog(log *slog.Logger, level slog.Level, msg string) *sampledLog {
	return &sampledLog{log: log, level: level, msg: msg, interval: logSummaryInterval}
}

// add logs a record with attrs, or counts it if one was logged less than
// an interval ago. errText is kept for the summary.
func (s *sampledLog) add(errText string, attrs ...any) {
	s.mu.Lock()
	if s.open {
		s.held++
		s.lastErr = errText
		s.mu.Unlock()
		return
	}
	s.open = true
	s.mu.Unlock()
	time.AfterFunc(s.interval, s.summarise)
	s.log.Log(context.Background(), s.level, s.msg, attrs...)
}

// summarise ends an interval: it logs the records held back, if any, and
// opens another interval; else the next record is logged at once.
func (s *sampledLog) summarise() {
	s.mu.Lock()
	held, lastErr := s.held, s.lastErr
	s.held, s.lastErr = 0, ""
	s.open = held > 0
	s.mu.Unlock()
	if held == 0 {
		return
	}
	time.AfterFunc(s.interval, s.summarise)
	attrs := []any{"count", held, "interval", s.interval.String()}
	if lastErr != "" {
		attrs = append(attrs, "last_error", lastErr)
	}
	s.log.Log(context.Background(), s.level, s.msg+" (summary)", attrs...)
}
