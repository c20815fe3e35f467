package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"sync"
)

// Algorithm names an entry of the HTTP Signature Algorithms registry
// (RFC 9421 §6.2), as it appears in the alg signature parameter.
type Algorithm string

// The algorithms of RFC 9421 §3.3.
const (
	AlgHMACSHA256       Algorithm = "hmac-sha256"
	AlgEd25519          Algorithm = "ed25519"
	AlgECDSAP256SHA256  Algorithm = "ecdsa-p256-sha256"
	AlgECDSAP384SHA384  Algorithm = "ecdsa-p384-sha384"
	AlgRSAPSSSHA512     Algorithm = "rsa-pss-sha512"
	AlgRSAV1_5SHA256    Algorithm = "rsa-v1_5-sha256"
	minHMACSecretLength           = 32
	minRSABits                    = 2048
)

// algorithm describes one algorithm: the one place that lists what this
// package implements.
type algorithm struct {
	name Algorithm
	kind keyKind
	// hash digests the signature base for ECDSA and RSA.
	hash crypto.Hash
	// curve is the curve of an ECDSA algorithm.
	curve func() elliptic.Curve
}

// keyKind is the kind of key an algorithm takes.
type keyKind uint8

const (
	kindHMAC keyKind = iota
	kindEd25519
	kindECDSA
	kindRSA
)

var algorithms = [...]algorithm{
	{name: AlgHMACSHA256, kind: kindHMAC},
	{name: AlgEd25519, kind: kindEd25519},
	{name: AlgECDSAP256SHA256, kind: kindECDSA, hash: crypto.SHA256, curve: elliptic.P256},
	{name: AlgECDSAP384SHA384, kind: kindECDSA, hash: crypto.SHA384, curve: elliptic.P384},
	{name: AlgRSAPSSSHA512, kind: kindRSA, hash: crypto.SHA512},
	{name: AlgRSAV1_5SHA256, kind: kindRSA, hash: crypto.SHA256},
}

// Algorithms returns every algorithm this package signs and verifies.
func Algorithms() []Algorithm {
	out := make([]Algorithm, len(algorithms))
	for i := range algorithms {
		out[i] = algorithms[i].name
	}
	return out
}

func lookupAlgorithm(name Algorithm) (*algorithm, error) {
	for i := range algorithms {
		if algorithms[i].name == name {
			return &algorithms[i], nil
		}
	}
	known := make([]string, len(algorithms))
	for i := range algorithms {
		known[i] = string(algorithms[i].name)
	}
	return nil, fmt.Errorf("httpsig: unknown algorithm %q (known: %s)", name, strings.Join(known, ", "))
}

// ParseAlgorithm returns the Algorithm named s, or an error if this package
// does not implement it.
func ParseAlgorithm(s string) (Algorithm, error) {
	a, err := lookupAlgorithm(Algorithm(s))
	if err != nil {
		return "", err
	}
	return a.name, nil
}

// Symmetric reports whether a signs and verifies with one shared secret.
func (a Algorithm) Symmetric() bool { return a == AlgHMACSHA256 }

var errBadSignature = errors.New("httpsig: signature does not verify")

// NewSigningKey returns a key that signs with alg. key is a []byte secret
// for hmac-sha256, an ed25519.PrivateKey, an *ecdsa.PrivateKey on the curve
// alg names, or an *rsa.PrivateKey of at least 2048 bits. A key of the wrong
// kind for alg is an error: a key is bound to one algorithm.
func NewSigningKey(alg Algorithm, key any) (SigningKey, error) {
	a, err := lookupAlgorithm(alg)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case []byte:
		if a.kind == kindHMAC {
			return NewHMACKey(k)
		}
	case ed25519.PrivateKey:
		if a.kind == kindEd25519 && len(k) == ed25519.PrivateKeySize {
			return ed25519Signer{k}, nil
		}
	case *ecdsa.PrivateKey:
		if a.kind == kindECDSA && k.Curve == a.curve() {
			return ecdsaSigner{a, k}, nil
		}
	case *rsa.PrivateKey:
		if a.kind == kindRSA {
			if err := checkRSASize(a, &k.PublicKey); err != nil {
				return nil, err
			}
			return rsaSigner{a, k}, nil
		}
	}
	return nil, keyKindError(alg, key)
}

// NewVerifyingKey returns a key that verifies signatures made with alg. key
// is a []byte secret for hmac-sha256, or a public key (ed25519.PublicKey,
// *ecdsa.PublicKey, *rsa.PublicKey) of the kind alg needs; a private key is
// accepted too and its public half used.
func NewVerifyingKey(alg Algorithm, key any) (VerifyingKey, error) {
	a, err := lookupAlgorithm(alg)
	if err != nil {
		return nil, err
	}
	if priv, ok := key.(ed25519.PrivateKey); ok && len(priv) != ed25519.PrivateKeySize {
		return nil, keyKindError(alg, key) // its Public would panic
	}
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	switch k := key.(type) {
	case []byte:
		if a.kind == kindHMAC {
			return NewHMACKey(k)
		}
	case ed25519.PublicKey:
		if a.kind == kindEd25519 && len(k) == ed25519.PublicKeySize {
			return ed25519Verifier{k}, nil
		}
	case *ecdsa.PublicKey:
		if a.kind == kindECDSA && k.Curve == a.curve() {
			return ecdsaVerifier{a, k}, nil
		}
	case *rsa.PublicKey:
		if a.kind == kindRSA {
			if err := checkRSASize(a, k); err != nil {
				return nil, err
			}
			return rsaVerifier{a, k}, nil
		}
	}
	return nil, keyKindError(alg, key)
}

func checkRSASize(a *algorithm, pub *rsa.PublicKey) error {
	if bits := pub.N.BitLen(); bits < minRSABits {
		return fmt.Errorf("httpsig: %s key has %d bits, need at least %d", a.name, bits, minRSABits)
	}
	return nil
}

func keyKindError(alg Algorithm, key any) error {
	return fmt.Errorf("httpsig: a %s key cannot be used with algorithm %s", describeKey(key), alg)
}

// describeKey names the kind of a key for error messages, never its value.
func describeKey(key any) string {
	switch k := key.(type) {
	case []byte:
		return "shared-secret"
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519"
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	case nil:
		return "missing"
	}
	return fmt.Sprintf("%T", key)
}

// HMACKey signs and verifies hmac-sha256 signatures with a shared secret.
type HMACKey struct {
	secret []byte
	pool   sync.Pool // of *hmacState; hmac.New costs more than a Reset
}

type hmacState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewHMACKey returns an hmac-sha256 key. The secret must be at least 32
// bytes (256 bits); it is copied.
func NewHMACKey(secret []byte) (*HMACKey, error) {
	if len(secret) < minHMACSecretLength {
		return nil, fmt.Errorf("httpsig: hmac-sha256 secret is %d bytes, need at least %d", len(secret), minHMACSecretLength)
	}
	k := &HMACKey{secret: append([]byte(nil), secret...)}
	k.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, k.secret)} }
	return k, nil
}

// Algorithm returns hmac-sha256.
func (k *HMACKey) Algorithm() Algorithm { return AlgHMACSHA256 }

// Sign returns the HMAC-SHA256 of base.
func (k *HMACKey) Sign(base []byte) ([]byte, error) {
	return k.appendSign(make([]byte, 0, sha256.Size), base), nil
}

func (k *HMACKey) appendSign(dst, base []byte) []byte {
	st := k.pool.Get().(*hmacState)
	st.h.Reset()
	st.h.Write(base)
	dst = st.h.Sum(dst)
	k.pool.Put(st)
	return dst
}

// Verify compares the HMAC-SHA256 of base with sig in constant time.
func (k *HMACKey) Verify(base, sig []byte) error {
	st := k.pool.Get().(*hmacState)
	st.h.Reset()
	st.h.Write(base)
	ok := hmac.Equal(st.h.Sum(st.sum[:0]), sig)
	k.pool.Put(st)
	if !ok {
		return errBadSignature
	}
	return nil
}

type ed25519Signer struct{ priv ed25519.PrivateKey }

func (ed25519Signer) Algorithm() Algorithm { return AlgEd25519 }
func (s ed25519Signer) Sign(base []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, base), nil
}

type ed25519Verifier struct{ pub ed25519.PublicKey }

func (ed25519Verifier) Algorithm() Algorithm { return AlgEd25519 }
func (v ed25519Verifier) Verify(base, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(v.pub, base, sig) {
		return errBadSignature
	}
	return nil
}

type ecdsaSigner struct {
	alg  *algorithm
	priv *ecdsa.PrivateKey
}

func (s ecdsaSigner) Algorithm() Algorithm { return s.alg.name }

// Sign returns r‖s, each zero-padded to the curve size, as RFC 9421 §3.3.4
// requires (not the ASN.1 DER of crypto/ecdsa).
func (s ecdsaSigner) Sign(base []byte) ([]byte, error) {
	r, ss, err := ecdsa.Sign(rand.Reader, s.priv, digest(s.alg.hash, base))
	if err != nil {
		return nil, fmt.Errorf("httpsig: %s: %w", s.alg.name, err)
	}
	size := (s.priv.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	ss.FillBytes(out[size:])
	return out, nil
}

type ecdsaVerifier struct {
	alg *algorithm
	pub *ecdsa.PublicKey
}

func (v ecdsaVerifier) Algorithm() Algorithm { return v.alg.name }
func (v ecdsaVerifier) Verify(base, sig []byte) error {
	size := (v.pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return errBadSignature
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(v.pub, digest(v.alg.hash, base), r, s) {
		return errBadSignature
	}
	return nil
}

type rsaSigner struct {
	alg  *algorithm
	priv *rsa.PrivateKey
}

// pssOptions are those of rsa-pss-sha512 (RFC 9421 §3.3.1): a salt as long
// as the SHA-512 digest.
var pssOptions = rsa.PSSOptions{SaltLength: sha512.Size, Hash: crypto.SHA512}

func (s rsaSigner) Algorithm() Algorithm { return s.alg.name }
func (s rsaSigner) Sign(base []byte) ([]byte, error) {
	var sig []byte
	var err error
	if s.alg.name == AlgRSAPSSSHA512 {
		sig, err = rsa.SignPSS(rand.Reader, s.priv, s.alg.hash, digest(s.alg.hash, base), &pssOptions)
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.priv, s.alg.hash, digest(s.alg.hash, base))
	}
	if err != nil {
		return nil, fmt.Errorf("httpsig: %s: %w", s.alg.name, err)
	}
	return sig, nil
}

type rsaVerifier struct {
	alg *algorithm
	pub *rsa.PublicKey
}

func (v rsaVerifier) Algorithm() Algorithm { return v.alg.name }
func (v rsaVerifier) Verify(base, sig []byte) error {
	var err error
	if v.alg.name == AlgRSAPSSSHA512 {
		err = rsa.VerifyPSS(v.pub, v.alg.hash, digest(v.alg.hash, base), sig, &pssOptions)
	} else {
		err = rsa.VerifyPKCS1v15(v.pub, v.alg.hash, digest(v.alg.hash, base), sig)
	}
	if err != nil {
		return errBadSignature
	}
	return nil
}

// digest returns the digest of base with h, one of the hashes of the
// algorithms table.
func digest(h crypto.Hash, base []byte) []byte {
	switch h {
	case crypto.SHA384:
		d := sha512.Sum384(base)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(base)
		return d[:]
	}
	d := sha256.Sum256(base)
	return d[:]
}
