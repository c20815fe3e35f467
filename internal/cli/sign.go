package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/httpmsg"
)

// Environment defaults of the signing commands.
const (
	keyIDEnv   = "SIGNET_KEY_ID"
	keyFileEnv = "SIGNET_KEY_FILE"
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

func newCmdSign(e *Env, runF func(*signOptions) error) *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign --key-id ID --key FILE [flags] < request.http",
		Short: "Sign a raw HTTP request read on stdin",
		Long: "Sign a raw HTTP/1.1 request read on stdin, and write it back with Content-Digest\n" +
			"(when it has a body), Signature-Input and Signature.",
		Args: noArgs("the request is read on stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.keyID = fromEnv(e, o.keyID, keyIDEnv)
			o.keyFile = fromEnv(e, o.keyFile, keyFileEnv)
			switch {
			case o.keyID == "":
				return usageErrorf("--key-id is required (or set %s)", keyIDEnv)
			case o.keyFile == "":
				return usageErrorf("--key is required (or set %s)", keyFileEnv)
			case o.scheme != "https" && o.scheme != "http":
				return usageErrorf("--scheme must be https or http")
			case o.nonce != "" && o.noNonce:
				return usageErrorf("--nonce and --no-nonce contradict each other")
			case o.digest != "sha-256" && o.digest != "sha-512":
				return usageErrorf("--digest must be sha-256 or sha-512")
			}
			if runF != nil {
				return runF(o)
			}
			return signRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyID, "key-id", "", "keyid `ID` of the signing key (default $"+keyIDEnv+")")
	f.StringVar(&o.keyFile, "key", "", "key `FILE`: base64 HMAC secret, PEM or JWK private key (default $"+keyFileEnv+")")
	f.StringVar(&o.alg, "alg", "", "algorithm `ALG`: hmac-sha256, ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256 (inferred from the key file when it can be)")
	f.StringVar(&o.components, "components", "", "`COMPONENTS` to cover, e.g. \"@method @path content-digest\" (default: the Signet profile)")
	f.Int64Var(&o.created, "created", 0, "created time, `UNIX` seconds (default: now)")
	f.Int64Var(&o.expires, "expires", 0, "expires time, `UNIX` seconds (default: none)")
	f.StringVar(&o.nonce, "nonce", "", "nonce `N` (default: 128 random bits)")
	f.BoolVar(&o.noNonce, "no-nonce", false, "send no nonce")
	f.BoolVar(&o.noAlg, "no-alg", false, "send no alg parameter (the verifier knows the key's algorithm)")
	f.StringVar(&o.label, "label", httpsig.DefaultLabel, "signature `LABEL`")
	f.StringVar(&o.tag, "tag", "", "tag parameter `T`")
	f.StringVar(&o.scheme, "scheme", "https", "`SCHEME` of an origin-form request: https or http")
	f.StringVar(&o.digest, "digest", "sha-256", "Content-Digest algorithm `ALG`: sha-256 or sha-512")
	return cmd
}

func signRun(e *Env, o *signOptions) error {
	alg, err := parseAlg(o.alg)
	if err != nil {
		return err
	}
	key, err := loadSigningKey(alg, o.keyFile)
	if err != nil {
		return usageError{err}
	}
	p := httpsig.Params{KeyID: o.keyID, Tag: o.tag, Nonce: o.nonce}
	if o.components != "" {
		if p.Components, err = httpsig.ParseComponents(o.components); err != nil {
			return usageError{fmt.Errorf("--components: %w", err)}
		}
	}
	msg, err := readMessage(e, o.scheme)
	if err != nil {
		return err
	}
	if msg.Request == nil {
		return fmt.Errorf("stdin holds a response, not a request")
	}
	r := msg.Request
	set := http.Header{}
	if existing := r.Header.Values("Content-Digest"); len(existing) > 0 {
		// Keep the sender's digest, but never sign one that is wrong.
		if err := httpsig.CheckContentDigest(strings.Join(existing, ", "), msg.Body); err != nil {
			return fmt.Errorf("the request's Content-Digest does not match its body")
		}
	} else if len(msg.Body) > 0 {
		d, err := httpsig.ContentDigest(httpsig.DigestAlgorithm(o.digest), msg.Body)
		if err != nil {
			return err
		}
		r.Header.Set("Content-Digest", d)
		set.Set("Content-Digest", d)
	}
	if !o.noAlg {
		p.Alg = key.Algorithm()
	}
	if p.Components == nil {
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
		return err
	}
	set["Signature-Input"] = r.Header["Signature-Input"]
	set["Signature"] = r.Header["Signature"]
	return msg.Write(e.Stdout, set)
}

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
