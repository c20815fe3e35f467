package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
)

type verifyOptions struct {
	keyID, alg, keyFile string
	maxAge              time.Duration
	now                 int64
	require             string
	requireSet          bool
	params              string
	labels              string
	tag                 string
	explain             bool
	scheme              string
	store               storeFlags
	// useStore is set when the key store resolves keyids: --db, or
	// $SIGNET_DB without --key.
	useStore bool
}

func newCmdVerify(e *Env, runF func(*verifyOptions) error) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify (--key FILE [--alg ALG] | --db URL) [--key-id ID] [flags] < signed.http",
		Short: "Verify a signed raw HTTP request read on stdin",
		Long: "Verify the signatures of a raw HTTP/1.1 request (or response) read on stdin.\n" +
			"Exit 0 and a one-line summary when it verifies; exit 1 and the reason code first\n" +
			"on stderr when it is refused.",
		Args: noArgs("the request is read on stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.requireSet = cmd.Flags().Changed("require")
			dbGiven := cmd.Flags().Changed("db")
			o.useStore = dbGiven || (o.keyFile == "" && e.Getenv("SIGNET_DB") != "")
			switch {
			case dbGiven && (o.keyFile != "" || o.alg != ""):
				return usageErrorf("--db and --key/--alg contradict each other: with --db the key store holds the key and its algorithm")
			case o.keyFile == "" && !o.useStore:
				return usageErrorf("--key is required (or --db, or $SIGNET_DB, to look the key up in the key store)")
			case o.scheme != "https" && o.scheme != "http":
				return usageErrorf("--scheme must be https or http")
			case o.maxAge < 0:
				return usageErrorf("--max-age must not be negative")
			}
			if runF != nil {
				return runF(o)
			}
			return verifyRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyID, "key-id", "", "keyid `ID` the signature must name (default: any)")
	f.StringVar(&o.alg, "alg", "", "algorithm `ALG` of the key (inferred from the key file when it can be)")
	f.StringVar(&o.keyFile, "key", "", "key `FILE`: base64 HMAC secret, PEM or JWK public (or private) key (required unless --db)")
	f.DurationVar(&o.maxAge, "max-age", httpsig.DefaultMaxAge, "how old the created time may be, e.g. `300s`; 0 for no limit")
	f.Int64Var(&o.now, "now", 0, "check as of this `UNIX` time (default: now)")
	f.StringVar(&o.require, "require", "", "`COMPONENTS` the signature must cover (default: the Signet profile; --require=\"\" for none)")
	f.StringVar(&o.params, "params", strings.Join(httpsig.DefaultRequiredParams(), ","), "signature `PARAMS` that must be present")
	f.StringVar(&o.labels, "label", "", "`LABELS` of the signatures to check, comma-separated (default: all)")
	f.StringVar(&o.tag, "tag", "", "check only signatures with the tag `T`")
	f.BoolVar(&o.explain, "explain", false, "print the signature base that was built")
	f.StringVar(&o.scheme, "scheme", "https", "`SCHEME` of an origin-form request: https or http")
	f.StringVar(&o.store.db, "db", "", "instead of --key, look the keyid up in this key store `URL` (default $SIGNET_DB, when --key is not given), refusing revoked and expired keys")
	f.StringVar(&o.store.masterKeyFile, "master-key-file", "", "with --db: "+masterKeyFileHelp)
	return cmd
}

// policy returns the verification policy the options describe.
func (o *verifyOptions) policy() (httpsig.Policy, error) {
	p := httpsig.Policy{MaxAge: o.maxAge, Tag: o.tag, RequiredParams: splitList(o.params)}
	if o.maxAge == 0 {
		p.MaxAge = -1
	}
	if o.requireSet {
		cs, err := httpsig.ParseComponents(o.require)
		if err != nil {
			return p, usageError{fmt.Errorf("--require: %w", err)}
		}
		p.Required = append([]httpsig.Component{}, cs...)
	}
	if o.labels != "" {
		p.Labels = splitList(o.labels)
	}
	return p, nil
}

// oneKey resolves every keyid, or just one, to a single key.
type oneKey struct {
	id  string
	key httpsig.VerifyingKey
}

func (k oneKey) ResolveKey(_ context.Context, keyID string) (httpsig.VerifyingKey, error) {
	if k.id != "" && keyID != k.id {
		return nil, httpsig.ErrUnknownKey
	}
	return k.key, nil
}

func verifyRun(e *Env, o *verifyOptions) error {
	policy, err := o.policy()
	if err != nil {
		return err
	}
	var resolver httpsig.KeyResolver
	if o.useStore {
		ks, err := o.store.open(e, mustExist)
		if err != nil {
			return err
		}
		defer ks.Close()
		resolver = ks.Service
		if o.keyID != "" {
			resolver = onlyKeyID{o.keyID, ks.Service}
		}
	} else {
		alg, err := parseAlg(o.alg)
		if err != nil {
			return err
		}
		key, err := loadVerifyingKey(alg, o.keyFile)
		if err != nil {
			return usageError{err}
		}
		resolver = oneKey{o.keyID, key}
	}
	msg, err := readMessage(e, o.scheme)
	if err != nil {
		return err
	}
	now := e.Now()
	if o.now != 0 {
		now = time.Unix(o.now, 0)
	}
	v := &httpsig.Verifier{
		Policy: policy,
		Keys:   resolver,
		Debug:  o.explain,
		Now:    func() time.Time { return now },
	}
	var res httpsig.Result
	if msg.Response != nil {
		res, err = v.VerifyResponse(e.Context, msg.Response, msg.Body)
	} else {
		res, err = v.VerifyRequest(msg.Request, msg.Body)
	}
	if o.explain {
		base := res.Base
		var ve *httpsig.VerifyError
		if errors.As(err, &ve) {
			base = ve.Base
		}
		if base != "" {
			fmt.Fprintf(e.Stdout, "signature base:\n%s\n", base)
		}
	}
	if err != nil {
		return err // a refusal is an *httpsig.VerifyError, reported with its reason
	}
	fmt.Fprintf(e.Stdout, "verified %s: keyid=%q alg=%s created=%s", res.Label, res.KeyID, res.Key.Algorithm(), res.Created.UTC().Format(time.RFC3339))
	if res.Signatures > 1 {
		fmt.Fprintf(e.Stdout, " (all %d signatures verified)", res.Signatures)
	}
	fmt.Fprintln(e.Stdout)
	return nil
}
