package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/keys"
)

// runEnv runs a command line with stdin and the given environment, and
// returns its exit code and output.
func runEnv(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }, Now: time.Now, Context: context.Background(),
	}
	code := Run(e, args)
	return code, out.String(), errOut.String()
}

// createKey makes a key with --json and returns what it printed.
func createKey(t *testing.T, env map[string]string, args ...string) keys.Created {
	t.Helper()
	code, stdout, stderr := runEnv(t, env, "", append([]string{"keys", "create", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("keys create %v: exit %d: %s", args, code, stderr)
	}
	var c keys.Created
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("keys create --json printed %q: %v", stdout, err)
	}
	return c
}

func TestKeysExitCodes(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "signet.db")
	mk := filepath.Join(dir, "signet.master.key")
	env := map[string]string{}
	c := createKey(t, env, "--db", db, "--owner", "alice")
	revoked := createKey(t, env, "--db", db, "--owner", "alice")
	if code, _, stderr := runEnv(t, env, "", "keys", "revoke", "--db", db, revoked.Key.ID); code != exitOK {
		t.Fatalf("revoke: %s", stderr)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"keys alone", []string{"keys"}, exitUsage, "Usage:\n  signet keys [command]"},
		{"keys help", []string{"keys", "help"}, exitOK, ""},
		{"unknown subcommand", []string{"keys", "frob"}, exitUsage, `unknown command "frob"`},
		{"create -h", []string{"keys", "create", "-h"}, exitOK, ""},
		{"create without owner", []string{"keys", "create", "--db", db}, exitUsage, "--owner is required"},
		{"create unknown alg", []string{"keys", "create", "--db", db, "--owner", "a", "--alg", "hmac-md5"}, exitUsage, "unknown algorithm"},
		{"create stray argument", []string{"keys", "create", "--db", db, "--owner", "a", "extra"}, exitUsage, `unexpected argument "extra"`},
		{"create bad expiry", []string{"keys", "create", "--db", db, "--owner", "a", "--expires", "soon"}, exitUsage, "--expires"},
		{"create bad scope", []string{"keys", "create", "--db", db, "--owner", "a", "--scopes", "ORDERS"}, exitUsage, `scope "ORDERS" is not valid`},
		{"create missing public key file", []string{"keys", "create", "--db", db, "--owner", "a", "--public-key", dir + "/none.pub"}, exitUsage, "no such file"},
		{"show without id", []string{"keys", "show", "--db", db}, exitUsage, "give the key id"},
		{"show two ids", []string{"keys", "show", "--db", db, "a", "b"}, exitUsage, `unexpected argument "b"`},
		{"show unknown", []string{"keys", "show", "--db", db, "sk_AAAAAAAAAAAAAAAAAAAAAA"}, exitRefused, "no such key: sk_AAAAAAAAAAAAAAAAAAAAAA"},
		{"show", []string{"keys", "show", c.Key.ID, "--db", db}, exitOK, ""},
		{"revoke again", []string{"keys", "revoke", revoked.Key.ID, "--db", db}, exitRefused, "revoked already"},
		{"rotate revoked", []string{"keys", "rotate", revoked.Key.ID, "--db", db}, exitRefused, "is revoked"},
		{"rotate negative overlap", []string{"keys", "rotate", c.Key.ID, "--db", db, "--overlap", "-1h"}, exitUsage, "--overlap must not be negative"},
		{"set-scopes without scopes", []string{"keys", "set-scopes", c.Key.ID, "--db", db}, exitUsage, "--scopes is required"},
		{"audit bad limit", []string{"keys", "audit", "--db", db, "--limit", "-1"}, exitUsage, "--limit"},
		{"rekey without file", []string{"keys", "rekey", "--db", db}, exitUsage, "--new-master-key-file is required"},
		{"bad db scheme", []string{"keys", "list", "--db", "redis://localhost"}, exitUsage, `unsupported scheme "redis"`},
		{"db missing", []string{"keys", "list", "--db", dir + "/no/such/dir/x.db"}, exitRefused, "no key store at " + dir + "/no/such/dir/x.db"},
		{"db directory missing", []string{"keys", "create", "--owner", "a", "--db", dir + "/no/such/dir/x.db"}, exitRefused, "no such file"},
		{"postgres without master key", []string{"keys", "list", "--db", "postgres://127.0.0.1:1/x"}, exitRefused, "a master key is required"},
		{"postgres unreachable", []string{"keys", "list", "--db", "postgres://127.0.0.1:1/x", "--master-key-file", mk}, exitRefused, "connection refused"},
		{"verify --db and --key", []string{"verify", "--db", db, "--key", "x"}, exitUsage, "contradict"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runEnv(t, env, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr, tt.stderr)
			}
			if tt.code != exitOK && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tt.name != "keys alone" {
				t.Fatalf("stderr is more than one line: %q", stderr)
			}
		})
	}
}

func TestKeysOptions(t *testing.T) {
	o, err := parseOptions(t, newCmdKeysRotate, nil, "sk_x", "--overlap", "90m", "--db", "d.db", "--public-key", "p.pub", "--json")
	if err != nil || o.id != "sk_x" || o.overlap != 90*time.Minute || o.store.db != "d.db" || o.publicKey != "p.pub" || !o.json {
		t.Errorf("rotate options = %+v, %v", o, err)
	}
	if o, _ := parseOptions(t, newCmdKeysRotate, nil, "sk_x"); o.overlap != keys.DefaultOverlap {
		t.Errorf("default overlap = %v", o.overlap)
	}
	if o, err := parseOptions(t, newCmdKeysRotate, nil, "sk_x", "--overlap", "7d"); err != nil || o.overlap != 7*24*time.Hour {
		t.Errorf("--overlap 7d = %+v, %v", o, err)
	}
	if _, err := parseOptions(t, newCmdKeysRotate, nil, "sk_x", "--overlap", "a week"); err == nil || !strings.Contains(err.Error(), `invalid argument "a week" for "--overlap"`) {
		t.Errorf("--overlap 'a week': %v", err)
	}
	c, err := parseOptions(t, newCmdKeysCreate, nil, "--owner", "a", "--scopes", "x,y", "--master-key-file", "m.key", "--label", "l", "--expires", "90d", "--init")
	if err != nil || c.owner != "a" || c.scopes != "x,y" || c.store.masterKeyFile != "m.key" || c.label != "l" || c.expires != "90d" || !c.init {
		t.Errorf("create options = %+v, %v", c, err)
	}
	s, err := parseOptions(t, newCmdKeysSetScopes, nil, "sk_x", "--scopes", "")
	if err != nil || s.scopes != "" || s.id != "sk_x" {
		t.Errorf("set-scopes with empty scopes = %+v, %v", s, err)
	}
	a, err := parseOptions(t, newCmdKeysAudit, nil, "--key", "sk_x", "--limit", "3", "--json")
	if err != nil || a.key != "sk_x" || a.limit != 3 || !a.json {
		t.Errorf("audit options = %+v, %v", a, err)
	}
}

func TestParseDB(t *testing.T) {
	xdg := t.TempDir()
	e := &Env{Getenv: func(k string) string {
		if k == "XDG_DATA_HOME" {
			return xdg
		}
		return ""
	}}
	for in, want := range map[string][2]string{
		"":                          {"sqlite", filepath.Join(xdg, "signet", "signet.db")},
		"keys.db":                   {"sqlite", "keys.db"},
		"/var/lib/signet/keys.db":   {"sqlite", "/var/lib/signet/keys.db"},
		"sqlite:///var/lib/keys.db": {"sqlite", "/var/lib/keys.db"},
		"sqlite://keys.db":          {"sqlite", "keys.db"},
		"file:/var/lib/keys.db":     {"sqlite", "/var/lib/keys.db"},
		"file:///var/lib/keys.db":   {"sqlite", "/var/lib/keys.db"},
		"postgres://u@h/db":         {"postgres", "postgres://u@h/db"},
		"postgresql://u@h/db?x=y":   {"postgres", "postgresql://u@h/db?x=y"},
		"./a://b":                   {"sqlite", "./a://b"},
	} {
		kind, target, err := parseDB(e, in)
		if err != nil || kind != want[0] || target != want[1] {
			t.Errorf("parseDB(%q) = %s, %s, %v; want %s, %s", in, kind, target, err, want[0], want[1])
		}
	}
	for _, in := range []string{"mysql://h/db", "sqlite://", "file:x.db?mode=ro", "redis://h"} {
		if _, _, err := parseDB(e, in); err == nil {
			t.Errorf("parseDB(%q) succeeded", in)
		}
	}
	// $SIGNET_DB, without --db, is read as --db would be: a PostgreSQL URL
	// is not a file name.
	for env, want := range map[string][2]string{
		"postgres://u@h/db":   {"postgres", "postgres://u@h/db"},
		"postgresql://u@h/db": {"postgres", "postgresql://u@h/db"},
		"sqlite:///srv/k.db":  {"sqlite", "/srv/k.db"},
		"/srv/k.db":           {"sqlite", "/srv/k.db"},
	} {
		e := &Env{Getenv: func(k string) string { return map[string]string{"SIGNET_DB": env}[k] }}
		kind, target, err := parseDB(e, "")
		if err != nil || kind != want[0] || target != want[1] {
			t.Errorf("SIGNET_DB=%s: parseDB = %s, %s, %v; want %s, %s", env, kind, target, err, want[0], want[1])
		}
		if kind, target, _ := parseDB(e, "other.db"); kind != "sqlite" || target != "other.db" {
			t.Errorf("SIGNET_DB=%s: --db other.db = %s, %s", env, kind, target)
		}
	}
	e = &Env{Getenv: func(k string) string { return map[string]string{"SIGNET_DB": "mysql://h/db"}[k] }}
	if _, _, err := parseDB(e, ""); err == nil || !strings.Contains(err.Error(), "$SIGNET_DB") {
		t.Errorf("SIGNET_DB=mysql://h/db: %v", err)
	}
}

func TestMasterKeyPathFor(t *testing.T) {
	for in, want := range map[string]string{
		"/d/signet.db": "/d/signet.master.key",
		"keys":         "keys.master.key",
		"/d/a.b/keys":  "/d/a.b/keys.master.key",
	} {
		if got := masterKeyPathFor(in); got != want {
			t.Errorf("masterKeyPathFor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMasterKeyFilePermissions warns about a master key file others can
// read, and checks the secret file and master key file of a new key.
func TestMasterKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "signet.db")
	mk := filepath.Join(dir, "open.key")
	os.WriteFile(mk, keys.FormatMasterKey(keys.NewMasterKey()), 0o644)
	code, _, stderr := runEnv(t, nil, "", "keys", "create", "--db", db, "--owner", "a", "--master-key-file", mk, "--secret-out", dir+"/a.key")
	if code != exitOK || !strings.Contains(stderr, "can be read by others (mode 0644)") {
		t.Errorf("exit %d, stderr %q; want a warning about the mode", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "signet.master.key")); err == nil {
		t.Error("a master key file was made beside the database though one was given")
	}
	fi, err := os.Stat(dir + "/a.key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, %v", fi, err)
	}
	data, _ := os.ReadFile(dir + "/a.key")
	if secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil || len(secret) != 32 {
		t.Errorf("the secret file holds %q", data)
	}
}

// TestKeysConcurrentFirstUse starts several commands at once on a new
// database: one master key file, and every command can use it.
func TestKeysConcurrentFirstUse(t *testing.T) {
	db := filepath.Join(t.TempDir(), "signet.db")
	codes := make(chan string, 4)
	for range 4 {
		go func() {
			code, _, stderr := runEnv(t, nil, "", "keys", "create", "--db", db, "--owner", "a")
			if code != exitOK {
				codes <- stderr
				return
			}
			codes <- ""
		}()
	}
	for range 4 {
		if msg := <-codes; msg != "" {
			t.Errorf("a concurrent first use failed: %s", msg)
		}
	}
	code, stdout, stderr := runEnv(t, nil, "", "keys", "list", "--db", db, "--json")
	if code != exitOK || strings.Count(stdout, `"id"`) != 4 {
		t.Errorf("list: exit %d, %s %s", code, stdout, stderr)
	}
}

func TestKeysRecordsExitCodes(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "signet.db")
	env := map[string]string{}
	c := createKey(t, env, "--db", db, "--owner", "alice")
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"disable without id", []string{"keys", "disable", "--db", db}, exitUsage, "give the key id"},
		{"disable unknown", []string{"keys", "disable", "--db", db, "sk_AAAAAAAAAAAAAAAAAAAAAA"}, exitRefused, "no such key"},
		{"enable unknown", []string{"keys", "enable", "--db", db, "sk_AAAAAAAAAAAAAAAAAAAAAA"}, exitRefused, "no such key"},
		{"update nothing", []string{"keys", "update", c.Key.ID, "--db", db}, exitUsage, "nothing to change"},
		{"update unknown", []string{"keys", "update", "sk_AAAAAAAAAAAAAAAAAAAAAA", "--db", db, "--label", "x"}, exitRefused, "no such key"},
		{"update rate and no-rate", []string{"keys", "update", c.Key.ID, "--db", db, "--rate", "1/s", "--no-rate"}, exitUsage, "contradict"},
		{"update uses and no-uses", []string{"keys", "update", c.Key.ID, "--db", db, "--uses", "1", "--no-uses"}, exitUsage, "contradict"},
		{"update negative burst", []string{"keys", "update", c.Key.ID, "--db", db, "--rate", "1/s", "--burst", "-1"}, exitUsage, "--burst must not be negative"},
		{"update bad refill", []string{"keys", "update", c.Key.ID, "--db", db, "--uses", "1", "--refill", "often"}, exitUsage, "--refill: rate"},
		{"update metadata file missing", []string{"keys", "update", c.Key.ID, "--db", db, "--metadata", "@" + dir + "/none.json"}, exitUsage, "no such file"},
		{"update bad version", []string{"keys", "update", c.Key.ID, "--db", db, "--label", "x", "--version", "-1"}, exitUsage, "--version"},
		{"create bad rate", []string{"keys", "create", "--db", db, "--owner", "a", "--rate", "100/fortnight"}, exitUsage, "--rate"},
		{"create bad metadata", []string{"keys", "create", "--db", db, "--owner", "a", "--metadata", "{"}, exitUsage, "metadata must be a JSON object"},
		{"list bad limit", []string{"keys", "list", "--db", db, "--limit", "1001"}, exitUsage, "--limit must be from 1 to 1000"},
		{"usage two ids", []string{"keys", "usage", "--db", db, "a", "b"}, exitUsage, `unexpected argument "b"`},
		{"usage bad until", []string{"keys", "usage", "--db", db, "--until", "soon"}, exitUsage, "--until"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runEnv(t, env, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr, tt.stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("stderr is more than one line: %q", stderr)
			}
		})
	}
}

func TestKeysRecordsOptions(t *testing.T) {
	u, err := parseOptions(t, newCmdKeysUpdate, nil, "sk_x", "--label", "", "--expires", "never", "--rate", "5/min", "--burst", "9",
		"--uses", "10", "--refill", "10/day", "--version", "3", "--scopes", "a,b", "--metadata", "{}")
	if err != nil || u.id != "sk_x" || !u.labelSet || u.label != "" || !u.expiresSet || u.expires != "never" || !u.scopesSet || !u.metadataSet ||
		u.version != 3 || u.limits.rateLimit() != (keys.RateLimit{Rate: keys.Rate{N: 5, Per: time.Minute}, Burst: 9}) ||
		u.limits.budget() != (keys.Uses{Remaining: 10, Refill: keys.Rate{N: 10, Per: 24 * time.Hour}}) {
		t.Errorf("update options = %+v, %v", u, err)
	}
	if u, err := parseOptions(t, newCmdKeysUpdate, nil, "sk_x", "--no-rate"); err != nil || !u.limits.noRate || u.labelSet || u.limits.rateSet {
		t.Errorf("update --no-rate = %+v, %v", u, err)
	}
	c, err := parseOptions(t, newCmdKeysCreate, nil, "--owner", "a", "--uses", "7")
	if err != nil || c.limits.budget() != (keys.Uses{Remaining: 7}) || !c.limits.rateLimit().IsZero() {
		t.Errorf("create --uses 7 = %+v, %v", c, err)
	}
	l, err := parseOptions(t, newCmdKeysList, nil, "--status", "disabled", "--prefix", "sk_a", "--scope", "admin", "--limit", "5", "--cursor", "c")
	if err != nil || l.status != "disabled" || l.prefix != "sk_a" || l.scope != "admin" || l.limit != 5 || l.cursor != "c" {
		t.Errorf("list options = %+v, %v", l, err)
	}
	g, err := parseOptions(t, newCmdKeysUsage, nil, "sk_x", "--since", "7d", "--by-key", "--json")
	if err != nil || g.id != "sk_x" || g.since != "7d" || !g.byKey || !g.json {
		t.Errorf("usage options = %+v, %v", g, err)
	}
	if g, _ := parseOptions(t, newCmdKeysUsage, nil); g.since != "24h" {
		t.Errorf("default --since = %q", g.since)
	}
}

// TestKeysUsage counts requests with a meter on the store, as a gateway
// does, and reads them back with keys usage.
func TestKeysUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "signet.db")
	env := map[string]string{}
	a := createKey(t, env, "--db", db, "--owner", "alice")
	b := createKey(t, env, "--db", db, "--owner", "alice")
	ks, err := (&storeFlags{db: db}).open(&Env{Getenv: func(string) string { return "" }, Stderr: os.Stderr, Context: context.Background()}, mustExist)
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Add(-2 * time.Hour)
	m := keys.NewMeter(ks, keys.MeterOptions{Now: func() time.Time { return hour }})
	for range 7 {
		m.Count(a.Key.ID, "orders", "")
	}
	m.Count(a.Key.ID, "orders", "bad-signature")
	m.Count(a.Key.ID, "orders", "replayed")
	m.Count(a.Key.ID, "orders", "replayed")
	m.Count(b.Key.ID, "", "")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ks.Close()

	code, stdout, stderr := runEnv(t, env, "", "keys", "usage", a.Key.ID, "--db", db, "--since", "3h")
	if code != exitOK {
		t.Fatalf("keys usage: exit %d: %s", code, stderr)
	}
	h := hour.Truncate(time.Hour).Format("2006-01-02T15:04Z")
	for _, want := range []string{
		"accepted 7, refused 3 (replayed 2, bad-signature 1)\n",
		"HOUR               ROUTE   ACCEPTED  REFUSED\n",
		h + "  orders  7         replayed 2, bad-signature 1\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("keys usage printed\n%s\nwithout %q", stdout, want)
		}
	}
	code, stdout, _ = runEnv(t, env, "", "keys", "usage", "--owner", "alice", "--by-key", "--db", db, "--since", hour.Add(-time.Minute).Format(time.RFC3339))
	if code != exitOK || !strings.Contains(stdout, "accepted 8, refused 3") || !strings.Contains(stdout, "  "+b.Key.ID+"  -       1         -\n") {
		t.Errorf("keys usage --owner alice --by-key: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runEnv(t, env, "", "keys", "usage", "--db", db, "--since", "1h")
	if code != exitOK || !strings.Contains(stdout, "accepted 0, refused 0") {
		t.Errorf("keys usage of the last hour: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runEnv(t, env, "", "keys", "usage", "--db", db, "--json", "--since", "5h")
	var r keys.UsageReport
	if err := json.Unmarshal([]byte(stdout), &r); code != exitOK || err != nil || r.Total.Accepted != 8 || r.Total.Refused["replayed"] != 2 {
		t.Errorf("keys usage --json: exit %d, %+v, %v\n%s", code, r, err, stdout)
	}
}
