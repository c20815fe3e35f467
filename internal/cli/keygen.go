package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/signet-dev/signet/httpsig"
)

type keygenOptions struct {
	alg   httpsig.Algorithm
	out   string
	force bool
}

func newKeygenOptions(e *Env, args []string) (*keygenOptions, error) {
	o := &keygenOptions{}
	var alg string
	fs := newFlags(e, "keygen", "--out PREFIX [--alg ed25519]")
	fs.StringVar(&alg, "alg", string(httpsig.AlgEd25519), "algorithm: ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 or hmac-sha256")
	fs.StringVar(&o.out, "out", "", "write PREFIX.key (private) and PREFIX.pub (public) (required)")
	fs.BoolVar(&o.force, "force", false, "overwrite existing files")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", rest[0])
	}
	if o.out == "" {
		return nil, fmt.Errorf("--out is required")
	}
	if o.alg, err = httpsig.ParseAlgorithm(alg); err != nil {
		return nil, fmt.Errorf("--alg: %v", msgOf(err))
	}
	return o, nil
}

func runKeygen(e *Env, args []string) int {
	o, err := newKeygenOptions(e, args)
	if err != nil {
		return parseError(e, "keygen", err)
	}
	priv, pub, err := generateKey(o.alg)
	if err != nil {
		return fail(e, "keygen", err)
	}
	keyFile, pubFile := o.out+".key", o.out+".pub"
	if err := writeNew(keyFile, priv, 0o600, o.force); err != nil {
		return fail(e, "keygen", err)
	}
	if pub == nil {
		fmt.Fprintf(e.Stdout, "wrote %s (an %s shared secret: keep it secret; the server must hold the same secret)\n", keyFile, o.alg)
		return exitOK
	}
	if err := writeNew(pubFile, pub, 0o644, o.force); err != nil {
		os.Remove(keyFile)
		return fail(e, "keygen", err)
	}
	fmt.Fprintf(e.Stdout, "wrote %s (private key: keep it on this client) and %s (public key)\n", keyFile, pubFile)
	fmt.Fprintf(e.Stdout, "register the public key on the server with:\n  signet keys create --owner CLIENT --alg %s --public-key %s\n", o.alg, pubFile)
	return exitOK
}

// generateKey returns a new private key and its public key, PEM-encoded
// (PKCS#8 and SPKI); for hmac-sha256, a base64 secret and no public key.
func generateKey(alg httpsig.Algorithm) (priv, pub []byte, err error) {
	var key crypto.Signer
	switch alg {
	case httpsig.AlgHMACSHA256:
		secret := make([]byte, 32)
		rand.Read(secret)
		return []byte(base64.StdEncoding.EncodeToString(secret) + "\n"), nil, nil
	case httpsig.AlgEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case httpsig.AlgECDSAP256SHA256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case httpsig.AlgECDSAP384SHA384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case httpsig.AlgRSAPSSSHA512, httpsig.AlgRSAV1_5SHA256:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, nil, fmt.Errorf("cannot generate %s keys", alg)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// writeNew writes a file that must not exist yet (unless force), with the
// given mode from the start, and syncs it.
func writeNew(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if force {
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
