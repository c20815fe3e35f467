package keys_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
)

// gatedStore holds every Get until open is closed, and counts them.
type gatedStore struct {
	keys.Store
	open chan struct{}
	gets atomic.Int64
}

func (s *gatedStore) Get(ctx context.Context, id string) (*keys.Record, error) {
	s.gets.Add(1)
	<-s.open
	return s.Store.Get(ctx, id)
}

// TestLookupsShared: resolutions of one keyid that miss the cache at the
// same time share one read of the store (issue 10 item 8, singleflight in
// place of the hand-written de-duplication); without it, every one of them
// would read the store.
func TestLookupsShared(t *testing.T) {
	e := newEnv(t)
	id := mustCreate(t, e.service(keys.Options{}), keys.CreateRequest{}).Key.ID
	st := &gatedStore{Store: e.open(), open: make(chan struct{})}
	svc := e.serviceOn(st, keys.Options{})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.ResolveKey(ctx(), id)
			errs <- err
		}()
	}
	// Every resolution has missed the cache and waits for the store.
	testtime.Eventually(t, 10*time.Second, func() error {
		if m := svc.CacheStats().Misses; m < n {
			return fmt.Errorf("%d of %d resolutions missed the cache", m, n)
		}
		return nil
	})
	close(st.open)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("ResolveKey: %v", err)
		}
	}
	// One read, or two for a resolution that counted its miss just as the
	// first read ended; never one per resolution.
	if g := st.gets.Load(); g > 2 {
		t.Errorf("%d resolutions of one keyid read the store %d times, want once", n, g)
	}
}
