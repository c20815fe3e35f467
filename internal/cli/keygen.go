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

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
)

type keygenOptions struct {
	alg   httpsig.Algorithm
	out   string
	force bool
}

func newCmdKeygen(e *Env, runF func(*keygenOptions) error) *cobra.Command {
	o := &keygenOptions{}
	var alg string
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX [--alg ed25519]",
		Short: "Make a key pair for a client (the private key stays with the client)",
		Long: "Make a key pair for a client: PREFIX.key holds the private key (PKCS#8 PEM, mode\n" +
			"0600), PREFIX.pub the public key (SPKI PEM) to register with signet keys create.\n" +
			"For hmac-sha256, PREFIX.key holds a base64 shared secret.",
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return usageErrorf("--out is required")
			}
			var err error
			if o.alg, err = parseAlg(alg); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return keygenRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&alg, "alg", string(httpsig.AlgEd25519), "algorithm `ALG`: ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 or hmac-sha256")
	f.StringVar(&o.out, "out", "", "write `PREFIX`.key (private) and PREFIX.pub (public) (required)")
	f.BoolVar(&o.force, "force", false, "overwrite existing files")
	return cmd
}

func keygenRun(e *Env, o *keygenOptions) error {
	priv, pub, err := generateKey(o.alg)
	if err != nil {
		return err
	}
	keyFile, pubFile := o.out+".key", o.out+".pub"
	if err := writeKeyPairFile(keyFile, priv, 0o600, o.force); err != nil {
		return err
	}
	if pub == nil {
		fmt.Fprintf(e.Stdout, "wrote %s (an %s shared secret: keep it secret; the server must hold the same secret)\n", keyFile, o.alg)
		return nil
	}
	if err := writeKeyPairFile(pubFile, pub, 0o644, o.force); err != nil {
		os.Remove(keyFile)
		return err
	}
	fmt.Fprintf(e.Stdout, "wrote %s (private key: keep it on this client) and %s (public key)\n", keyFile, pubFile)
	fmt.Fprintf(e.Stdout, "register the public key on the server with:\n  signet keys create --owner CLIENT --alg %s --public-key %s\n", o.alg, pubFile)
	return nil
}

func writeKeyPairFile(path string, data []byte, perm os.FileMode, force bool) error {
	err := writeFile(path, data, perm, force)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	return err
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
