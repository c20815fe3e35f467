package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"filippo.io/edwards25519"

	"github.com/signet-dev/signet/httpsig"
)

// Key ids are a readable prefix and 128 random bits in unpadded base64url:
// sk_ for shared-secret (HMAC) keys, pk_ for public keys.
const (
	prefixSecret = "sk_"
	prefixPublic = "pk_"
	idRandBytes  = 16
	idLen        = 3 + 22
)

func newID(r io.Reader, alg httpsig.Algorithm) (string, error) {
	var b [idRandBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("keys: reading random bits: %w", err)
	}
	prefix := prefixPublic
	if alg.Symmetric() {
		prefix = prefixSecret
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// validID reports whether id has the form of a key id, so that a keyid
// that cannot exist costs no lookup.
func validID(id string) bool {
	if len(id) != idLen || (id[:3] != prefixSecret && id[:3] != prefixPublic) {
		return false
	}
	for i := 3; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ScopeAdmin is the scope that opens the admin API.
const ScopeAdmin = "admin"

const maxScopes = 64

// ValidScope reports whether s is a well-formed scope: a lower-case letter
// followed by up to 63 lower-case letters, digits and "_.:-", such as
// "admin" or "orders:read".
func ValidScope(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("_.:-", c) >= 0) {
			return false
		}
	}
	return true
}

// normalizeScopes checks scopes and returns them without duplicates, in the
// order given.
func normalizeScopes(scopes []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !ValidScope(s) {
			return nil, fmt.Errorf("%w: scope %q is not valid: use a lower-case letter then up to 63 of a-z 0-9 _ . : - (e.g. orders:read)", ErrInvalid, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > maxScopes {
		return nil, fmt.Errorf("%w: %d scopes, at most %d", ErrInvalid, len(out), maxScopes)
	}
	return out, nil
}

// checkOwner accepts owner ids that are safe to pass on in an HTTP header
// and to print: 1 to 128 letters, digits and "._@:+-", starting with a
// letter or digit.
func checkOwner(owner string) error {
	if owner == "" {
		return fmt.Errorf("%w: owner is required", ErrInvalid)
	}
	ok := len(owner) <= 128
	for i := 0; ok && i < len(owner); i++ {
		c := owner[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && strings.IndexByte("._@:+-", c) >= 0
	}
	if !ok {
		return fmt.Errorf("%w: owner %q is not valid: use 1 to 128 letters, digits and . _ @ : + - (starting with a letter or digit)", ErrInvalid, owner)
	}
	return nil
}

func checkLabel(label string) error {
	if len(label) > 200 || !utf8.ValidString(label) || strings.IndexFunc(label, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: label must be at most 200 bytes of UTF-8 text without control characters", ErrInvalid)
	}
	return nil
}

// parsePublicKey parses a public key (PEM or JWK) for alg, inferring alg
// when it is empty, and returns the algorithm, the key as SPKI PEM and the
// verifying key. It refuses private keys, shared secrets, keys of another
// algorithm and weak keys.
func parsePublicKey(alg httpsig.Algorithm, data []byte) (httpsig.Algorithm, []byte, httpsig.VerifyingKey, error) {
	key, named, err := httpsig.ParseKey(data)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: public key: %w", ErrInvalid, err)
	}
	switch key.(type) {
	case []byte:
		return "", nil, nil, fmt.Errorf("%w: public key: this is a shared secret, not a public key", ErrInvalid)
	case ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey:
		return "", nil, nil, fmt.Errorf("%w: public key: this is a private key; register only its public key, and keep the private key on the client", ErrInvalid)
	}
	if named != "" && alg != "" && named != alg {
		return "", nil, nil, fmt.Errorf("%w: public key: the key is for %s, not %s", ErrInvalid, named, alg)
	}
	if alg == "" {
		alg = named
	}
	if alg == "" {
		a, ok := httpsig.InferAlgorithm(key)
		if !ok {
			return "", nil, nil, fmt.Errorf("%w: public key: an RSA key serves two algorithms; name one (rsa-pss-sha512 or rsa-v1_5-sha256)", ErrInvalid)
		}
		alg = a
	}
	if alg.Symmetric() {
		return "", nil, nil, fmt.Errorf("%w: an %s key has no public key: the server makes its secret", ErrInvalid, alg)
	}
	vk, err := httpsig.NewVerifyingKey(alg, key)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: public key: %w", ErrInvalid, err)
	}
	if pub, ok := key.(ed25519.PublicKey); ok && weakEd25519(pub) {
		return "", nil, nil, fmt.Errorf("%w: public key: a weak Ed25519 key (a point of small order, which lets anyone forge signatures)", ErrInvalid)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	return alg, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), vk, nil
}

// verifyingKeyOf returns the verifying key of a stored public key.
func verifyingKeyOf(alg httpsig.Algorithm, pemData []byte) (httpsig.VerifyingKey, error) {
	key, _, err := httpsig.ParseKey(pemData)
	if err != nil {
		return nil, err
	}
	return httpsig.NewVerifyingKey(alg, key)
}

// weakEd25519 reports whether pub is no canonical encoding of a point, or
// encodes a point of small order (dividing 8): with such a key, signatures
// that verify can be made without the private key.
func weakEd25519(pub ed25519.PublicKey) bool {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil || !bytes.Equal(p.Bytes(), pub) {
		return true
	}
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1
}

// MaxMetadataSize bounds the metadata of a key, in bytes of its canonical
// JSON form.
const MaxMetadataSize = 4096

// normalizeMetadata checks that raw is a JSON object and returns its
// canonical form (members sorted, duplicates resolved to the last, no
// white space, numbers as written), or nil for null or {}.
func normalizeMetadata(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) > 16*MaxMetadataSize {
		return nil, fmt.Errorf("%w: metadata is over %d bytes", ErrInvalid, MaxMetadataSize)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: metadata must be a JSON object: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: metadata must be one JSON object, with nothing after it", ErrInvalid)
	}
	if len(obj) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrInvalid, err)
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(out) > MaxMetadataSize {
		return nil, fmt.Errorf("%w: metadata is %d bytes, at most %d", ErrInvalid, len(out), MaxMetadataSize)
	}
	return out, nil
}
