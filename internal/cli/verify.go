package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

type verifyOptions struct {
	keyID, alg, keyFile string
	maxAge              time.Duration
	now                 int64
	require             optionalString
	params              string
	labels              string
	tag                 string
	explain             bool
	scheme              string
	db, masterKeyFile   string
}

func newVerifyOptions(e *Env, args []string) (*verifyOptions, error) {
	o := &verifyOptions{}
	fs := newFlags(e, "verify", "(--key FILE [--alg ALG] | --db URL) [--key-id ID] [flags] < signed.http")
	fs.StringVar(&o.keyID, "key-id", "", "keyid the signature must name (default: any)")
	fs.StringVar(&o.alg, "alg", "", "algorithm of the key (inferred from the key file when it can be)")
	fs.StringVar(&o.keyFile, "key", "", "key file: base64 HMAC secret, PEM or JWK public (or private) key (required unless --db)")
	fs.DurationVar(&o.maxAge, "max-age", httpsig.DefaultMaxAge, "how old the created time may be; 0 for no limit")
	fs.Int64Var(&o.now, "now", 0, "check as of this Unix time (default: now)")
	fs.Var(&o.require, "require", `components the signature must cover (default: the Signet profile; --require="" for none)`)
	fs.StringVar(&o.params, "params", strings.Join(httpsig.DefaultRequiredParams(), ","), "signature parameters that must be present")
	fs.StringVar(&o.labels, "label", "", "labels of the signatures to check, comma-separated (default: all)")
	fs.StringVar(&o.tag, "tag", "", "check only signatures with this tag")
	fs.BoolVar(&o.explain, "explain", false, "print the signature base that was built")
	fs.StringVar(&o.scheme, "scheme", "https", "scheme of an origin-form request: https or http")
	fs.StringVar(&o.db, "db", "", "instead of --key, look the keyid up in this key store (see signet keys), refusing revoked and expired keys")
	fs.StringVar(&o.masterKeyFile, "master-key-file", "", "with --db: "+masterKeyFileHelp)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(rest) > 0:
		return nil, fmt.Errorf("unexpected argument %q (the request is read on stdin)", rest[0])
	case o.db != "" && (o.keyFile != "" || o.alg != ""):
		return nil, fmt.Errorf("--db and --key/--alg contradict each other: with --db the key store holds the key and its algorithm")
	case o.keyFile == "" && o.db == "":
		return nil, fmt.Errorf("--key is required (or --db to look the key up in the key store)")
	case o.scheme != "https" && o.scheme != "http":
		return nil, fmt.Errorf("--scheme must be https or http")
	case o.maxAge < 0:
		return nil, fmt.Errorf("--max-age must not be negative")
	}
	return o, nil
}

// policy returns the verification policy the options describe.
func (o *verifyOptions) policy() (httpsig.Policy, error) {
	p := httpsig.Policy{MaxAge: o.maxAge, Tag: o.tag, RequiredParams: splitList(o.params)}
	if o.maxAge == 0 {
		p.MaxAge = -1
	}
	if o.require.set {
		cs, err := httpsig.ParseComponents(o.require.v)
		if err != nil {
			return p, fmt.Errorf("--require: %v", msgOf(err))
		}
		p.Required = append([]httpsig.Component{}, cs...)
	}
	if o.labels != "" {
		p.Labels = splitList(o.labels)
	}
	return p, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
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

func runVerify(e *Env, args []string) int {
	o, err := newVerifyOptions(e, args)
	if err != nil {
		return parseError(e, "verify", err)
	}
	policy, err := o.policy()
	if err != nil {
		return usageError(e, "verify", "%v", err)
	}
	var resolver httpsig.KeyResolver
	if o.db != "" {
		r, closeStore, err := storeResolver(e, o.db, o.masterKeyFile, o.keyID)
		if err != nil {
			return fail(e, "verify", err)
		}
		defer closeStore()
		resolver = r
	} else {
		key, err := loadVerifyingKey(o.alg, o.keyFile)
		if err != nil {
			return usageError(e, "verify", "%v", err)
		}
		resolver = oneKey{o.keyID, key}
	}
	msg, err := readMessage(e, o.scheme)
	if err != nil {
		return fail(e, "verify", err)
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
	return reportVerify(e, o.explain, res, err)
}

// reportVerify prints the outcome of a verification: a one-line summary on
// stdout, or the reason code first on stderr; and the base when asked.
func reportVerify(e *Env, explain bool, res httpsig.Result, err error) int {
	var ve *httpsig.VerifyError
	if explain {
		base := res.Base
		if errors.As(err, &ve) {
			base = ve.Base
		}
		if base != "" {
			fmt.Fprintf(e.Stdout, "signature base:\n%s\n", base)
		}
	}
	if err != nil {
		if errors.As(err, &ve) {
			label := ""
			if ve.Label != "" {
				label = " (" + ve.Label + ")"
			}
			fmt.Fprintf(e.Stderr, "%s%s: %s\n", ve.Reason, label, ve.Detail)
			return exitRefused
		}
		return fail(e, "verify", err)
	}
	fmt.Fprintf(e.Stdout, "verified %s: keyid=%q alg=%s created=%s", res.Label, res.KeyID, res.Key.Algorithm(), res.Created.UTC().Format(time.RFC3339))
	if res.Signatures > 1 {
		fmt.Fprintf(e.Stdout, " (all %d signatures verified)", res.Signatures)
	}
	fmt.Fprintln(e.Stdout)
	return exitOK
}
