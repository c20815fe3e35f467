package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
)

type keysCreateOptions struct {
	store                  storeFlags
	owner, alg, publicKey  string
	scopes, expires, label string
	metadata               string
	limits                 limitFlags
	secretOut              string
	json                   bool
	init                   bool
}

func newCmdKeysCreate(e *Env, runF func(*keysCreateOptions) error) *cobra.Command {
	o := &keysCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create --owner ID [--alg hmac-sha256|ed25519|...] [--public-key FILE] [--scopes a,b] [--expires 90d] [--label TEXT] [--metadata JSON|@FILE] [--rate 100/s [--burst N]] [--uses N [--refill N/day]] [--json] [--secret-out FILE]",
		Short: "Make a key: an HMAC secret (shown once) or a registered public key",
		Long: "Make a key: an hmac-sha256 secret, made here and shown once, or a key registered\n" +
			"by its public key. Only this command makes a new SQLite key store, and not where\n" +
			"traces of one remain unless --init.",
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.owner == "" {
				return usageErrorf("--owner is required")
			}
			if _, err := parseAlg(o.alg); err != nil {
				return err
			}
			if err := o.limits.check(cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return keysCreateRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.owner, "owner", "", "the client or user `ID` the key belongs to (required)")
	f.StringVar(&o.alg, "alg", "", "algorithm `ALG`: hmac-sha256 (default), or ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 with --public-key (inferred from the key when it can be)")
	f.StringVar(&o.publicKey, "public-key", "", "public key `FILE`, PEM or JWK (e.g. the .pub file of signet keygen); for asymmetric algorithms")
	f.StringVar(&o.scopes, "scopes", "", "`SCOPES`, comma-separated, e.g. orders:read,orders:write (admin opens the admin API)")
	f.StringVar(&o.expires, "expires", "", "expiry: a `DURATION` from now (90d, 24h) or an RFC 3339 time (default: never)")
	f.StringVar(&o.label, "label", "", "a `TEXT` for people")
	f.StringVar(&o.metadata, "metadata", "", "a `JSON` object of yours to keep with the key (at most 4 KiB), or @FILE, or @- for stdin")
	o.limits.register(f, false)
	f.StringVar(&o.secretOut, "secret-out", "", "write the HMAC secret to this new `FILE` (mode 0600) instead of printing it")
	f.BoolVar(&o.json, "json", false, "print JSON")
	f.BoolVar(&o.init, "init", false, "start a new, empty SQLite database even where traces of one remain (its master key file, -wal or -shm)")
	return cmd
}

func keysCreateRun(e *Env, o *keysCreateOptions) error {
	expires, err := keys.ParseExpiry(o.expires, e.Now())
	if err != nil {
		return usageError{fmt.Errorf("--expires: %w", err)}
	}
	pub, err := readPublicKey(o.publicKey, o.secretOut)
	if err != nil {
		return err
	}
	var meta []byte
	if o.metadata != "" {
		if meta, err = readMetadata(e, o.metadata); err != nil {
			return err
		}
	}
	rule := createIfNew
	if o.init {
		rule = createAlways
	}
	ks, err := o.store.open(e, rule)
	if err != nil {
		return err
	}
	defer ks.Close()
	out, err := reserveSecretFile(o.secretOut)
	if err != nil {
		return err
	}
	c, err := ks.Create(e.Context, keys.CreateRequest{
		Owner: o.owner, Alg: httpsig.Algorithm(o.alg), PublicKey: pub,
		Scopes: splitList(o.scopes), Expires: expires, Label: o.label, Actor: actor(e),
		Metadata: meta, RateLimit: o.limits.rateLimit(), Uses: o.limits.budget(),
	})
	if err != nil {
		out.abort()
		return err
	}
	return printCreated(e, c, out, o.json, "")
}

type keysRotateOptions struct {
	store     storeFlags
	id        string
	overlap   time.Duration
	publicKey string
	secretOut string
	json      bool
}

func newCmdKeysRotate(e *Env, runF func(*keysRotateOptions) error) *cobra.Command {
	o := &keysRotateOptions{overlap: keys.DefaultOverlap}
	cmd := &cobra.Command{
		Use:   "rotate ID [--overlap 24h] [--public-key FILE] [--json] [--secret-out FILE]",
		Short: "Replace a key; the old one works until the overlap ends",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if o.overlap < 0 {
				return usageErrorf("--overlap must not be negative")
			}
			if runF != nil {
				return runF(o)
			}
			return keysRotateRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.Var(overlapValue{&o.overlap}, "overlap", "how long the old key keeps working: `24h`, 90m, 7d")
	f.StringVar(&o.publicKey, "public-key", "", "the new public key `FILE`, PEM or JWK (required for asymmetric keys)")
	f.StringVar(&o.secretOut, "secret-out", "", "write the new HMAC secret to this new `FILE` (mode 0600) instead of printing it")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func keysRotateRun(e *Env, o *keysRotateOptions) error {
	pub, err := readPublicKey(o.publicKey, o.secretOut)
	if err != nil {
		return err
	}
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	out, err := reserveSecretFile(o.secretOut)
	if err != nil {
		return err
	}
	c, err := ks.Rotate(e.Context, keys.RotateRequest{ID: o.id, Overlap: o.overlap, PublicKey: pub, Actor: actor(e)})
	if err != nil {
		out.abort()
		return err
	}
	until := e.Now().Add(o.overlap)
	if old, err := ks.Get(e.Context, o.id); err == nil {
		until = old.Expires
	}
	return printCreated(e, c, out, o.json, fmt.Sprintf("replaces %s, which works until %s", o.id, until.UTC().Format(time.RFC3339)))
}

// readPublicKey reads the --public-key file, if one is given; a secret
// file is for HMAC keys alone.
func readPublicKey(path, secretOut string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	if secretOut != "" {
		return nil, usageErrorf("--secret-out is for HMAC keys; a key registered by its public key has no secret")
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--public-key: %w", err)}
	}
	return data, nil
}

// A secretFile is the file --secret-out names, made (empty) before the
// key so that no key is made whose secret cannot be written.
type secretFile struct{ path string }

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
	return &secretFile{path}, f.Close()
}

// write writes the secret as a key file: standard base64 and a newline.
func (s *secretFile) write(secret []byte) error {
	return writeFile(s.path, []byte(base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600, true)
}

// abort removes the file when no key was made.
func (s *secretFile) abort() {
	if s != nil {
		os.Remove(s.path)
	}
}

// printCreated shows a new key, and its secret once: on stdout, or in the
// secret file if there is one.
func printCreated(e *Env, c *keys.Created, out *secretFile, asJSON bool, note string) error {
	if out != nil {
		if err := out.write(c.Secret); err != nil {
			return fmt.Errorf("writing the secret of %s to %s: %w; revoke the key and make another", c.Key.ID, out.path, err)
		}
	}
	if asJSON {
		shown := *c
		if out != nil {
			shown.Secret = nil
		}
		return printJSON(e, shown)
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
	if l := k.RateLimit; l != nil {
		fmt.Fprintf(e.Stdout, "  rate:    %s, burst %d\n", l.Rate, l.Burst)
	}
	if u := k.Uses; u != nil {
		refill := ""
		if !u.Refill.IsZero() {
			refill = ", refill " + u.Refill.String()
		}
		fmt.Fprintf(e.Stdout, "  uses:    %d%s\n", u.Remaining, refill)
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
	return nil
}
