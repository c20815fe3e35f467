package limit_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/memory"
)

// A gateway limits each key to 100 requests a second, in bursts of up to
// 200, and tells the client where it stands on every response.
func Example() {
	limiter := memory.New(memory.Options{})
	rate := limit.Rate{N: 100, Per: time.Second, Burst: 200}

	var fields limit.Fields
	d, err := limiter.Allow(context.Background(), limit.ForKey("sk_live_1"), rate, 1)
	if err != nil {
		return // 503: fail closed
	}
	fields.AddRate("key", rate, d)

	h := http.Header{}
	fields.AddTo(h)
	fmt.Println("allowed:", d.Allowed)
	fmt.Println("RateLimit-Policy:", h.Get("RateLimit-Policy"))
	fmt.Println("RateLimit:", h.Get("RateLimit"))
	// Output:
	// allowed: true
	// RateLimit-Policy: "key";q=100;w=1;signet-burst=200
	// RateLimit: "key";r=199;t=1
}
