package keys_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/reqfixture"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
	"github.com/signet-dev/signet/keys/sqlite"
)

// cachedService returns a service on a new SQLite file with one HMAC key,
// cached.
func cachedService(tb testing.TB) (*keys.Service, *keys.Created) {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "signet.db"), sqlite.Options{Create: true})
	if err != nil {
		tb.Fatal(err)
	}
	cst := &keystest.CountingStore{Store: st}
	svc, err := keys.New(context.Background(), cst, keys.Options{MasterKey: keys.NewMasterKey()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Scopes: []string{"orders:read"}, Actor: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	keystest.WaitCached(tb, svc, cst, c.Key.ID)
	return svc, c
}

func TestResolveKeyHitAllocs(t *testing.T) {
	svc, c := cachedService(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := svc.ResolveKey(ctx, c.Key.ID); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a cache hit allocates %v times, want 0", allocs)
	}
	if err := svc.Revoke(ctx, c.Key.ID, "test"); err != nil {
		t.Fatal(err)
	}
	svc.ResolveKey(ctx, c.Key.ID) // caches the revoked key
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := svc.ResolveKey(ctx, c.Key.ID); !errors.Is(err, httpsig.ErrKeyRevoked) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("refusing a cached revoked key allocates %v times, want 0", allocs)
	}
	d, err := svc.Create(ctx, keys.CreateRequest{Owner: "alice", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Disable(ctx, d.Key.ID, "test"); err != nil {
		t.Fatal(err)
	}
	svc.ResolveKey(ctx, d.Key.ID) // caches the disabled key
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := svc.ResolveKey(ctx, d.Key.ID); !errors.Is(err, keys.ErrKeyDisabled) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("refusing a cached disabled key allocates %v times, want 0", allocs)
	}
}

func BenchmarkResolveKeyCached(b *testing.B) {
	svc, c := cachedService(b)
	ctx := context.Background()
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := svc.ResolveKey(ctx, c.Key.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.ResolveKey(ctx, c.Key.ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkVerify verifies the reference request with the key from a fixed
// map and from the service, to show what resolving through the service
// adds to a verification.
func BenchmarkVerify(b *testing.B) {
	svc, c := cachedService(b)
	key, err := httpsig.NewHMACKey(c.Secret)
	if err != nil {
		b.Fatal(err)
	}
	body := reqfixture.Body()
	req := reqfixture.NewRequest(body)
	if err := (&httpsig.Signer{Key: key, KeyID: c.Key.ID}).SignRequest(req, body); err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		name string
		keys httpsig.KeyResolver
	}{
		{"KeyMap", httpsig.KeyMap{c.Key.ID: key}},
		{"Service", svc},
	} {
		b.Run(r.name, func(b *testing.B) {
			v := &httpsig.Verifier{Keys: r.keys}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.VerifyRequest(req, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func Example() {
	dir, _ := os.MkdirTemp("", "signet")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "signet.db"), sqlite.Options{Create: true})
	if err != nil {
		panic(err)
	}
	// The master key comes from outside the database: SIGNET_MASTER_KEY
	// or a file.
	svc, err := keys.New(ctx, store, keys.Options{MasterKey: keys.NewMasterKey()})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	c, err := svc.Create(ctx, keys.CreateRequest{Owner: "client-42", Scopes: []string{"orders:read"}, Actor: "ops"})
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Key.Alg, len(c.Secret)*8, "bits, status", c.Key.Status(time.Now()))

	// The gateway verifies requests with the service as its key resolver.
	v := &httpsig.Verifier{Keys: svc}
	_ = v

	rot, err := svc.Rotate(ctx, keys.RotateRequest{ID: c.Key.ID, Overlap: time.Hour, Actor: "ops"})
	if err != nil {
		panic(err)
	}
	old, _ := svc.Get(ctx, c.Key.ID)
	fmt.Println("old key:", old.Status(time.Now()), "successor is the new key:", old.Successor == rot.Key.ID)

	if err := svc.Revoke(ctx, c.Key.ID, "ops"); err != nil {
		panic(err)
	}
	_, err = svc.ResolveKey(ctx, c.Key.ID)
	fmt.Println(errors.Is(err, httpsig.ErrKeyRevoked))
	// Output:
	// hmac-sha256 256 bits, status active
	// old key: expiring successor is the new key: true
	// true
}
