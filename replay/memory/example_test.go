package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/memory"
)

func Example() {
	// Room for 1,000 signed requests a second over a 330 s window, with
	// headroom. The store goes to the verifier as its NonceStore.
	nonces := memory.New(memory.Options{MaxEntries: 1 << 19})

	ctx := context.Background()
	created := time.Now()
	until := created.Add(300 * time.Second) // the verifier's maximum age
	for range 2 {
		err := nonces.Remember(ctx, "sk_live_7f3a", "c29tZS1ub25jZQ", time.Now(), until)
		switch {
		case err == nil:
			fmt.Println("first use: accept")
		case errors.Is(err, httpsig.ErrReplayed):
			fmt.Println("replayed: 401")
		default:
			fmt.Println("store cannot answer: 503")
		}
	}
	// Output:
	// first use: accept
	// replayed: 401
}
