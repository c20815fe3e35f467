package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/httpmsg"
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
	request             string // the request a response answers
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
			"on stderr when it is refused. With --request FILE, stdin holds a response a Signet\n" +
			"gateway signed, checked against the request it answers (whose signature it covers).",
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
	f.StringVar(&o.keyFile, "key", "", "key `FILE`: base64 HMAC secret, PEM or JWK public (or private) key, or a JWK set (required unless --db)")
	f.DurationVar(&o.maxAge, "max-age", httpsig.DefaultMaxAge, "how old the created time may be, e.g. `300s`; 0 for no limit")
	f.Int64Var(&o.now, "now", 0, "check as of this `UNIX` time (default: now)")
	f.StringVar(&o.require, "require", "", "`COMPONENTS` the signature must cover (default: the Signet profile; --require=\"\" for none)")
	f.StringVar(&o.params, "params", strings.Join(httpsig.DefaultRequiredParams(), ","), "signature `PARAMS` that must be present")
	f.StringVar(&o.labels, "label", "", "`LABELS` of the signatures to check, comma-separated (default: all)")
	f.StringVar(&o.tag, "tag", "", "check only signatures with the tag `T`")
	f.BoolVar(&o.explain, "explain", false, "print the signature base that was built")
	f.StringVar(&o.scheme, "scheme", "https", "`SCHEME` of an origin-form request: https or http")
	f.StringVar(&o.request, "request", "", "the raw request `FILE` that the response on stdin answers, as sent: the response is then checked in the Signet response profile, against it")
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
		if resolver, err = loadVerifyingKeys(alg, o.keyFile, o.keyID); err != nil {
			return usageError{err}
		}
	}
	msg, err := readMessage(e, o.scheme)
	if err != nil {
		return err
	}
	if o.request != "" {
		return verifyResponseRun(e, o, resolver, msg)
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

// verifyResponseRun checks a response against the request it answers, in
// the Signet response profile: a signature with tag signet-gateway or
// signet-response (or --tag) covering the status, the date, content-type
// and content-digest as they apply, and the request's method, path, query
// and signature. Its time is reported, not checked: the response is bound
// to its request.
func verifyResponseRun(e *Env, o *verifyOptions, keys httpsig.KeyResolver, msg *httpmsg.Message) error {
	if msg.Response == nil {
		return usageErrorf("--request: stdin must hold the response that answers it, not a request")
	}
	data, err := os.ReadFile(o.request)
	if err != nil {
		return usageError{fmt.Errorf("--request: %w", err)}
	}
	req, err := httpmsg.Read(data, o.scheme)
	if err != nil {
		return usageError{fmt.Errorf("--request %s: %w", o.request, err)}
	}
	if req.Request == nil {
		return usageErrorf("--request %s holds a response, not a request", o.request)
	}
	msg.Response.Request = req.Request
	v := &httpsig.ResponseVerifier{Keys: keys}
	if o.tag != "" {
		v.Tags = []string{o.tag}
	}
	res, err := v.Verify(e.Context, msg.Response, msg.Body)
	if o.explain {
		if base, berr := responseBase(msg.Response, v.Tags); berr == nil {
			fmt.Fprintf(e.Stdout, "signature base:\n%s\n", base)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "verified %s: keyid=%q alg=%s tag=%q created=%s, answering %s %s\n", res.Label, res.KeyID, res.Key.Algorithm(),
		res.Tag, res.Created.UTC().Format(time.RFC3339), req.Request.Method, req.Request.URL.RequestURI())
	return nil
}

// responseBase rebuilds the signature base of the first response
// signature with one of the tags (the profile's when tags is nil).
func responseBase(resp *http.Response, tags []string) (string, error) {
	if tags == nil {
		tags = []string{httpsig.GatewayTag, httpsig.ResponseTag}
	}
	sigs, err := httpsig.ParseSignatures(resp.Header)
	if err != nil {
		return "", err
	}
	for _, s := range sigs {
		if slices.Contains(tags, s.Params.Tag) {
			base, err := httpsig.SignatureBase(&httpsig.Message{Request: resp.Request, Response: resp}, &s.Params)
			return string(base), err
		}
	}
	return "", errors.New("no response signature")
}

// loadVerifyingKeys reads a key file, or a JWK set (a gateway's response
// keys), whose keys are then found by their kid.
func loadVerifyingKeys(alg httpsig.Algorithm, path, keyID string) (httpsig.KeyResolver, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if set, err := httpsig.ParseJWKS(data); err == nil {
		m := httpsig.KeyMap{}
		for kid, k := range set {
			if keyID == "" || kid == keyID {
				m[kid] = k.VerifyingKey
			}
		}
		return m, nil
	}
	key, err := loadVerifyingKey(alg, path)
	if err != nil {
		return nil, err
	}
	return oneKey{keyID, key}, nil
}
