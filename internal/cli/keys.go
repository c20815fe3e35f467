package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
)

// keysCommands are the subcommands of signet keys.
var keysCommands = []command{
	{"create", "make a key: an HMAC secret (shown once) or a registered public key", runKeysCreate},
	{"list", "list keys", runKeysList},
	{"show", "show one key", runKeysShow},
	{"revoke", "revoke a key: refused everywhere from now on", runKeysRevoke},
	{"rotate", "replace a key; the old one works until the overlap ends", runKeysRotate},
	{"set-scopes", "replace the scopes of a key", runKeysSetScopes},
	{"audit", "show the audit log", runKeysAudit},
	{"rekey", "seal every secret under a new master key", runKeysRekey},
}

// runKeys runs signet keys SUBCOMMAND.
func runKeys(e *Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := e.Stderr
		if len(args) > 0 {
			w = e.Stdout
		}
		fmt.Fprintln(w, "Usage: signet keys <command> [flags]\n\nCommands:")
		cs := append([]command(nil), keysCommands...)
		sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
		for _, c := range cs {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(w, "\nEvery command takes --db URL and --master-key-file FILE. Run 'signet keys <command> -h' for its flags.")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range keysCommands {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.Stderr, "signet keys: unknown command %q (known: create, list, show, revoke, rotate, set-scopes, audit, rekey)\n", args[0])
	return exitUsage
}

// storeFlags are the flags that say which key store to open.
type storeFlags struct {
	db, masterKeyFile string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", "", dbHelp)
	fs.StringVar(&f.masterKeyFile, "master-key-file", "", masterKeyFileHelp)
}

func (f *storeFlags) open(e *Env) (*keyStore, error) {
	return openKeyStore(e, f.db, f.masterKeyFile, mustExist)
}

// keysFail reports an error of a keys command: invalid input is a usage
// error, anything else a failure.
func keysFail(e *Env, name string, err error) int {
	msg := err.Error()
	for _, prefix := range []string{"keys: invalid request: ", "keys: conflict: ", "keys: ", "httpsig: "} {
		if strings.HasPrefix(msg, prefix) {
			msg = strings.TrimPrefix(msg, prefix)
			break
		}
	}
	fmt.Fprintf(e.Stderr, "signet keys %s: %s\n", name, msg)
	if errors.Is(err, keys.ErrInvalid) {
		return exitUsage
	}
	return exitRefused
}

// actor names who runs the command, for the audit log.
func actor(e *Env) string {
	name := e.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

// oneID returns the one positional argument, a key id.
func oneID(rest []string) (string, error) {
	switch len(rest) {
	case 0:
		return "", fmt.Errorf("give the key id")
	case 1:
		return rest[0], nil
	}
	return "", fmt.Errorf("unexpected argument %q", rest[1])
}

func noArgs(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	return nil
}

func readPublicKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--public-key: %w", err)
	}
	return data, nil
}

type keysCreateOptions struct {
	store                  storeFlags
	owner, alg, publicKey  string
	scopes, expires, label string
	secretOut              string
	json                   bool
	init                   bool
}

func newKeysCreateOptions(e *Env, args []string) (*keysCreateOptions, error) {
	o := &keysCreateOptions{}
	fs := newFlags(e, "keys create", "--owner ID [--alg hmac-sha256|ed25519|...] [--public-key FILE] [--scopes a,b] [--expires 90d] [--label TEXT] [--json] [--secret-out FILE]")
	o.store.register(fs)
	fs.StringVar(&o.owner, "owner", "", "the client or user the key belongs to (required)")
	fs.StringVar(&o.alg, "alg", "", "algorithm: hmac-sha256 (default), or ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 with --public-key (inferred from the key when it can be)")
	fs.StringVar(&o.publicKey, "public-key", "", "public key file, PEM or JWK (e.g. the .pub file of signet keygen); for asymmetric algorithms")
	fs.StringVar(&o.scopes, "scopes", "", "scopes, comma-separated, e.g. orders:read,orders:write (admin opens the admin API)")
	fs.StringVar(&o.expires, "expires", "", "expiry: a duration from now (90d, 24h) or an RFC 3339 time (default: never)")
	fs.StringVar(&o.label, "label", "", "a label for people")
	fs.StringVar(&o.secretOut, "secret-out", "", "write the HMAC secret to this new file (mode 0600) instead of printing it")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.BoolVar(&o.init, "init", false, "start a new, empty SQLite database even where traces of one remain (its master key file, -wal or -shm)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if err := noArgs(rest); err != nil {
		return nil, err
	}
	if o.owner == "" {
		return nil, fmt.Errorf("--owner is required")
	}
	if o.alg != "" {
		if _, err := httpsig.ParseAlgorithm(o.alg); err != nil {
			return nil, fmt.Errorf("--alg: %v", msgOf(err))
		}
	}
	return o, nil
}

func runKeysCreate(e *Env, args []string) int {
	const name = "create"
	o, err := newKeysCreateOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	expires, err := keys.ParseExpiry(o.expires, e.Now())
	if err != nil {
		return usageError(e, "keys "+name, "--expires: %v", err)
	}
	pub, err := readPublicKey(o.publicKey)
	if err != nil {
		return usageError(e, "keys "+name, "%v", err)
	}
	if o.secretOut != "" && pub != nil {
		return usageError(e, "keys "+name, "--secret-out is for HMAC keys; a key registered by its public key has no secret")
	}
	rule := createIfNew
	if o.init {
		rule = createAlways
	}
	ks, err := openKeyStore(e, o.store.db, o.store.masterKeyFile, rule)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	out, err := reserveSecretFile(o.secretOut)
	if err != nil {
		return keysFail(e, name, err)
	}
	c, err := ks.Create(e.Context, keys.CreateRequest{
		Owner: o.owner, Alg: httpsig.Algorithm(o.alg), PublicKey: pub,
		Scopes: splitList(o.scopes), Expires: expires, Label: o.label, Actor: actor(e),
	})
	if err != nil {
		out.abort()
		return keysFail(e, name, err)
	}
	return printCreated(e, name, c, out, o.json, "")
}

// A secretFile is the file --secret-out names, made before the key so that
// no key is made whose secret cannot be written.
type secretFile struct {
	path string
	f    *os.File
}

// reserveSecretFile makes the new, empty file path, mode 0600; nothing if
// path is empty.
func reserveSecretFile(path string) (*secretFile, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("--secret-out: %s exists; give a new file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("--secret-out: %w", err)
	}
	return &secretFile{path, f}, nil
}

// write writes the secret as a key file: standard base64 and a newline.
func (s *secretFile) write(secret []byte) error {
	_, err := s.f.Write([]byte(base64.StdEncoding.EncodeToString(secret) + "\n"))
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// abort removes the file when no key was made.
func (s *secretFile) abort() {
	if s != nil {
		s.f.Close()
		os.Remove(s.path)
	}
}

// printCreated shows a new key, and its secret once: on stdout, or in the
// secret file if there is one.
func printCreated(e *Env, name string, c *keys.Created, out *secretFile, asJSON bool, note string) int {
	if out != nil {
		if err := out.write(c.Secret); err != nil {
			return keysFail(e, name, fmt.Errorf("writing the secret of %s to %s: %w; revoke the key and make another", c.Key.ID, out.path, err))
		}
	}
	if asJSON {
		shown := *c
		if out != nil {
			shown.Secret = nil
		}
		return printJSON(e, name, shown)
	}
	k := &c.Key
	verb := "created"
	if c.Secret == nil {
		verb = "registered"
	}
	fmt.Fprintf(e.Stdout, "%s %s (%s) for owner %s\n", verb, k.ID, k.Alg, k.Owner)
	if len(k.Scopes) > 0 {
		fmt.Fprintf(e.Stdout, "  scopes:  %s\n", strings.Join(k.Scopes, ", "))
	}
	if !k.Expires.IsZero() {
		fmt.Fprintf(e.Stdout, "  expires: %s\n", k.Expires.Format(time.RFC3339))
	}
	if note != "" {
		fmt.Fprintf(e.Stdout, "  %s\n", note)
	}
	switch {
	case c.Secret == nil:
		fmt.Fprintf(e.Stdout, "the client signs with its private key:\n  signet sign --key-id %s --key CLIENT.key\n", k.ID)
	case out != nil:
		fmt.Fprintf(e.Stdout, "wrote the secret to %s (mode 0600); sign with:\n  signet sign --key-id %s --key %s\n", out.path, k.ID, out.path)
	default:
		fmt.Fprintf(e.Stdout, "secret (shown this once; the server keeps it only encrypted):\n%s\nsave it in a file (mode 0600) and sign with:\n  signet sign --key-id %s --key FILE\n",
			base64.StdEncoding.EncodeToString(c.Secret), k.ID)
	}
	return exitOK
}

func printJSON(e *Env, name string, v any) int {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return keysFail(e, name, err)
	}
	return exitOK
}

type keysListOptions struct {
	store storeFlags
	owner string
	all   bool
	json  bool
}

func newKeysListOptions(e *Env, args []string) (*keysListOptions, error) {
	o := &keysListOptions{}
	fs := newFlags(e, "keys list", "[--owner ID] [--all] [--json]")
	o.store.register(fs)
	fs.StringVar(&o.owner, "owner", "", "only this owner's keys")
	fs.BoolVar(&o.all, "all", false, "include revoked keys")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	return o, noArgs(rest)
}

func runKeysList(e *Env, args []string) int {
	const name = "list"
	o, err := newKeysListOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	list, err := ks.List(e.Context, keys.ListFilter{Owner: o.owner, IncludeRevoked: o.all})
	if err != nil {
		return keysFail(e, name, err)
	}
	if o.json {
		return printJSON(e, name, list)
	}
	now := e.Now()
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tALG\tSTATUS\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tLABEL")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Alg, k.Status(now), orDash(strings.Join(k.Scopes, ",")),
			shortTime(k.Created), shortTime(k.Expires), shortTime(k.LastUsed), orDash(k.Label))
	}
	tw.Flush()
	return exitOK
}

func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type keysShowOptions struct {
	store storeFlags
	id    string
	json  bool
}

func newKeysShowOptions(e *Env, args []string) (*keysShowOptions, error) {
	o := &keysShowOptions{}
	fs := newFlags(e, "keys show", "ID [--json]")
	o.store.register(fs)
	fs.BoolVar(&o.json, "json", false, "print JSON")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	o.id, err = oneID(rest)
	return o, err
}

func runKeysShow(e *Env, args []string) int {
	const name = "show"
	o, err := newKeysShowOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	k, err := ks.Get(e.Context, o.id)
	if err != nil {
		return keysFail(e, name, err)
	}
	if o.json {
		return printJSON(e, name, k)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 1, ' ', 0)
	row := func(label, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", label, value)
		}
	}
	timeRow := func(label string, t time.Time) {
		if !t.IsZero() {
			row(label, t.UTC().Format(time.RFC3339))
		}
	}
	row("id", k.ID)
	row("owner", k.Owner)
	row("alg", string(k.Alg))
	row("status", k.Status(e.Now()))
	row("scopes", orDash(strings.Join(k.Scopes, ", ")))
	row("label", k.Label)
	timeRow("created", k.Created)
	timeRow("expires", k.Expires)
	timeRow("revoked", k.Revoked)
	timeRow("last used", k.LastUsed)
	row("predecessor", k.Predecessor)
	row("successor", k.Successor)
	tw.Flush()
	if k.PublicKey != nil {
		fmt.Fprintf(e.Stdout, "public key:\n%s", k.PublicKey)
	}
	return exitOK
}

type keysRevokeOptions struct {
	store storeFlags
	id    string
}

func newKeysRevokeOptions(e *Env, args []string) (*keysRevokeOptions, error) {
	o := &keysRevokeOptions{}
	fs := newFlags(e, "keys revoke", "ID")
	o.store.register(fs)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	o.id, err = oneID(rest)
	return o, err
}

func runKeysRevoke(e *Env, args []string) int {
	const name = "revoke"
	o, err := newKeysRevokeOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	if err := ks.Revoke(e.Context, o.id, actor(e)); err != nil {
		return keysFail(e, name, err)
	}
	fmt.Fprintf(e.Stdout, "revoked %s: refused from now on\n", o.id)
	return exitOK
}

type keysRotateOptions struct {
	store     storeFlags
	id        string
	overlap   time.Duration
	publicKey string
	secretOut string
	json      bool
}

func newKeysRotateOptions(e *Env, args []string) (*keysRotateOptions, error) {
	o := &keysRotateOptions{}
	fs := newFlags(e, "keys rotate", "ID [--overlap 24h] [--public-key FILE] [--json] [--secret-out FILE]")
	o.store.register(fs)
	fs.DurationVar(&o.overlap, "overlap", keys.DefaultOverlap, "how long the old key keeps working")
	fs.StringVar(&o.publicKey, "public-key", "", "the new public key file, PEM or JWK (required for asymmetric keys)")
	fs.StringVar(&o.secretOut, "secret-out", "", "write the new HMAC secret to this new file (mode 0600) instead of printing it")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if o.id, err = oneID(rest); err != nil {
		return nil, err
	}
	if o.overlap < 0 {
		return nil, fmt.Errorf("--overlap must not be negative")
	}
	return o, nil
}

func runKeysRotate(e *Env, args []string) int {
	const name = "rotate"
	o, err := newKeysRotateOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	pub, err := readPublicKey(o.publicKey)
	if err != nil {
		return usageError(e, "keys "+name, "%v", err)
	}
	if o.secretOut != "" && pub != nil {
		return usageError(e, "keys "+name, "--secret-out is for HMAC keys; a key registered by its public key has no secret")
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	out, err := reserveSecretFile(o.secretOut)
	if err != nil {
		return keysFail(e, name, err)
	}
	c, err := ks.Rotate(e.Context, o.id, o.overlap, pub, actor(e))
	if err != nil {
		out.abort()
		return keysFail(e, name, err)
	}
	note := fmt.Sprintf("replaces %s, which works until %s", o.id, e.Now().Add(o.overlap).UTC().Format(time.RFC3339))
	if old, err := ks.Get(e.Context, o.id); err == nil {
		note = fmt.Sprintf("replaces %s, which works until %s", o.id, old.Expires.UTC().Format(time.RFC3339))
	}
	return printCreated(e, name, c, out, o.json, note)
}

type keysSetScopesOptions struct {
	store  storeFlags
	id     string
	scopes optionalString
}

func newKeysSetScopesOptions(e *Env, args []string) (*keysSetScopesOptions, error) {
	o := &keysSetScopesOptions{}
	fs := newFlags(e, "keys set-scopes", "ID --scopes a,b")
	o.store.register(fs)
	fs.Var(&o.scopes, "scopes", `the new scopes, comma-separated (--scopes "" for none) (required)`)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if o.id, err = oneID(rest); err != nil {
		return nil, err
	}
	if !o.scopes.set {
		return nil, fmt.Errorf("--scopes is required")
	}
	return o, nil
}

func runKeysSetScopes(e *Env, args []string) int {
	const name = "set-scopes"
	o, err := newKeysSetScopesOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	scopes := splitList(o.scopes.v)
	if err := ks.SetScopes(e.Context, o.id, scopes, actor(e)); err != nil {
		return keysFail(e, name, err)
	}
	fmt.Fprintf(e.Stdout, "scopes of %s: %s\n", o.id, orDash(strings.Join(scopes, ", ")))
	return exitOK
}

type keysAuditOptions struct {
	store storeFlags
	key   string
	limit int
	json  bool
}

func newKeysAuditOptions(e *Env, args []string) (*keysAuditOptions, error) {
	o := &keysAuditOptions{}
	fs := newFlags(e, "keys audit", "[--key ID] [--limit N] [--json]")
	o.store.register(fs)
	fs.StringVar(&o.key, "key", "", "only events about this key")
	fs.IntVar(&o.limit, "limit", 0, "only the last N events (default: all)")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if o.limit < 0 {
		return nil, fmt.Errorf("--limit must not be negative")
	}
	return o, noArgs(rest)
}

func runKeysAudit(e *Env, args []string) int {
	const name = "audit"
	o, err := newKeysAuditOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	evs, err := ks.Audit(e.Context, keys.AuditFilter{KeyID: o.key, Limit: o.limit})
	if err != nil {
		return keysFail(e, name, err)
	}
	if o.json {
		return printJSON(e, name, evs)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tKEY\tDETAIL")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Actor, ev.Action, orDash(ev.KeyID), ev.Detail)
	}
	tw.Flush()
	return exitOK
}

type keysRekeyOptions struct {
	store   storeFlags
	newFile string
}

func newKeysRekeyOptions(e *Env, args []string) (*keysRekeyOptions, error) {
	o := &keysRekeyOptions{}
	fs := newFlags(e, "keys rekey", "--new-master-key-file FILE")
	o.store.register(fs)
	fs.StringVar(&o.newFile, "new-master-key-file", "", "the new master key, base64; made (mode 0600) if the file does not exist (required)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if o.newFile == "" {
		return nil, fmt.Errorf("--new-master-key-file is required")
	}
	return o, noArgs(rest)
}

func runKeysRekey(e *Env, args []string) int {
	const name = "rekey"
	o, err := newKeysRekeyOptions(e, args)
	if err != nil {
		return parseError(e, "keys "+name, err)
	}
	ks, err := o.store.open(e)
	if err != nil {
		return keysFail(e, name, err)
	}
	defer ks.Close()
	newKey, made, err := loadOrMakeMasterKey(e, o.newFile)
	if err != nil {
		return keysFail(e, name, err)
	}
	if err := ks.Rekey(e.Context, newKey, actor(e)); err != nil {
		if made {
			os.Remove(o.newFile)
		}
		return keysFail(e, name, err)
	}
	fmt.Fprintf(e.Stdout, "every secret is now sealed under the master key in %s; the old master key opens nothing\n", o.newFile)
	if ks.autoMasterFile != "" {
		if err := replaceSecretFile(ks.autoMasterFile, keys.FormatMasterKey(newKey)); err != nil {
			return keysFail(e, name, fmt.Errorf("the database was rekeyed, but %s still holds the old key (%v): copy %s over it", ks.autoMasterFile, err, o.newFile))
		}
		fmt.Fprintf(e.Stdout, "updated %s, the default master key file of this database\n", ks.autoMasterFile)
	} else {
		fmt.Fprintf(e.Stdout, "from now on give --master-key-file %s (or set %s to its contents), and restart running servers with it\n", o.newFile, masterKeyEnv)
	}
	return exitOK
}

// loadOrMakeMasterKey reads a master key file, or makes one with a new key
// if it does not exist, and reports whether it made it.
func loadOrMakeMasterKey(e *Env, path string) ([]byte, bool, error) {
	key, err := readMasterKeyFile(e, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = keys.NewMasterKey()
	if err := writeSecretFile(path, keys.FormatMasterKey(key)); err != nil {
		return nil, false, fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(e.Stderr, "signet: made a new master key in %s (mode 0600)\n", path)
	return key, true, nil
}
