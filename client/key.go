package client

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/signet-dev/signet/httpsig"
)

// maxKeyFileBytes bounds what LoadKey reads: an RSA private key as JWK,
// the largest kind, is a few KiB.
const maxKeyFileBytes = 64 << 10

// LoadKey reads the signing key in the file at path: a private key that
// `signet keygen` wrote (PEM, PKCS#8), or any other file [httpsig.ParseKey]
// reads, such as the base64 HMAC secret `signet keys create` shows once,
// saved to a file. If alg is empty, the algorithm is inferred from the file,
// which works for every kind of key but RSA.
func LoadKey(path string, alg httpsig.Algorithm) (httpsig.SigningKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client: key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client: key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("client: key file %s is larger than a key file (%d bytes at most)", path, maxKeyFileBytes)
	}
	key, err := httpsig.LoadSigningKey(alg, data)
	if err != nil {
		return nil, fmt.Errorf("client: key file %s: %w", path, err)
	}
	return key, nil
}

// NewTransport returns a Transport that signs with the key in keyFile (see
// [LoadKey]; its algorithm is inferred) under the keyid keyID, in Signet's
// default profile, and sends with base; if base is nil,
// http.DefaultTransport is used. For other settings, make the
// [httpsig.Signer] and the Transport yourself.
func NewTransport(keyID, keyFile string, base http.RoundTripper) (*Transport, error) {
	if keyID == "" {
		return nil, fmt.Errorf("client: a keyid is required")
	}
	key, err := LoadKey(keyFile, "")
	if err != nil {
		return nil, err
	}
	return &Transport{Signer: &httpsig.Signer{Key: key, KeyID: keyID}, Base: base}, nil
}
