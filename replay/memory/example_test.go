package memory_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay"
	"github.com/signet-dev/signet/replay/memory"
)

func Example() {
	// Room for 1,000 signed requests a second over the default 300 s
	// window, with headroom. The store goes to the verifier as its
	// NonceStore.
	nonces := memory.New(memory.Options{MaxEntries: 1 << 20})

	ctx := context.Background()
	created := time.Now()
	until := created.Add(300 * time.Second) // the verifier's maximum age
	for range 2 {
		err := nonces.Remember(ctx, "sk_live_7f3a", "c29tZS1ub25jZQ", created, until)
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

// A server keeps its nonces across a graceful restart, and fails closed
// after a crash, with a lock, a horizon and a snapshot beside its key
// store.
func Example_server() {
	dir, _ := os.MkdirTemp("", "signet")
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "signet.db")
	policy := httpsig.Policy{} // the verifier's: maximum age and skew

	// One server per key store: a second one would keep nonces of its own.
	lock, err := memory.Lock(db + ".lock")
	if err != nil {
		log.Fatalf("another gateway uses %s; give them Redis to share: %v", db, err)
	}
	defer lock.Unlock()

	nonces := memory.New(memory.Options{
		MaxEntries: 1 << 20,
		Horizon:    true,
		MaxAge:     policy.MaxAge,
		MaxSkew:    policy.MaxSkew,
	})
	switch err := nonces.LoadFile(db + ".nonces"); {
	case err == nil:
		fmt.Println("nonces of the last run loaded")
	case errors.Is(err, fs.ErrNotExist):
		fmt.Println("no snapshot: refusing signatures created before the horizon")
	default:
		log.Printf("snapshot not used: %v", err)
	}

	// … serve: the verifier remembers nonces; a request captured before
	// an unclean restart is refused as unvouched for.
	err = nonces.Remember(context.Background(), "sk_live_7f3a", "bm9uY2U", time.Now().Add(-time.Minute), time.Now().Add(4*time.Minute))
	fmt.Println(errors.Is(err, replay.ErrUnvouched))

	// On a graceful shutdown, once no request is being served.
	if err := nonces.SaveFile(db + ".nonces"); err != nil {
		log.Printf("nonces not saved; the next start fails closed: %v", err)
	}
	// Output:
	// no snapshot: refusing signatures created before the horizon
	// true
}
