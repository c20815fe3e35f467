package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/keys"
)

// copyFile copies a closed SQLite file (no -wal left) to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// probe is the outcome of one request: its status, or 0 if it failed.
func probe(c *http.Client, u string) (int, string) {
	code, body, err := get(c, u)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// TestServeSQLiteReplaced restores, under a running signet serve, an
// SQLite file in which the client's key is revoked: first by deleting the
// file in use (the key store fails closed, /healthz says why), then by
// moving the restored copy into place. The key is refused from then on,
// and the key store's own log lines come as JSON, like the gateway's.
func TestServeSQLiteReplaced(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	keyID := keyIDOf(t, db)
	restored := filepath.Join(t.TempDir(), "restored.db")
	copyFile(t, db, restored)
	if code, _, stderr := run(t, "", "keys", "revoke", keyID, "--db", restored, "--master-key-file", masterKeyPathFor(db)); code != 0 {
		t.Fatalf("revoking in the copy: %s", stderr)
	}
	up, _, _ := heldBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", db, "--drain", "0")
	base, admin := "http://"+p.addrs.Addr, "http://"+p.addrs.AdminAddr
	if code, body := probe(c, base+"/v1/orders"); code != 200 {
		t.Fatalf("before the restore: %d %s", code, body)
	}

	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		os.Remove(f)
	}
	var health string
	eventually(t, 5*time.Second, "/healthz to report the deleted file", func() bool {
		code, body := probe(http.DefaultClient, admin+"/healthz")
		health = body
		return code == 503 && strings.Contains(body, "deleted")
	})
	t.Logf("/healthz while the file is gone: %s", strings.Join(strings.Fields(health), " "))
	eventually(t, 5*time.Second, "requests to fail closed while the key store is gone", func() bool {
		code, _ := probe(c, base+"/v1/orders")
		return code == 503
	})

	if err := os.Rename(restored, db); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	eventually(t, 5*time.Second, "the revoked key to be refused", func() bool {
		code, body := probe(c, base+"/v1/orders")
		return code == 401 && strings.Contains(body, "key-revoked")
	})
	t.Logf("refused as key-revoked %s after the restored file was moved in", time.Since(moved).Round(time.Millisecond))
	if code, body := probe(http.DefaultClient, admin+"/healthz"); code != 200 {
		t.Errorf("/healthz after the reopen: %d %s", code, body)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"keys/sqlite: key store unavailable`) {
		t.Errorf("the key store's loss is not logged as JSON:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON under --log-format json: %q", line)
		}
	}
}

// TestServeSQLiteSwappedAtomically moves a restored file over the one in
// use in one rename, as a restore script would: the revoked key is
// refused within the watcher's pace, and never accepted after the first
// refusal.
func TestServeSQLiteSwappedAtomically(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	keyID := keyIDOf(t, db)
	restored := filepath.Join(filepath.Dir(db), "restored.db")
	copyFile(t, db, restored)
	if code, _, stderr := run(t, "", "keys", "revoke", keyID, "--db", restored, "--master-key-file", masterKeyPathFor(db)); code != 0 {
		t.Fatalf("revoking in the copy: %s", stderr)
	}
	up, _, _ := heldBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", db, "--drain", "0")
	base := "http://" + p.addrs.Addr
	if code, body := probe(c, base+"/v1/orders"); code != 200 {
		t.Fatalf("before the restore: %d %s", code, body)
	}
	if err := os.Rename(restored, db); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	refused := time.Time{}
	for time.Since(moved) < 5*time.Second {
		code, body := probe(c, base+"/v1/orders")
		switch {
		case code == 200 && !refused.IsZero():
			t.Fatalf("accepted again %s after a refusal", time.Since(refused))
		case code == 200:
		case code == 401 && strings.Contains(body, "key-revoked"), code == 503:
			if refused.IsZero() {
				refused = time.Now()
			}
		default:
			t.Fatalf("%d %s", code, body)
		}
		if !refused.IsZero() && time.Since(refused) > 500*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refused.IsZero() {
		t.Fatal("the revoked key was still accepted 5s after the file was replaced")
	}
	t.Logf("refused %s after the restored file was moved in", refused.Sub(moved).Round(time.Millisecond))
}

// TestServeHungPostgres stops a private PostgreSQL with SIGSTOP under a
// running signet serve: a key lookup the cache cannot answer gets 503
// unavailable within the lookup deadline, not a wait as long as the hang,
// and /healthz fails.
func TestServeHungPostgres(t *testing.T) {
	bin := buildSignet(t)
	pg := testenv.StartPostgres(t)
	dbURL := pg.NewDatabase()
	dir := t.TempDir()
	master := filepath.Join(dir, "master.key")
	os.WriteFile(master, keys.FormatMasterKey(keys.NewMasterKey()), 0o600)
	// newKey makes a key in the database and returns a client signing with it.
	newKey := func() *http.Client {
		code, out, stderr := run(t, "", "keys", "create", "--db", dbURL, "--master-key-file", master, "--owner", "acme", "--json")
		if code != 0 {
			t.Fatalf("keys create: %s", stderr)
		}
		var created struct {
			Key    struct{ ID string }
			Secret string
		}
		json.Unmarshal([]byte(out), &created)
		keyFile := filepath.Join(dir, created.Key.ID)
		os.WriteFile(keyFile, []byte(created.Secret), 0o600)
		tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	used := newKey()
	up, _, _ := heldBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", dbURL, "--master-key-file", master, "--drain", "0")
	base, admin := "http://"+p.addrs.Addr, "http://"+p.addrs.AdminAddr
	if code, body := probe(used, base+"/v1/orders"); code != 200 {
		t.Fatalf("before the hang: %d %s", code, body)
	}
	// Keys the gateway has never looked up: it must ask the store.
	fresh := []*http.Client{newKey(), newKey()}

	pg.Hang()
	defer pg.Resume()
	for i, c := range fresh {
		start := time.Now()
		code, body := probe(c, base+"/v1/orders")
		took := time.Since(start)
		t.Logf("lookup %d during the hang: %d in %s", i, code, took.Round(time.Millisecond))
		if code != 503 || !strings.Contains(body, "unavailable") {
			t.Fatalf("a lookup during the hang: %d %s; want 503 unavailable", code, body)
		}
		if took > 5*time.Second {
			t.Fatalf("the 503 took %s: the lookup was not bounded", took)
		}
	}
	start := time.Now()
	if code, _ := probe(http.DefaultClient, admin+"/healthz"); code != 503 {
		t.Errorf("/healthz during the hang: %d", code)
	}
	t.Logf("/healthz answered in %s", time.Since(start).Round(time.Millisecond))
	pg.Resume()
	eventually(t, 10*time.Second, "a new key to be accepted once PostgreSQL is back", func() bool {
		code, _ := probe(fresh[0], base+"/v1/orders")
		return code == 200
	})
}

// TestServeAdminDiskFull fills the disk under the SQLite file of a
// running signet serve: a change through the admin API is answered 503
// unavailable with Retry-After, the cause in the log; once there is room
// again it works.
func TestServeAdminDiskFull(t *testing.T) {
	dir := testenv.MountTmpfs(t, 2<<20)
	db := filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "ops", "--scopes", "admin", "--json")
	if code != 0 {
		t.Fatalf("keys create: %s", stderr)
	}
	var created struct {
		Key    struct{ ID string }
		Secret string
	}
	json.Unmarshal([]byte(out), &created)
	keyFile := filepath.Join(t.TempDir(), "ops.key")
	os.WriteFile(keyFile, []byte(created.Secret), 0o600)
	tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	srv := startServe(t, "--upstream", "http://127.0.0.1:1", "--db", db)
	defer srv.stop(t)
	create := func(label string) (*http.Response, string) {
		body := `{"owner":"globex","label":"` + label + `"}`
		resp, err := c.Post("http://"+srv.addrs.AdminAddr+"/v1/keys", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := create("before"); resp.StatusCode != 201 {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)
	label := strings.Repeat("x", 200)
	var resp *http.Response
	var body string
	for range 5000 {
		if resp, body = create(label); resp.StatusCode != 201 {
			break
		}
	}
	if resp.StatusCode != 503 || !strings.Contains(body, "/unavailable") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("on a full disk: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if !strings.Contains(srv.logs.String(), "full") {
		t.Errorf("the cause is not in the log:\n%s", srv.logs)
	}
	os.Remove(filler)
	if resp, body := create("after"); resp.StatusCode != 201 {
		t.Fatalf("once there is room: %d %s", resp.StatusCode, body)
	}
}

// fillDisk writes a file at path until the disk is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 512, 1} {
		buf := bytes.Repeat([]byte{0}, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !strings.Contains(err.Error(), "no space") {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// keyIDOf returns the id of the only key in an SQLite file.
func keyIDOf(t *testing.T, db string) string {
	t.Helper()
	code, out, stderr := run(t, "", "keys", "list", "--db", db, "--json")
	if code != 0 {
		t.Fatalf("keys list: %s", stderr)
	}
	var ks []struct{ ID string }
	if err := json.Unmarshal([]byte(out), &ks); err != nil || len(ks) != 1 {
		var wrapped struct{ Keys []struct{ ID string } }
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil || len(wrapped.Keys) != 1 {
			t.Fatalf("keys list: %q: %v", out, errors.Join(err, err2))
		}
		return wrapped.Keys[0].ID
	}
	return ks[0].ID
}
