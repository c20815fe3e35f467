package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/httpmsg"
)

// maxProblemBytes bounds what is read of a refusal to find its reason.
const maxProblemBytes = 1 << 20

type requestOptions struct {
	method          string
	headers         []string
	data            string
	dataSet         bool
	dataFile        string
	keyID, keyFile  string
	alg             string
	components, tag string
	verbose         bool
	include         bool
	url             *url.URL
	// The gateway's response keys: a file, or the URL of its key set,
	// with pins; and whether its signature is required.
	gatewayKey    string
	gatewayPins   []string
	requireSigned bool
}

func newCmdRequest(e *Env, runF func(*requestOptions) error) *cobra.Command {
	o := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "request [-X METHOD] [-H 'Name: value']... [-d DATA | --data-file FILE] --key-id ID --key FILE [flags] URL",
		Short: "Sign and send a request, like curl",
		Long: "Sign a request and send it, like curl; the response body goes to stdout.\n" +
			"Exit 0 for 2xx and 3xx; 1 otherwise, with the reason code first on stderr when\n" +
			"the server refused the signature.\n\n" +
			"With --gateway-key, the gateway's signature on the response is checked: its header\n" +
			"at once, its content as it streams to stdout. Content that does not match makes\n" +
			"the command exit 1 (digest-mismatch) once it has all been written: do not use\n" +
			"the output then. Only the gateway's own signed refusals correct the clock.",
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
			o.dataSet = cmd.Flags().Changed("data")
			if err := o.complete(e, args[0]); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return requestRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.method, "request", "X", "", "request `METHOD` (default GET, or POST with a body)")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "header field `'Name: value'` to send; repeat for more")
	f.StringVarP(&o.data, "data", "d", "", "body `DATA` to send, as is; @FILE reads it from FILE, @- from stdin (sets Content-Type: application/x-www-form-urlencoded unless -H sets one, as curl does)")
	f.StringVar(&o.dataFile, "data-file", "", "send the content of `FILE` as the body")
	f.StringVar(&o.keyID, "key-id", "", "keyid `ID` of the signing key (default $"+keyIDEnv+")")
	f.StringVar(&o.keyFile, "key", "", "key `FILE`: base64 HMAC secret, PEM or JWK private key (default $"+keyFileEnv+")")
	f.StringVar(&o.alg, "alg", "", "algorithm `ALG` of the key (inferred from the key file when it can be)")
	f.StringVar(&o.components, "components", "", "`COMPONENTS` to cover, e.g. \"@method @path content-digest\" (default: the Signet profile)")
	f.StringVar(&o.tag, "tag", "", "tag parameter `T`")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print the signature base and the header fields sent and received on stderr")
	f.BoolVarP(&o.include, "include", "i", false, "print the response status line and header fields before its body")
	f.StringVar(&o.gatewayKey, "gateway-key", "", "check the gateway's signature on the response with the keys in `FILE` (a JWK set, or a public key), or at a URL (https://gateway/.well-known/signet-keys)")
	f.StringArrayVar(&o.gatewayPins, "gateway-pin", nil, "with --gateway-key URL: accept only the key with this RFC 7638 `THUMBPRINT` (signet thumbprint FILE); repeat for more")
	f.BoolVar(&o.requireSigned, "require-signed-responses", false, "refuse a response without a valid gateway signature (needs --gateway-key)")
	return cmd
}

// complete checks the options and the URL, and fills in the defaults from
// the environment.
func (o *requestOptions) complete(e *Env, rawURL string) error {
	o.keyID = fromEnv(e, o.keyID, keyIDEnv)
	o.keyFile = fromEnv(e, o.keyFile, keyFileEnv)
	switch {
	case o.keyID == "":
		return usageErrorf("--key-id is required (or set %s)", keyIDEnv)
	case o.keyFile == "":
		return usageErrorf("--key is required (or set %s)", keyFileEnv)
	case o.dataSet && o.dataFile != "":
		return usageErrorf("-d and --data-file cannot be used together")
	}
	var err error
	if o.url, err = url.Parse(rawURL); err != nil {
		return usageErrorf("URL: %w", err)
	}
	if (o.url.Scheme != "http" && o.url.Scheme != "https") || o.url.Host == "" {
		return usageErrorf("URL %q must be absolute, http:// or https://", rawURL)
	}
	for _, h := range o.headers {
		name, _, ok := strings.Cut(h, ":")
		if !ok || !httpmsg.IsToken(name) {
			return usageErrorf("-H %q is not 'Name: value'", h)
		}
	}
	switch {
	case o.requireSigned && o.gatewayKey == "":
		return usageErrorf("--require-signed-responses needs --gateway-key")
	case len(o.gatewayPins) > 0 && !isURL(o.gatewayKey):
		return usageErrorf("--gateway-pin applies to a key set fetched from a URL (--gateway-key https://…)")
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// gatewayKeys returns the resolver of the gateway's response keys.
func (o *requestOptions) gatewayKeys() (httpsig.KeyResolver, error) {
	switch {
	case o.gatewayKey == "":
		return nil, nil
	case isURL(o.gatewayKey):
		return &client.JWKS{URL: o.gatewayKey, Pins: o.gatewayPins}, nil
	}
	keys, err := client.LoadGatewayKeys(o.gatewayKey)
	if err != nil {
		return nil, usageError{fmt.Errorf("--gateway-key: %w", err)}
	}
	return keys, nil
}

func requestRun(e *Env, o *requestOptions) error {
	alg, err := parseAlg(o.alg)
	if err != nil {
		return err
	}
	key, err := loadSigningKey(alg, o.keyFile)
	if err != nil {
		return usageError{err}
	}
	signer := &httpsig.Signer{Key: key, KeyID: o.keyID, Tag: o.tag, Now: e.Now}
	if o.components != "" {
		if signer.Components, err = httpsig.ParseComponents(o.components); err != nil {
			return usageError{fmt.Errorf("--components: %w", err)}
		}
	}
	req, err := o.newRequest(e)
	if err != nil {
		return usageError{err}
	}
	var base http.RoundTripper = http.DefaultTransport
	if o.verbose {
		base = &verboseTransport{w: e.Stderr, base: base, label: httpsig.DefaultLabel}
	}
	gatewayKeys, err := o.gatewayKeys()
	if err != nil {
		return err
	}
	t := &client.Transport{Signer: signer, Base: base, GatewayKeys: gatewayKeys, RequireSignedResponses: o.requireSigned}
	hc := &http.Client{
		Transport: t,
		// As curl without -L: a redirection is an answer to show.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if off := t.ClockOffset(req.URL); o.verbose && off != 0 {
		fmt.Fprintf(e.Stderr, "* clock offset learnt from the server's Date: %v\n", off)
	}
	if o.verbose && gatewayKeys != nil {
		if res, ok := client.VerifiedResponse(resp); ok {
			fmt.Fprintf(e.Stderr, "* response signed by the gateway: keyid=%q tag=%q; the content is checked as it is read\n", res.KeyID, res.Tag)
		} else {
			fmt.Fprintln(e.Stderr, "* the response has no valid gateway signature")
		}
	}
	if o.include {
		writeHead(e.Stdout, "", resp.Proto+" "+resp.Status, resp.Header)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		if _, err := io.Copy(e.Stdout, resp.Body); err != nil {
			return fmt.Errorf("reading the response: %w", err)
		}
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	e.Stdout.Write(body)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	return refused(e, o.verbose, resp, body)
}

// newRequest builds the request to send.
func (o *requestOptions) newRequest(e *Env) (*http.Request, error) {
	var body io.Reader
	var size int64
	var getBody func() (io.ReadCloser, error)
	switch {
	case o.dataSet && o.data == "@-":
		body = e.Stdin
	case o.dataSet && strings.HasPrefix(o.data, "@"):
		f, n, reopen, err := openData(o.data[1:])
		if err != nil {
			return nil, err
		}
		body, size, getBody = f, n, reopen
	case o.dataSet:
		body = strings.NewReader(o.data)
	case o.dataFile != "":
		f, n, reopen, err := openData(o.dataFile)
		if err != nil {
			return nil, err
		}
		body, size, getBody = f, n, reopen
	}
	method := o.method
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(e.Context, method, o.url.String(), body)
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	if getBody != nil {
		req.ContentLength, req.GetBody = size, getBody
	}
	for _, h := range o.headers {
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	if o.dataSet && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req, nil
}

// openData opens a file to send. A regular file is sent as a stream, its
// digest computed over a second reading; anything else (a pipe) is read
// into memory by the client.
func openData(path string) (io.Reader, int64, func() (io.ReadCloser, error), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if !fi.Mode().IsRegular() {
		return f, 0, nil, nil
	}
	if fi.Size() == 0 {
		f.Close()
		return http.NoBody, 0, nil, nil
	}
	reopen := func() (io.ReadCloser, error) { return os.Open(path) }
	return f, fi.Size(), reopen, nil
}

// refused returns the error that reports a response that is not a
// success: a refusal, with its reason code first, when it is a Signet
// problem; else its status.
func refused(e *Env, verbose bool, resp *http.Response, body []byte) error {
	var problem struct {
		Type          string `json:"type"`
		Title         string `json:"title"`
		Detail        string `json:"detail"`
		SignatureBase string `json:"signature_base"`
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" || len(body) > maxProblemBytes || json.Unmarshal(body, &problem) != nil || problem.Type == "" {
		return errors.New(resp.Status)
	}
	reason := problem.Type[strings.LastIndexAny(problem.Type, "/#:")+1:]
	detail := problem.Detail
	if detail == "" {
		detail = problem.Title
	}
	if verbose && problem.SignatureBase != "" {
		fmt.Fprintf(e.Stderr, "* the server's signature base:\n%s\n", problem.SignatureBase)
	}
	return &refusal{reason, detail + " (" + resp.Status + ")"}
}

// verboseTransport prints the requests it sends, with their signature
// base, and the heads of the responses, as curl -v does.
type verboseTransport struct {
	w     io.Writer
	base  http.RoundTripper
	label string
}

func (v *verboseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var b bytes.Buffer
	if base, err := signatureBase(r, v.label); err == nil {
		fmt.Fprintf(&b, "* signature base of %s:\n%s\n", v.label, base)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	h := r.Header
	if r.ContentLength > 0 {
		h = h.Clone()
		h.Set("Content-Length", fmt.Sprint(r.ContentLength))
	}
	writeHead(&b, "> ", r.Method+" "+r.URL.RequestURI()+" HTTP/1.1\n> Host: "+host, h)
	v.w.Write(b.Bytes())
	resp, err := v.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b.Reset()
	writeHead(&b, "< ", resp.Proto+" "+resp.Status, resp.Header)
	v.w.Write(b.Bytes())
	return resp, nil
}

// signatureBase rebuilds the signature base of the signature labelled
// label on r, as the signer built it.
func signatureBase(r *http.Request, label string) (string, error) {
	sigs, err := httpsig.ParseSignatures(r.Header)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(sigs, func(s httpsig.Signature) bool { return s.Label == label })
	if i < 0 {
		return "", fmt.Errorf("no signature labelled %s", label)
	}
	base, err := httpsig.SignatureBase(&httpsig.Message{Request: r}, &sigs[i].Params)
	return string(base), err
}

// writeHead writes a start line and header fields, sorted by name, each
// line prefixed, then a line with the prefix alone.
func writeHead(w io.Writer, prefix, start string, h http.Header) {
	fmt.Fprintf(w, "%s%s\n", prefix, start)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, k, v)
		}
	}
	fmt.Fprintln(w, strings.TrimRight(prefix, " "))
}
