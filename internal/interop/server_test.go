package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	signetkeys "github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// startServer starts the Go side of the check on 127.0.0.1 and returns
// its URL: the Signet gateway (default policy, in-memory nonces, the clock
// stopped at now) on a SQLite key store, in front of an upstream that
// answers with the request it received (see echo). The keys are made in
// the store, as an operator would: the HMAC secret comes from the store
// and the Ed25519 public key is registered; keys is updated with the ids
// and secret the store gave.
func startServer(t *testing.T, keys []*testKey) string {
	t.Helper()
	ctx := context.Background()
	clock := func() time.Time { return time.Unix(now, 0) }
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := signetkeys.New(ctx, store, signetkeys.Options{MasterKey: signetkeys.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	for _, k := range keys {
		req := signetkeys.CreateRequest{Owner: "interop", Alg: k.alg, Actor: "interop test"}
		if k.alg != httpsig.AlgHMACSHA256 {
			req.PublicKey = []byte(k.public)
		}
		c, err := ks.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		k.id = c.Key.ID
		if c.Secret != nil {
			hk, err := httpsig.NewHMACKey(c.Secret)
			if err != nil {
				t.Fatal(err)
			}
			k.signer, k.verify = hk, hk
			k.private = base64.StdEncoding.EncodeToString(c.Secret)
			k.public = k.private
		}
	}
	up := httptest.NewServer(http.HandlerFunc(echo))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	g, err := gateway.New(gateway.Config{
		Upstream: upURL,
		Verify:   middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{Now: clock}), Now: clock}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

type problem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// received is what echo answers: the request as the server received it.
type received struct {
	Method string `json:"method"`
	Target string `json:"target"`
	Host   string `json:"host"`
	// Header holds the field lines, by name, each name's lines in the
	// order received.
	Header [][2]string `json:"header"`
	Body   []byte      `json:"body"`
}

func (r *received) wire() wireRequest {
	return wireRequest{Method: r.Method, Target: r.Target, Host: r.Host, Header: r.Header, Body: r.Body}
}

// echo answers with the request it received, as JSON.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	got := received{Method: r.Method, Target: r.RequestURI, Host: r.Host, Body: body}
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[name] {
			got.Header = append(got.Header, [2]string{name, v})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&got)
}

// outcome is a server's answer: what it received when it accepted the
// request, or why it refused.
type outcome struct {
	status   int
	received *received
	reason   string
	detail   string
}

// replayOfBody reports whether the gateway refused as a replay a request
// whose body was altered, which the other side, holding no nonces, refuses
// as it should (want): the gateway spends the nonce before it reads the
// body, and these very headers were accepted before.
func (o outcome) replayOfBody(want httpsig.Reason, other string) bool {
	return o.received == nil && o.reason == string(httpsig.ReasonReplayed) && want == httpsig.ReasonDigestMismatch && other == string(want)
}

func (o outcome) String() string {
	if o.received != nil {
		return fmt.Sprintf("%d accepted", o.status)
	}
	return fmt.Sprintf("%d %s: %s", o.status, o.reason, o.detail)
}

// newRequest returns an http.Request that puts w on the wire byte for byte
// (but for the framing of the body), sent to the server at host.
func newRequest(w wireRequest, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(w.Method, "http://"+w.Host+"/", body)
	if err != nil {
		return nil, err
	}
	path, query, hasQuery := strings.Cut(w.Target, "?")
	// An opaque URL is sent as it is, where a parsed one could be
	// re-encoded.
	req.URL = &url.URL{Scheme: "http", Host: w.Host, Opaque: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	req.Host = w.Host // NewRequest drops an empty port
	for _, f := range w.Header {
		req.Header.Add(f[0], f[1])
	}
	if got := req.URL.RequestURI(); got != w.Target {
		return nil, fmt.Errorf("the request-target would be %q, not %q", got, w.Target)
	}
	return req, nil
}

// send sends w as it is and returns the server's answer.
func send(c *http.Client, server string, w wireRequest) (outcome, error) {
	req, err := newRequest(w, bytes.NewReader(w.Body))
	if err != nil {
		return outcome{}, err
	}
	req.URL.Host = strings.TrimPrefix(server, "http://")
	return roundTrip(c, req)
}

func roundTrip(c *http.Client, req *http.Request) (outcome, error) {
	resp, err := c.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusOK:
		o.received = new(received)
		if err := json.Unmarshal(data, o.received); err != nil {
			return o, fmt.Errorf("echo: %v: %s", err, data)
		}
	case resp.Header.Get("Content-Type") == "application/problem+json":
		var p problem
		if err := json.Unmarshal(data, &p); err != nil {
			return o, fmt.Errorf("problem: %v: %s", err, data)
		}
		o.reason, o.detail = p.Type[strings.LastIndexByte(p.Type, '/')+1:], p.Detail
	default:
		return o, fmt.Errorf("%s: %s", resp.Status, data)
	}
	return o, nil
}

// goBase returns the signature base Go builds for the signature labelled
// sig1 on a received request.
func goBase(w wireRequest) (string, error) {
	h := http.Header{}
	for _, f := range w.Header {
		h.Add(f[0], f[1])
	}
	r := &http.Request{Method: w.Method, RequestURI: w.Target, Host: w.Host, Header: h, URL: &url.URL{}}
	sigs, err := httpsig.ParseSignatures(h)
	if err != nil {
		return "", err
	}
	for _, s := range sigs {
		if s.Label == httpsig.DefaultLabel {
			base, err := httpsig.SignatureBase(&httpsig.Message{Request: r, Scheme: "http"}, &s.Params)
			return string(base), err
		}
	}
	return "", errors.New("no signature labelled sig1")
}
