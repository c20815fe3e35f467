package testtime

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually tries its condition: often enough that
// the time it reports is close to when the condition came true, seldom
// enough to leave the machine to the code under test.
const pollEvery = 2 * time.Millisecond

// Eventually calls cond until it returns nil, and returns how long that
// took. If cond has not returned nil within timeout, Eventually fails the
// test with cond's last error and stops it. Use it to wait for what real
// time brings about (a change reaching another process, a background
// write); time that the code reads through an injected clock is better
// advanced with a [Clock].
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) time.Duration {
	tb.Helper()
	begin := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(pollEvery)
	}
}
