package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/httpmsg"
)

type signOptions struct {
	keyID, alg, keyFile string
	components          string
	created, expires    int64
	nonce               string
	noNonce, noAlg      bool
	label, tag          string
	scheme              string
	digest              string
}

func newSignOptions(e *Env, args []string) (*signOptions, error) {
	o := &signOptions{}
	fs := newFlags(e, "sign", "--key-id ID --key FILE [--alg ALG] [flags] < request.http")
	fs.StringVar(&o.keyID, "key-id", "", "keyid of the signing key (required)")
	fs.StringVar(&o.alg, "alg", "", "algorithm: hmac-sha256, ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 (inferred from the key file when it can be)")
	fs.StringVar(&o.keyFile, "key", "", "key file: base64 HMAC secret, PEM or JWK private key (required)")
	fs.StringVar(&o.components, "components", "", `components to cover, e.g. "@method @path content-digest" (default: the Signet profile)`)
	fs.Int64Var(&o.created, "created", 0, "created time, Unix seconds (default: now)")
	fs.Int64Var(&o.expires, "expires", 0, "expires time, Unix seconds (default: none)")
	fs.StringVar(&o.nonce, "nonce", "", "nonce (default: 128 random bits)")
	fs.BoolVar(&o.noNonce, "no-nonce", false, "send no nonce")
	fs.BoolVar(&o.noAlg, "no-alg", false, "send no alg parameter (the verifier knows the key's algorithm)")
	fs.StringVar(&o.label, "label", httpsig.DefaultLabel, "signature label")
	fs.StringVar(&o.tag, "tag", "", "tag parameter")
	fs.StringVar(&o.scheme, "scheme", "https", "scheme of an origin-form request: https or http")
	fs.StringVar(&o.digest, "digest", "sha-256", "Content-Digest algorithm: sha-256 or sha-512")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(rest) > 0:
		return nil, fmt.Errorf("unexpected argument %q (the request is read on stdin)", rest[0])
	case o.keyID == "":
		return nil, fmt.Errorf("--key-id is required")
	case o.keyFile == "":
		return nil, fmt.Errorf("--key is required")
	case o.scheme != "https" && o.scheme != "http":
		return nil, fmt.Errorf("--scheme must be https or http")
	case o.nonce != "" && o.noNonce:
		return nil, fmt.Errorf("--nonce and --no-nonce contradict each other")
	case o.digest != "sha-256" && o.digest != "sha-512":
		return nil, fmt.Errorf("--digest must be sha-256 or sha-512")
	}
	return o, nil
}

func runSign(e *Env, args []string) int {
	o, err := newSignOptions(e, args)
	if err != nil {
		return parseError(e, "sign", err)
	}
	key, err := loadSigningKey(o.alg, o.keyFile)
	if err != nil {
		return usageError(e, "sign", "%v", err)
	}
	msg, err := readMessage(e, o.scheme)
	if err != nil {
		return fail(e, "sign", err)
	}
	if msg.Request == nil {
		return fail(e, "sign", fmt.Errorf("stdin holds a response, not a request"))
	}
	r := msg.Request
	set := http.Header{}
	if existing := r.Header.Values("Content-Digest"); len(existing) > 0 {
		// Keep the sender's digest, but never sign one that is wrong.
		if err := httpsig.CheckContentDigest(strings.Join(existing, ", "), msg.Body); err != nil {
			return fail(e, "sign", fmt.Errorf("the request's Content-Digest does not match its body"))
		}
	} else if len(msg.Body) > 0 {
		d, err := httpsig.ContentDigest(httpsig.DigestAlgorithm(o.digest), msg.Body)
		if err != nil {
			return fail(e, "sign", err)
		}
		r.Header.Set("Content-Digest", d)
		set.Set("Content-Digest", d)
	}
	p := httpsig.Params{KeyID: o.keyID, Tag: o.tag, Nonce: o.nonce}
	if !o.noAlg {
		p.Alg = key.Algorithm()
	}
	if o.components != "" {
		if p.Components, err = httpsig.ParseComponents(o.components); err != nil {
			return usageError(e, "sign", "--components: %v", err)
		}
	} else {
		p.Components = httpsig.DefaultComponents(r, len(msg.Body) > 0)
	}
	p.Created = time.Unix(o.created, 0)
	if o.created == 0 {
		p.Created = time.Unix(e.Now().Unix(), 0)
	}
	if o.expires != 0 {
		p.Expires = time.Unix(o.expires, 0)
	}
	if p.Nonce == "" && !o.noNonce {
		p.Nonce = httpsig.NewNonce()
	}
	m := &httpsig.Message{Request: r} // the URL carries the scheme
	if err := httpsig.SignMessage(m, o.label, &p, key); err != nil {
		return fail(e, "sign", err)
	}
	set["Signature-Input"] = r.Header["Signature-Input"]
	set["Signature"] = r.Header["Signature"]
	if err := msg.Write(e.Stdout, set); err != nil {
		return fail(e, "sign", err)
	}
	return exitOK
}

func isHelp(err error) bool { return flagExit(err) == exitOK }

// readMessage reads a raw HTTP message on stdin.
func readMessage(e *Env, scheme string) (*httpmsg.Message, error) {
	data, err := io.ReadAll(io.LimitReader(e.Stdin, httpmsg.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("no HTTP message on stdin")
	}
	return httpmsg.Read(data, scheme)
}

// readKeyFile reads a key file, refusing one too large to be a key.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return data, nil
}

func loadSigningKey(alg, path string) (httpsig.SigningKey, error) {
	a, err := optionalAlg(alg)
	if err != nil {
		return nil, err
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := httpsig.LoadSigningKey(a, data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %v", path, msgOf(err))
	}
	return k, nil
}

func loadVerifyingKey(alg, path string) (httpsig.VerifyingKey, error) {
	a, err := optionalAlg(alg)
	if err != nil {
		return nil, err
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := httpsig.LoadVerifyingKey(a, data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %v", path, msgOf(err))
	}
	return k, nil
}

func optionalAlg(alg string) (httpsig.Algorithm, error) {
	if alg == "" {
		return "", nil
	}
	a, err := httpsig.ParseAlgorithm(alg)
	if err != nil {
		return "", fmt.Errorf("--alg: %v", msgOf(err))
	}
	return a, nil
}
