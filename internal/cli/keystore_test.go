package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/keys"
)

// TestKeysPostgres runs the key commands and signet verify --db against
// PostgreSQL, with the master key in the environment.
func TestKeysPostgres(t *testing.T) {
	db := testenv.NewDatabase(t)
	dir := t.TempDir()
	master := keys.NewMasterKey()
	env := map[string]string{masterKeyEnv: base64.StdEncoding.EncodeToString(master)}

	if code, _, stderr := runEnv(t, nil, "", "keys", "list", "--db", db); code != exitRefused || !strings.Contains(stderr, "a master key is required") {
		t.Errorf("without a master key: exit %d, %s", code, stderr)
	}
	c := createKey(t, env, "--db", db, "--owner", "alice", "--scopes", "admin")
	if !strings.HasPrefix(c.Key.ID, "sk_") || len(c.Secret) != 32 || c.Key.Scopes[0] != "admin" {
		t.Fatalf("created %+v", c)
	}
	// $SIGNET_DB may name PostgreSQL, as --db may.
	envDB := map[string]string{masterKeyEnv: env[masterKeyEnv], "SIGNET_DB": db}
	if code, stdout, stderr := runEnv(t, envDB, "", "keys", "list"); code != exitOK || !strings.Contains(stdout, c.Key.ID) {
		t.Errorf("keys list with SIGNET_DB=postgres://…: exit %d, %s %s", code, stdout, stderr)
	}
	keyFile := filepath.Join(dir, "alice.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(c.Secret)), 0o600)
	code, signed, stderr := runEnv(t, env, "POST /v1/orders HTTP/1.1\nHost: api.example.com\nContent-Type: application/json\n\n{}", "sign", "--key-id", c.Key.ID, "--key", keyFile)
	if code != exitOK {
		t.Fatalf("sign: %s", stderr)
	}
	if code, stdout, stderr := runEnv(t, env, signed, "verify", "--db", db); code != exitOK || !strings.Contains(stdout, "verified") {
		t.Fatalf("verify --db: exit %d, %s %s", code, stdout, stderr)
	}
	if code, _, stderr := runEnv(t, env, "", "keys", "revoke", c.Key.ID, "--db", db); code != exitOK {
		t.Fatalf("revoke: %s", stderr)
	}
	if code, _, stderr := runEnv(t, env, signed, "verify", "--db", db); code != exitRefused || !strings.HasPrefix(stderr, "key-revoked") {
		t.Errorf("verify of a revoked key: exit %d, %s", code, stderr)
	}
	code, stdout, _ := runEnv(t, env, "", "keys", "audit", "--db", db)
	if code != exitOK || !strings.Contains(stdout, " create ") || !strings.Contains(stdout, " revoke ") {
		t.Errorf("audit: %s", stdout)
	}

	newKey := filepath.Join(dir, "new.master.key")
	code, stdout, stderr = runEnv(t, env, "", "keys", "rekey", "--db", db, "--new-master-key-file", newKey)
	if code != exitOK || !strings.Contains(stdout, "from now on give --master-key-file "+newKey) {
		t.Fatalf("rekey: exit %d, %s %s", code, stdout, stderr)
	}
	if code, _, stderr := runEnv(t, env, "", "keys", "list", "--db", db); code != exitRefused || !strings.Contains(stderr, "wrong master key") {
		t.Errorf("the old master key after rekey: exit %d, %s", code, stderr)
	}
	if code, stdout, stderr := runEnv(t, nil, "", "keys", "list", "--db", db, "--all", "--master-key-file", newKey); code != exitOK || !strings.Contains(stdout, c.Key.ID) {
		t.Errorf("list with the new master key: exit %d, %s %s", code, stdout, stderr)
	}
}
