package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
)

// testDB is a database file in a test's temporary directory.
type testDB struct{ path string }

func newTestDB(t *testing.T) keystest.DB {
	return &testDB{path: filepath.Join(t.TempDir(), "signet.db")}
}

func (d *testDB) Open(t *testing.T) keys.Store {
	t.Helper()
	s, err := Open(context.Background(), d.path, Options{Create: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", d.path, err)
	}
	return s
}

func (d *testDB) Exec(t *testing.T, q string) error {
	db := rawDB(t, d.path)
	defer db.Close()
	_, err := db.Exec(q)
	return err
}

// Dump returns the database file with its WAL and shared-memory files.
func (d *testDB) Dump(t *testing.T) []byte {
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(d.path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// rawDB opens the file with the driver alone, as another program would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestConformance(t *testing.T) {
	keystest.Run(t, keystest.Harness{NewDB: newTestDB})
}

// BenchmarkStore measures lookups that miss the cache: every resolution
// reads the file.
func BenchmarkStore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "signet.db")
	keystest.Bench(b, func(b *testing.B) keys.Store {
		s, err := Open(context.Background(), path, Options{Create: true})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
