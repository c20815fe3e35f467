package httpsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is a public key and its keyid, one member of a JSON Web Key Set.
type JWK struct {
	KeyID string
	// Key is an ed25519.PublicKey, *ecdsa.PublicKey (P-256, P-384) or
	// *rsa.PublicKey.
	Key crypto.PublicKey
	// Alg is the algorithm the key is bound to; it may be empty for
	// Ed25519 and ECDSA keys, whose kind names it.
	Alg Algorithm
}

// joseAlgs are the JWK "alg" values written for each algorithm.
var joseAlgs = map[Algorithm]string{
	AlgEd25519: "EdDSA", AlgECDSAP256SHA256: "ES256", AlgECDSAP384SHA384: "ES384",
	AlgRSAPSSSHA512: "PS512", AlgRSAV1_5SHA256: "RS256",
}

type jwkOut struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// MarshalJWKS returns the JSON Web Key Set (RFC 7517 §5) of keys, in the
// order given, each with its kid, "use":"sig" and its JOSE "alg".
func MarshalJWKS(keys []JWK) ([]byte, error) {
	set := struct {
		Keys []jwkOut `json:"keys"`
	}{Keys: make([]jwkOut, 0, len(keys))}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.KeyID == "" || seen[k.KeyID] {
			return nil, fmt.Errorf("httpsig: every key of a JWK set needs its own kid (%q)", k.KeyID)
		}
		seen[k.KeyID] = true
		alg := k.Alg
		if alg == "" {
			var ok bool
			if alg, ok = InferAlgorithm(k.Key); !ok {
				return nil, fmt.Errorf("httpsig: the algorithm of key %q is needed", k.KeyID)
			}
		}
		if _, err := NewVerifyingKey(alg, k.Key); err != nil {
			return nil, fmt.Errorf("httpsig: key %q: %w", k.KeyID, err)
		}
		out, err := publicJWK(k.Key)
		if err != nil {
			return nil, err
		}
		out.Kid, out.Use, out.Alg = k.KeyID, "sig", joseAlgs[alg]
		set.Keys = append(set.Keys, out)
	}
	return json.Marshal(set)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicJWK returns the members of a public key's JWK that RFC 7638 also
// hashes.
func publicJWK(key crypto.PublicKey) (jwkOut, error) {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return jwkOut{Kty: "OKP", Crv: "Ed25519", X: b64url(k)}, nil
	case *ecdsa.PublicKey:
		var crv string
		switch k.Curve {
		case elliptic.P256():
			crv = "P-256"
		case elliptic.P384():
			crv = "P-384"
		default:
			return jwkOut{}, errors.New("httpsig: unsupported ECDSA curve")
		}
		pub, err := k.ECDH()
		if err != nil {
			return jwkOut{}, fmt.Errorf("httpsig: %w", err)
		}
		point := pub.Bytes()[1:] // 0x04 || X || Y, each the field size
		return jwkOut{Kty: "EC", Crv: crv, X: b64url(point[:len(point)/2]), Y: b64url(point[len(point)/2:])}, nil
	case *rsa.PublicKey:
		return jwkOut{Kty: "RSA", N: b64url(k.N.Bytes()), E: b64url(big.NewInt(int64(k.E)).Bytes())}, nil
	}
	return jwkOut{}, fmt.Errorf("httpsig: a JWK set holds public keys, not %s", describeKey(key))
}

// JWKThumbprint returns the RFC 7638 thumbprint of a public key (SHA-256,
// base64url without padding): a name for the key that anyone can compute
// from it, to pin it.
func JWKThumbprint(key crypto.PublicKey) (string, error) {
	j, err := publicJWK(key)
	if err != nil {
		return "", err
	}
	// The required members, in lexicographic order, no white space.
	var m string
	switch j.Kty {
	case "OKP":
		m = `{"crv":"` + j.Crv + `","kty":"OKP","x":"` + j.X + `"}`
	case "EC":
		m = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case "RSA":
		m = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	}
	sum := sha256.Sum256([]byte(m))
	return b64url(sum[:]), nil
}

// JWKSKey is a key read from a JWK set: what verifies, and the public key
// with its thumbprint, for pinning.
type JWKSKey struct {
	VerifyingKey
	Public     crypto.PublicKey
	Thumbprint string
}

// ParseJWKS reads a JSON Web Key Set of public keys and returns its
// keys by kid, each bound to the algorithm its "alg" names or its kind
// implies. Keys whose kty is not one this package knows, and keys whose
// "use" is not "sig", are skipped (RFC 7517 §5); a key without a kid, a
// kid used twice, a private or secret key, or a key that does not parse
// is an error.
func ParseJWKS(data []byte) (map[string]JWKSKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if len(data) > maxKeyFileSize {
		return nil, errors.New("httpsig: JWK set too large")
	}
	if err := json.Unmarshal(data, &set); err != nil || set.Keys == nil {
		return nil, errors.New("httpsig: not a JWK set (a JSON object with a \"keys\" array)")
	}
	out := make(map[string]JWKSKey, len(set.Keys))
	for i, raw := range set.Keys {
		var head struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			D   string `json:"d"`
			K   string `json:"k"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("httpsig: JWK set: key %d is not a JSON object", i)
		}
		switch {
		case head.Kty != "OKP" && head.Kty != "EC" && head.Kty != "RSA" && head.Kty != "oct":
			continue
		case head.Use != "" && head.Use != "sig":
			continue
		case head.Kid == "":
			return nil, fmt.Errorf("httpsig: JWK set: key %d has no kid", i)
		case head.D != "" || head.K != "" || head.Kty == "oct":
			return nil, fmt.Errorf("httpsig: JWK set: key %q is private or secret; a key set publishes public keys", head.Kid)
		}
		if _, dup := out[head.Kid]; dup {
			return nil, fmt.Errorf("httpsig: JWK set: kid %q is used twice", head.Kid)
		}
		pub, named, err := parseJWK(bytes.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("httpsig: JWK set: key %q: %w", head.Kid, err)
		}
		alg, err := resolveAlg("", pub, named)
		if err != nil {
			return nil, fmt.Errorf("httpsig: JWK set: key %q: %w", head.Kid, err)
		}
		vk, err := NewVerifyingKey(alg, pub)
		if err != nil {
			return nil, fmt.Errorf("httpsig: JWK set: key %q: %w", head.Kid, err)
		}
		tp, err := JWKThumbprint(pub)
		if err != nil {
			return nil, err
		}
		out[head.Kid] = JWKSKey{VerifyingKey: vk, Public: pub, Thumbprint: tp}
	}
	return out, nil
}
