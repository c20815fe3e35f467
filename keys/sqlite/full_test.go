package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/keys"
)

// fill writes a file at path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 512, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// TestDiskFull fills the disk under a store: writes fail with an error
// wrapping ErrUnavailable that says why, reads go on, the file stays
// sound, and writes work again once there is room.
func TestDiskFull(t *testing.T) {
	dir := testenv.MountTmpfs(t, 2<<20)
	path := filepath.Join(dir, "signet.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, s, keys.NewMasterKey())
	first := mustCreate(t, svc, "alice")
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	var committed []string
	var failure error
	label := strings.Repeat("x", 200)
	for i := 0; i < 5000 && failure == nil; i++ {
		c, err := svc.Create(ctx, keys.CreateRequest{Owner: "bob", Label: label, Actor: "t"})
		if err != nil {
			failure = err
			break
		}
		committed = append(committed, c.Key.ID)
	}
	if failure == nil {
		t.Fatal("5000 writes succeeded on a full disk")
	}
	t.Logf("after %d more writes: %v", len(committed), failure)
	if !errors.Is(failure, keys.ErrUnavailable) {
		t.Errorf("a write on a full disk = %v, want an error wrapping ErrUnavailable", failure)
	}
	if !strings.Contains(failure.Error(), "full") {
		t.Errorf("the error %q does not say the disk is full", failure)
	}
	if err := svc.Revoke(ctx, first.Key.ID, "t"); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("Revoke on a full disk = %v, want ErrUnavailable", err)
	}
	if _, err := svc.ResolveKey(ctx, first.Key.ID); err != nil {
		t.Errorf("ResolveKey on a full disk: %v", err)
	}
	if ks, err := svc.List(ctx, keys.ListFilter{}); err != nil || len(ks) != 1+len(committed) {
		t.Errorf("List on a full disk = %d keys, %v; want %d", len(ks), err, 1+len(committed))
	}
	integrityOK(t, path)

	os.Remove(filler)
	if err := svc.Revoke(ctx, first.Key.ID, "t"); err != nil {
		t.Errorf("Revoke once there is room: %v", err)
	}
	mustCreate(t, svc, "carol")
	if err := svc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	integrityOK(t, path)
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range committed {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("key %s, whose write returned, is gone: %v", id, err)
		}
	}
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
}
