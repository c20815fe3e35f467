package cli

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/httpmsg"
)

type presignOptions struct {
	keyID, keyFile, alg string
	method              string
	expires             time.Duration
	singleUse           bool
	created             int64
	nonce               string
	label               string
	url                 string
}

func newCmdPresign(e *Env, runF func(*presignOptions) error) *cobra.Command {
	o := &presignOptions{}
	cmd := &cobra.Command{
		Use:   "presign --key-id ID --key FILE [--expires 15m] [--single-use] [-X METHOD] URL",
		Short: "Print a presigned URL, which works without a signature in the header fields",
		Long: "Print URL with a signature in its query (the parameters signet-input and signet-sig),\n" +
			"for a client that cannot sign: a browser's <img>, <a href> or WebSocket. The\n" +
			"signature covers the method, the host, the path and the rest of the query, and\n" +
			"expires; with --single-use the server accepts it once. See docs/presigned-urls.md.",
		Args: func(cmd *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return usageErrorf("a URL is required")
			case 1:
				return nil
			}
			return usageErrorf("unexpected argument %q (one URL only)", args[1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.url = args[0]
			o.keyID = fromEnv(e, o.keyID, keyIDEnv)
			o.keyFile = fromEnv(e, o.keyFile, keyFileEnv)
			switch {
			case o.keyID == "":
				return usageErrorf("--key-id is required (or set %s)", keyIDEnv)
			case o.keyFile == "":
				return usageErrorf("--key is required (or set %s)", keyFileEnv)
			case o.expires <= 0:
				return usageErrorf("--expires must be positive, e.g. 15m")
			case !httpmsg.IsToken(o.method):
				return usageErrorf("-X %q is not an HTTP method", o.method)
			case o.nonce != "":
				o.singleUse = true
			}
			if runF != nil {
				return runF(o)
			}
			return presignRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyID, "key-id", "", "keyid `ID` of the signing key (default $"+keyIDEnv+")")
	f.StringVar(&o.keyFile, "key", "", "key `FILE`: base64 HMAC secret, PEM or JWK private key (default $"+keyFileEnv+")")
	f.StringVar(&o.alg, "alg", "", "algorithm `ALG` of the key (inferred from the key file when it can be)")
	f.StringVarP(&o.method, "request", "X", http.MethodGet, "the one `METHOD` the URL serves")
	f.DurationVar(&o.expires, "expires", 15*time.Minute, "how long the URL stays valid, e.g. `15m`")
	f.BoolVar(&o.singleUse, "single-use", false, "add a nonce: the server accepts the URL once")
	f.Int64Var(&o.created, "created", 0, "created time, `UNIX` seconds (default: now)")
	f.StringVar(&o.nonce, "nonce", "", "nonce `N` of a single-use URL (default: 128 random bits; implies --single-use)")
	f.StringVar(&o.label, "label", httpsig.DefaultLabel, "signature `LABEL`")
	return cmd
}

func presignRun(e *Env, o *presignOptions) error {
	alg, err := parseAlg(o.alg)
	if err != nil {
		return err
	}
	key, err := loadSigningKey(alg, o.keyFile)
	if err != nil {
		return usageError{err}
	}
	now := e.Now
	if o.created != 0 {
		created := time.Unix(o.created, 0)
		now = func() time.Time { return created }
	}
	s := &httpsig.Signer{Key: key, KeyID: o.keyID, Label: o.label, Now: now}
	u, err := s.Presign(o.url, httpsig.PresignOptions{Method: o.method, Expires: o.expires, SingleUse: o.singleUse, Nonce: o.nonce})
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintln(e.Stdout, u)
	return nil
}
