// Package testtime gives tests control of time: a manual [Clock] for code
// that takes a Now func, and [Eventually], which waits for a condition that
// real time will bring about. It imports only the standard library, so that
// the behavioural suites of the stores (keys/keystest, replay/replaytest)
// can use it without pulling in the drivers of the test environment.
package testtime

import (
	"sync"
	"time"
)

// A Clock is a manual clock, for code that takes a Now func: it reads the
// same time until advanced. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
