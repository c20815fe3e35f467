// Package keyring keeps a gateway's own Ed25519 signing keys: the keys it
// signs what it forwards with (and, later, its responses), in a file of
// private JWKs (RFC 7517, RFC 8037), each with the time it starts signing
// and the time it stops being published. [Ring.Rotate] adds a successor
// that is published before it signs and keeps its predecessor published
// for an overlap after, so that a verifier that refreshes the published
// set ([Ring.JWKS], served at /.well-known/signet-keys) never meets a
// signature from a key it has not seen. Key ids are RFC 7638 thumbprints.
//
// Several gateways that share one ring file sign with the same key at the
// same time, since which key signs depends only on the file and the
// clock.
package keyring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Key is one signing key of a ring.
type Key struct {
	// ID is the key's RFC 7638 thumbprint, the keyid of its signatures.
	ID      string
	Private ed25519.PrivateKey
	// NotBefore is when the key starts signing; it is published from the
	// time it is in the ring.
	NotBefore time.Time
	// Expires is when the key stops being published; zero for never.
	Expires time.Time
}

// Public returns the key's public half.
func (k *Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Signer returns an httpsig signing key for k.
func (k *Key) Signer() (httpsig.SigningKey, error) {
	return httpsig.NewSigningKey(httpsig.AlgEd25519, k.Private)
}

// Ring is a set of signing keys. Its methods do not lock: load a ring,
// use it, and replace it whole.
type Ring struct {
	Keys []Key // by NotBefore
}

// New returns a ring with one new key, signing from now on.
func New(now time.Time) (*Ring, error) {
	k, err := newKey(now)
	if err != nil {
		return nil, err
	}
	return &Ring{Keys: []Key{k}}, nil
}

func newKey(notBefore time.Time) (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	return Key{ID: Thumbprint(priv.Public().(ed25519.PublicKey)), Private: priv, NotBefore: notBefore.Truncate(time.Second)}, nil
}

// Signer returns the key that signs at now: the latest whose NotBefore
// has come, among those not expired.
func (r *Ring) Signer(now time.Time) (Key, bool) {
	for i := len(r.Keys) - 1; i >= 0; i-- {
		k := r.Keys[i]
		if !k.NotBefore.After(now) && (k.Expires.IsZero() || now.Before(k.Expires)) {
			return k, true
		}
	}
	return Key{}, false
}

// Published returns the keys to publish at now: every key not expired,
// those that do not sign yet included.
func (r *Ring) Published(now time.Time) []Key {
	var out []Key
	for _, k := range r.Keys {
		if k.Expires.IsZero() || now.Before(k.Expires) {
			out = append(out, k)
		}
	}
	return out
}

// Rotate adds a successor to the key signing at now, which starts signing
// after publishAhead (at least as long as verifiers cache the published
// set), and has the keys it replaces stop being published overlap after
// that (at least the maximum age of a signature, plus that cache time).
// Expired keys are dropped.
func (r *Ring) Rotate(now time.Time, publishAhead, overlap time.Duration) (Key, error) {
	if publishAhead < 0 || overlap < 0 {
		return Key{}, errors.New("keyring: negative rotation times")
	}
	k, err := newKey(now.Add(publishAhead))
	if err != nil {
		return Key{}, err
	}
	// A key not published before its successor signs is dropped; one
	// still to sign is superseded by the new key, since the new one starts
	// later.
	kept := r.Keys[:0:0]
	for _, o := range r.Keys {
		if !o.Expires.IsZero() && !now.Before(o.Expires) {
			continue
		}
		if o.Expires.IsZero() || o.Expires.After(k.NotBefore.Add(overlap)) {
			o.Expires = k.NotBefore.Add(overlap)
		}
		kept = append(kept, o)
	}
	r.Keys = append(kept, k)
	slices.SortStableFunc(r.Keys, func(a, b Key) int { return a.NotBefore.Compare(b.NotBefore) })
	return k, nil
}

// Thumbprint returns the RFC 7638 thumbprint of an Ed25519 public key
// (RFC 8037 §2): base64url of the SHA-256 of its canonical JWK.
func Thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is a member of a ring file or of a published set.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	// Nbf and Exp are seconds since the epoch, as in JWTs; Exp 0: never.
	Nbf int64 `json:"nbf"`
	Exp int64 `json:"exp,omitempty"`
}

type jwkSet struct {
	Keys []json.RawMessage `json:"keys"`
}

func (k *Key) jwk(private bool) jwk {
	j := jwk{Kty: "OKP", Crv: "Ed25519", X: b64(k.Public()), Kid: k.ID, Use: "sig", Alg: "EdDSA", Nbf: k.NotBefore.Unix()}
	if !k.Expires.IsZero() {
		j.Exp = k.Expires.Unix()
	}
	if private {
		j.D = b64(k.Private.Seed())
	}
	return j
}

func marshalSet(keys []Key, private bool) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for i := range keys {
		set.Keys = append(set.Keys, keys[i].jwk(private))
	}
	return json.MarshalIndent(set, "", "  ")
}

// JWKS returns the JWK set (RFC 7517 §5) of the keys published at now:
// public halves, with kid, "use":"sig", "alg":"EdDSA", and the nbf and exp
// of each.
func (r *Ring) JWKS(now time.Time) ([]byte, error) {
	return marshalSet(r.Published(now), false)
}

// maxFileSize bounds a ring or set: a few keys take a few hundred bytes.
const maxFileSize = 1 << 20

// Load reads a ring file. It refuses a file that others than its owner
// may read, as ssh does with private keys.
func Load(path string) (*Ring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring: %s holds private keys but is mode %04o; chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return r, nil
}

// Parse reads a ring from the JSON of a ring file.
func Parse(data []byte) (*Ring, error) {
	keys, err := parseSet(data, true)
	if err != nil {
		return nil, err
	}
	r := &Ring{}
	for _, k := range keys {
		r.Keys = append(r.Keys, Key{ID: k.id, Private: k.priv, NotBefore: k.nbf, Expires: k.exp})
	}
	slices.SortStableFunc(r.Keys, func(a, b Key) int { return a.NotBefore.Compare(b.NotBefore) })
	return r, nil
}

type parsedKey struct {
	id       string
	pub      ed25519.PublicKey
	priv     ed25519.PrivateKey
	nbf, exp time.Time
}

// parseSet reads a JWK set of Ed25519 keys, private ones if private is
// set, public ones otherwise; key material goes through httpsig.ParseKey.
func parseSet(data []byte, private bool) ([]parsedKey, error) {
	if len(data) > maxFileSize {
		return nil, errors.New("keyring: the key set is too large")
	}
	var set jwkSet
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&set); err != nil {
		return nil, errors.New("keyring: the key set is not a JSON object with keys")
	}
	if set.Keys == nil {
		return nil, errors.New("keyring: the key set has no keys member")
	}
	var out []parsedKey
	seen := map[string]bool{}
	for i, raw := range set.Keys {
		var meta jwk
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("keyring: key %d is malformed", i)
		}
		if meta.Kty != "OKP" || meta.Crv != "Ed25519" {
			if private {
				return nil, fmt.Errorf("keyring: key %d is not an Ed25519 key", i)
			}
			continue // a published set may hold other keys; they are not ours to use
		}
		key, _, err := httpsig.ParseKey(raw)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %d: %v", i, err)
		}
		var k parsedKey
		switch v := key.(type) {
		case ed25519.PrivateKey:
			if !private {
				return nil, fmt.Errorf("keyring: key %d of a published set is private", i)
			}
			k.priv, k.pub = v, v.Public().(ed25519.PublicKey)
		case ed25519.PublicKey:
			if private {
				return nil, fmt.Errorf("keyring: key %d has no private part", i)
			}
			k.pub = v
		}
		k.id = Thumbprint(k.pub)
		if meta.Kid != "" && meta.Kid != k.id {
			return nil, fmt.Errorf("keyring: key %d: kid %q is not the key's thumbprint", i, meta.Kid)
		}
		if seen[k.id] {
			return nil, fmt.Errorf("keyring: key %d is in the set twice", i)
		}
		seen[k.id] = true
		k.nbf = time.Unix(meta.Nbf, 0)
		if meta.Exp != 0 {
			k.exp = time.Unix(meta.Exp, 0)
		}
		out = append(out, k)
	}
	return out, nil
}

// Save writes the ring to path, mode 0600, in one rename: a crash leaves
// the old file or the new one, never half of one.
func (r *Ring) Save(path string) error {
	data, err := marshalSet(r.Keys, true)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is none
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(append(data, '\n'))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PublicKey is a key of a published set, as a verifier reads it.
type PublicKey struct {
	ID        string
	Key       ed25519.PublicKey
	NotBefore time.Time
	Expires   time.Time // zero: never
}

// ParseJWKS reads a published JWK set, such as a gateway's
// /.well-known/signet-keys, into its Ed25519 keys by kid (the key's
// thumbprint); other kinds of keys are skipped, private ones refused.
func ParseJWKS(data []byte) (map[string]PublicKey, error) {
	keys, err := parseSet(data, false)
	if err != nil {
		return nil, err
	}
	out := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		out[k.id] = PublicKey{ID: k.id, Key: k.pub, NotBefore: k.nbf, Expires: k.exp}
	}
	return out, nil
}

// Resolver returns an httpsig.KeyResolver of the keys of a published set,
// for a service that verifies what its gateway signed.
func Resolver(keys map[string]PublicKey) (httpsig.KeyMap, error) {
	m := make(httpsig.KeyMap, len(keys))
	for id, k := range keys {
		v, err := httpsig.NewVerifyingKey(httpsig.AlgEd25519, k.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		m[id] = v
	}
	return m, nil
}
