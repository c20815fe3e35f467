package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/wiretest"
)

// BenchmarkVerifyAPI measures the verify API as a server calling it sees
// it: sign the call, one loopback round trip to the admin listener, the
// verification (key lookup, HMAC, nonce spent in the in-memory replay
// cache, policy), the verdict decoded; one caller at a time, and a
// bounded load of 8 callers on keep-alive connections. It reports the
// 50th and 99th percentile latencies of the calls.
//
//	go test ./gateway -run '^$' -bench VerifyAPI -benchtime=4000x -count=5
func BenchmarkVerifyAPI(b *testing.B) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) { benchVerifyAPI(b, callers) })
	}
}

func benchVerifyAPI(b *testing.B, callers int) {
	e := newVerifyEnv(b)
	calls := make([][]byte, b.N)
	for i := range calls {
		calls[i], _ = json.Marshal(describe(wiretest.Sign(b, e.writer, postOrder)))
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
	lat := make([]time.Duration, b.N)
	var next sync.Mutex
	i := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= b.N {
					return
				}
				start := time.Now()
				r, _ := http.NewRequest("POST", e.admin.URL+"/v1/verify", bytes.NewReader(calls[n]))
				r.Header.Set("Content-Type", "application/json")
				if err := e.caller.SignRequest(r, calls[n]); err != nil {
					b.Error(err)
					return
				}
				resp, err := hc.Do(r)
				if err != nil {
					b.Error(err)
					return
				}
				var v verdictJSON
				err = json.NewDecoder(resp.Body).Decode(&v)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || !v.Verified {
					b.Errorf("call %d: %v %+v", n, err, v)
					return
				}
				lat[n] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
