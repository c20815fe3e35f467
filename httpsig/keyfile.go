package httpsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// maxKeyFileSize bounds what ParseKey reads; real key files are a few KiB.
const maxKeyFileSize = 64 << 10

// oidRSASSAPSS is id-RSASSA-PSS (RFC 8017 A.2.3). crypto/x509 does not parse
// PKCS#8 or SPKI structures carrying it, though RFC 9421 B.1.2 uses one.
var oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}

// ParseKey parses a key file and returns the key in it:
//
//   - PEM: PKCS#8 "PRIVATE KEY" (including the RSASSA-PSS OID), SPKI
//     "PUBLIC KEY", PKCS#1 "RSA PRIVATE KEY" / "RSA PUBLIC KEY", SEC1
//     "EC PRIVATE KEY";
//   - a JWK (RFC 7517) JSON object of kty "oct", "OKP" (Ed25519), "EC" (P-256,
//     P-384) or "RSA", private or public;
//   - otherwise, base64 text of a shared secret (standard or URL alphabet,
//     padded or not), as in RFC 9421 B.1.5.
//
// The result is a []byte secret, an ed25519.PrivateKey or PublicKey, an
// *ecdsa.PrivateKey or PublicKey, or an *rsa.PrivateKey or PublicKey. The
// second result is the algorithm the file itself names (a JWK "alg", or the
// RSASSA-PSS OID), or "" if it names none. Error messages never contain key
// material.
func ParseKey(data []byte) (key any, alg Algorithm, err error) {
	if len(data) > maxKeyFileSize {
		return nil, "", errors.New("httpsig: key file too large")
	}
	text := bytes.TrimSpace(data)
	switch {
	case len(text) == 0:
		return nil, "", errors.New("httpsig: key file is empty")
	case bytes.HasPrefix(text, []byte("-----BEGIN")):
		return parsePEMKey(text)
	case text[0] == '{':
		return parseJWK(text)
	}
	secret, err := decodeBase64Loose(string(text))
	if err != nil {
		return nil, "", errors.New("httpsig: key file is neither PEM, JWK nor base64 text")
	}
	return secret, "", nil
}

// decodeBase64Loose accepts the standard and URL-safe alphabets, with or
// without padding, and ignores line breaks.
func decodeBase64Loose(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func parsePEMKey(text []byte) (any, Algorithm, error) {
	block, rest := pem.Decode(text)
	if block == nil {
		return nil, "", errors.New("httpsig: malformed PEM")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", errors.New("httpsig: PEM file holds more than one block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		return parsePKCS8(block.Bytes)
	case "PUBLIC KEY":
		return parseSPKI(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		return wrapKeyErr(k, "", err)
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		return wrapKeyErr(k, "", err)
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		return wrapKeyErr(k, "", err)
	}
	return nil, "", fmt.Errorf("httpsig: unsupported PEM block type %q", block.Type)
}

func wrapKeyErr[K any](k K, alg Algorithm, err error) (any, Algorithm, error) {
	if err != nil {
		return nil, "", fmt.Errorf("httpsig: malformed key: %w", err)
	}
	return k, alg, nil
}

type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

func parsePKCS8(der []byte) (any, Algorithm, error) {
	var p pkcs8
	if rest, err := asn1.Unmarshal(der, &p); err == nil && len(rest) == 0 && p.Algo.Algorithm.Equal(oidRSASSAPSS) {
		k, err := x509.ParsePKCS1PrivateKey(p.PrivateKey)
		return wrapKeyErr(k, AlgRSAPSSSHA512, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return wrapKeyErr[any](nil, "", err)
	}
	return k, "", nil
}

type spki struct {
	Algo      pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

func parseSPKI(der []byte) (any, Algorithm, error) {
	var p spki
	if rest, err := asn1.Unmarshal(der, &p); err == nil && len(rest) == 0 && p.Algo.Algorithm.Equal(oidRSASSAPSS) {
		k, err := x509.ParsePKCS1PublicKey(p.PublicKey.RightAlign())
		return wrapKeyErr(k, AlgRSAPSSSHA512, err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return wrapKeyErr[any](nil, "", err)
	}
	return k, "", nil
}

type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	K   string `json:"k"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	N   string `json:"n"`
	E   string `json:"e"`
	P   string `json:"p"`
	Q   string `json:"q"`
}

// jwkAlgs maps JOSE algorithm names (RFC 7518) to RFC 9421 algorithms.
var jwkAlgs = map[string]Algorithm{
	"HS256": AlgHMACSHA256, "EdDSA": AlgEd25519, "Ed25519": AlgEd25519,
	"ES256": AlgECDSAP256SHA256, "ES384": AlgECDSAP384SHA384,
	"PS512": AlgRSAPSSSHA512, "RS256": AlgRSAV1_5SHA256,
}

func parseJWK(text []byte) (any, Algorithm, error) {
	var j jwk
	if err := json.Unmarshal(text, &j); err != nil {
		return nil, "", errors.New("httpsig: malformed JWK JSON")
	}
	var alg Algorithm
	if j.Alg != "" {
		var ok bool
		if alg, ok = jwkAlgs[j.Alg]; !ok {
			a, err := ParseAlgorithm(j.Alg)
			if err != nil {
				return nil, "", fmt.Errorf("httpsig: JWK alg %q is not supported", j.Alg)
			}
			alg = a
		}
	}
	var key any
	var err error
	switch j.Kty {
	case "oct":
		key, err = j.decode("k", j.K)
	case "OKP":
		key, err = j.ed25519Key()
	case "EC":
		key, err = j.ecdsaKey()
	case "RSA":
		key, err = j.rsaKey()
	case "":
		err = errors.New("httpsig: JWK has no kty")
	default:
		err = fmt.Errorf("httpsig: JWK kty %q is not supported", j.Kty)
	}
	if err != nil {
		return nil, "", err
	}
	return key, alg, nil
}

// decode returns the bytes of the base64url member name, whose value is s.
func (j *jwk) decode(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("httpsig: JWK member %q is missing", name)
	}
	v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("httpsig: JWK member %q is not base64url", name)
	}
	return v, nil
}

// ed25519Key returns the key of an OKP JWK: an ed25519.PublicKey, or an
// ed25519.PrivateKey whose public half matches x.
func (j *jwk) ed25519Key() (any, error) {
	if j.Crv != "Ed25519" {
		return nil, fmt.Errorf("httpsig: JWK curve %q is not supported", j.Crv)
	}
	x, err := j.decode("x", j.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, errors.New("httpsig: JWK Ed25519 public key has the wrong length")
	}
	if j.D == "" {
		return ed25519.PublicKey(x), nil
	}
	d, err := j.decode("d", j.D)
	if err != nil {
		return nil, err
	}
	if len(d) != ed25519.SeedSize {
		return nil, errors.New("httpsig: JWK Ed25519 private key has the wrong length")
	}
	priv := ed25519.NewKeyFromSeed(d)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), x) {
		return nil, errors.New("httpsig: JWK Ed25519 private and public parts do not match")
	}
	return priv, nil
}

// ecdsaKey returns the key of an EC JWK: an *ecdsa.PublicKey on the curve,
// or an *ecdsa.PrivateKey whose public half is (x, y).
func (j *jwk) ecdsaKey() (any, error) {
	var curve elliptic.Curve
	switch j.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("httpsig: JWK curve %q is not supported", j.Crv)
	}
	x, err := j.decode("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := j.decode("y", j.Y)
	if err != nil {
		return nil, err
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(x) != size || len(y) != size {
		return nil, errors.New("httpsig: JWK EC coordinates have the wrong length")
	}
	// Through the uncompressed point encoding, so that crypto/ecdsa checks
	// the point is on the curve.
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, errors.New("httpsig: JWK EC point is not on the curve")
	}
	if j.D == "" {
		return pub, nil
	}
	d, err := j.decode("d", j.D)
	if err != nil {
		return nil, err
	}
	priv, err := ecdsa.ParseRawPrivateKey(curve, d)
	if err != nil {
		return nil, errors.New("httpsig: JWK EC private key is invalid")
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, errors.New("httpsig: JWK EC private and public parts do not match")
	}
	return priv, nil
}

// rsaKey returns the key of an RSA JWK: an *rsa.PublicKey, or a validated
// *rsa.PrivateKey of two primes.
func (j *jwk) rsaKey() (any, error) {
	nb, err := j.decode("n", j.N)
	if err != nil {
		return nil, err
	}
	eb, err := j.decode("e", j.E)
	if err != nil {
		return nil, err
	}
	e := new(big.Int).SetBytes(eb)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, errors.New("httpsig: JWK RSA exponent is out of range")
	}
	pub := rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(e.Int64())}
	if j.D == "" {
		return &pub, nil
	}
	var parts [3]*big.Int
	for i, m := range []struct{ name, v string }{{"d", j.D}, {"p", j.P}, {"q", j.Q}} {
		b, err := j.decode(m.name, m.v)
		if err != nil {
			return nil, err
		}
		parts[i] = new(big.Int).SetBytes(b)
	}
	priv := &rsa.PrivateKey{PublicKey: pub, D: parts[0], Primes: []*big.Int{parts[1], parts[2]}}
	if err := priv.Validate(); err != nil {
		return nil, errors.New("httpsig: JWK RSA private key is invalid")
	}
	priv.Precompute()
	return priv, nil
}

// InferAlgorithm returns the algorithm a key can only be used with: Ed25519
// and ECDSA keys name theirs; a []byte secret is hmac-sha256. RSA keys serve
// two algorithms and give false.
func InferAlgorithm(key any) (Algorithm, bool) {
	switch k := key.(type) {
	case []byte:
		return AlgHMACSHA256, true
	case ed25519.PrivateKey, ed25519.PublicKey:
		return AlgEd25519, true
	case *ecdsa.PrivateKey:
		return inferCurve(k.Curve)
	case *ecdsa.PublicKey:
		return inferCurve(k.Curve)
	}
	return "", false
}

func inferCurve(c elliptic.Curve) (Algorithm, bool) {
	for i := range algorithms {
		if a := &algorithms[i]; a.curve != nil && a.curve() == c {
			return a.name, true
		}
	}
	return "", false
}

// resolveAlg picks the algorithm for a key file: the one asked for, which
// must agree with what the file names, or else the one the file or the key
// kind implies.
func resolveAlg(want Algorithm, key any, named Algorithm) (Algorithm, error) {
	if named != "" && want != "" && named != want {
		return "", fmt.Errorf("httpsig: key file is for %s, not %s", named, want)
	}
	if want != "" {
		return want, nil
	}
	if named != "" {
		return named, nil
	}
	if a, ok := InferAlgorithm(key); ok {
		return a, nil
	}
	return "", errors.New("httpsig: cannot tell the algorithm of an RSA key; name it (rsa-pss-sha512 or rsa-v1_5-sha256)")
}

// LoadSigningKey parses a key file (see [ParseKey]) and returns a signing
// key for alg. If alg is empty, the algorithm is inferred from the file.
func LoadSigningKey(alg Algorithm, data []byte) (SigningKey, error) {
	key, named, err := ParseKey(data)
	if err != nil {
		return nil, err
	}
	if alg, err = resolveAlg(alg, key, named); err != nil {
		return nil, err
	}
	return NewSigningKey(alg, key)
}

// LoadVerifyingKey parses a key file (see [ParseKey]) and returns a
// verifying key for alg. If alg is empty, the algorithm is inferred from the
// file.
func LoadVerifyingKey(alg Algorithm, data []byte) (VerifyingKey, error) {
	key, named, err := ParseKey(data)
	if err != nil {
		return nil, err
	}
	if alg, err = resolveAlg(alg, key, named); err != nil {
		return nil, err
	}
	return NewVerifyingKey(alg, key)
}
