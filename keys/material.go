package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

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
		return "", nil, nil, fmt.Errorf("%w: public key: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "httpsig: "))
	}
	switch key.(type) {
	case []byte:
		return "", nil, nil, fmt.Errorf("%w: public key: this is a shared secret, not a public key (register a PEM or JWK public key, e.g. the .pub file of signet keygen)", ErrInvalid)
	case ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey:
		return "", nil, nil, fmt.Errorf("%w: public key: this is a private key; register only its public key (the .pub file of signet keygen) and keep the private key on the client", ErrInvalid)
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
		return "", nil, nil, fmt.Errorf("%w: public key: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "httpsig: "))
	}
	if pub, ok := key.(ed25519.PublicKey); ok && smallOrderEd25519(pub) {
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

// Edwards25519 arithmetic, only to tell weak public keys: curve
// -x² + y² = 1 + d·x²·y² over GF(2²⁵⁵ - 19).
var (
	edP      = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	edD      = mustBig("37095705934669439343138083508754565189542113879843219016388785533085940283555")
	edSqrtM1 = mustBig("19681161376707505956807079304988542015446066515923890162744021073123829784752")
	edPPlus3 = new(big.Int).Rsh(new(big.Int).Add(edP, big.NewInt(3)), 3) // (p+3)/8
	bigOne   = big.NewInt(1)
	bigTwo   = big.NewInt(2)
)

func mustBig(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("keys: bad constant " + s)
	}
	return n
}

// smallOrderEd25519 reports whether pub encodes a point of order dividing
// 8 (or no valid point at all): with such a key, signatures that verify can
// be made without the private key.
func smallOrderEd25519(pub ed25519.PublicKey) bool {
	b := slices.Clone([]byte(pub))
	sign := b[31] >> 7
	b[31] &= 0x7f
	slices.Reverse(b)
	y := new(big.Int).SetBytes(b)
	if y.Cmp(edP) >= 0 {
		return true // not canonical
	}
	p := edP
	// x² = (y² - 1) / (d·y² + 1)
	y2 := new(big.Int).Mul(y, y)
	y2.Mod(y2, p)
	u := new(big.Int).Sub(y2, bigOne)
	v := new(big.Int).Mul(edD, y2)
	v.Add(v, bigOne)
	x2 := new(big.Int).Mul(u, new(big.Int).ModInverse(v.Mod(v, p), p))
	x2.Mod(x2, p)
	x := new(big.Int).Exp(x2, edPPlus3, p)
	if sq := new(big.Int).Mul(x, x); sq.Mod(sq, p).Cmp(x2) != 0 {
		x.Mul(x, edSqrtM1).Mod(x, p)
		if sq.Mul(x, x).Mod(sq, p).Cmp(x2) != 0 {
			return true // not on the curve
		}
	}
	if x.Sign() == 0 && sign == 1 {
		return true // not canonical
	}
	if x.Bit(0) != uint(sign) {
		x.Sub(p, x)
	}
	for range 3 {
		x, y = edDouble(x, y)
	}
	return x.Sign() == 0 && y.Cmp(bigOne) == 0
}

// edDouble doubles a point with the complete affine formulas for a = -1:
// x' = 2xy / (1 + d·x²·y²), y' = (y² + x²) / (1 - d·x²·y²).
func edDouble(x, y *big.Int) (*big.Int, *big.Int) {
	p := edP
	xx := new(big.Int).Mul(x, x)
	yy := new(big.Int).Mul(y, y)
	dxy := new(big.Int).Mul(xx, yy)
	dxy.Mul(dxy, edD).Mod(dxy, p)
	xn := new(big.Int).Mul(x, y)
	xn.Mul(xn, bigTwo)
	xd := new(big.Int).Add(bigOne, dxy)
	yn := new(big.Int).Add(yy, xx)
	yd := new(big.Int).Sub(bigOne, dxy)
	yd.Mod(yd, p)
	x3 := xn.Mul(xn, new(big.Int).ModInverse(xd.Mod(xd, p), p))
	y3 := yn.Mul(yn, new(big.Int).ModInverse(yd, p))
	return x3.Mod(x3, p), y3.Mod(y3, p)
}
