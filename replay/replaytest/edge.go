package replaytest

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// A timeline is the clock of a window-edge case: manual for stores that
// expire entries by the clock they are given, real time for the others.
type timeline interface {
	Now() time.Time
	// Wait returns when the clock reads t or later.
	Wait(t time.Time)
}

type manualTimeline struct {
	mu  sync.Mutex
	now time.Time
}

func (m *manualTimeline) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *manualTimeline) Wait(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.now = t
	}
}

type realTimeline struct{}

func (realTimeline) Now() time.Time   { return time.Now() }
func (realTimeline) Wait(t time.Time) { time.Sleep(time.Until(t)) }

// testWindowEdge signs a request, has a real httpsig.Verifier accept it
// through the store, and replays it at instants around the end of the
// acceptance window, created+max-age, from clients whose clocks run behind
// or ahead: no replay may be accepted. This is the invariant that makes
// nonces work, checked end to end; it breaks where the verifier's
// freshness check and the time the store holds the nonce disagree, even by
// rounding.
func testWindowEdge(t *testing.T, h Harness) {
	// A store on the real clock is given a short window, so that the test
	// waits seconds rather than minutes; the arithmetic at the edge is the
	// same.
	maxAge, skew := httpsig.DefaultMaxAge, httpsig.DefaultMaxSkew
	if h.RealTimeExpiry {
		maxAge, skew = 2*time.Second, time.Second
	}
	ms := time.Millisecond
	// Instants of the first use, then of the replays, after created; the
	// negative ones are for clients whose clocks run ahead of the server's.
	firsts := []time.Duration{
		-skew + 100*ms, -100 * ms, 100 * ms, 900 * ms,
		maxAge - 900*ms, maxAge - 100*ms, maxAge - ms, maxAge,
		maxAge + 100*ms, maxAge + 900*ms,
	}
	replays := []time.Duration{
		maxAge - 900*ms, maxAge - 100*ms, maxAge, maxAge + ms, maxAge + 100*ms,
		maxAge + 500*ms, maxAge + 900*ms, maxAge + 999*ms, maxAge + time.Second,
		maxAge + 1100*ms, maxAge + 1900*ms, maxAge + 2100*ms,
	}
	// With a manual clock each case runs in turn; on the real clock they
	// run at the same time, each with its store, so that the test waits
	// for one window rather than for one per case.
	var wg sync.WaitGroup
	for _, first := range firsts {
		var tl timeline = &manualTimeline{now: start}
		if h.RealTimeExpiry {
			tl = realTimeline{}
		}
		c := edgeCase{t: t, tl: tl, store: h.New(t, tl.Now), maxAge: maxAge, skew: skew, first: first, replays: replays}
		if h.RealTimeExpiry {
			wg.Go(c.run)
		} else {
			c.run()
		}
	}
	wg.Wait()
}

type edgeCase struct {
	t            *testing.T
	tl           timeline
	store        httpsig.NonceStore
	maxAge, skew time.Duration
	first        time.Duration
	replays      []time.Duration
}

// run signs a request created at a whole second, has it verified at
// created+first, then at each later instant of replays. It reports with
// Errorf, which may be called from any goroutine.
func (c *edgeCase) run() {
	t, tl := c.t, c.tl
	// created is ahead of the first use by enough for any first use to be
	// in the future.
	created := tl.Now().Add(c.skew + time.Second).Truncate(time.Second)
	key, err := httpsig.NewHMACKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Error(err)
		return
	}
	signer := httpsig.Signer{Key: key, KeyID: "sk_edge", Now: func() time.Time { return created }}
	verifier := httpsig.Verifier{
		Policy: httpsig.Policy{MaxAge: c.maxAge, MaxSkew: c.skew},
		Keys:   httpsig.KeyMap{"sk_edge": key},
		Nonces: c.store,
		Now:    tl.Now,
	}
	body := []byte(`{"customer":42,"items":[1,2,3]}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.example.com/v1/orders?customer=42", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if err := signer.SignRequest(req, body); err != nil {
		t.Error(err)
		return
	}
	verify := func(at time.Duration) error {
		tl.Wait(created.Add(at))
		_, err := verifier.VerifyRequest(req, body)
		return err
	}

	const ms = time.Millisecond
	err = verify(c.first)
	if err != nil && c.first <= c.maxAge-100*ms {
		// Well inside the window: a store that refused here would pass
		// the test by refusing everything.
		t.Errorf("first use at created%+v = %v, want it accepted", c.first, err)
		return
	}
	accepted := err == nil
	for _, at := range c.replays {
		if at <= c.first {
			continue
		}
		err := verify(at)
		if accepted && err == nil {
			t.Errorf("replay at created%+v of a request accepted at created%+v was accepted (max age %v)", at, c.first, c.maxAge)
		}
		if err == nil {
			accepted = true
		} else if ve := (*httpsig.VerifyError)(nil); !errors.As(err, &ve) {
			t.Errorf("replay at created%+v = %v, want a refusal, not a store failure", at, err)
		}
	}
}
