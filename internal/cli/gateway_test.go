package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/internal/gwtest"
	"github.com/signet-dev/signet/middleware"
)

// setupGateways starts, for each script, test gateways that sign their
// responses and accept presigned URLs as the Signet gateway will
// (internal/gwtest), knowing the client keys in the script's directory
// (as $SERVER does), and writes their response keys there:
// gateway.jwks (a JWK set) and gateway.pub (PEM).
//
//	$GATEWAY        in time
//	$GATEWAY_AHEAD  its clock 10 minutes ahead
//	$MITM_DATE      $GATEWAY_AHEAD behind a man in the middle who moves
//	                every Date an hour later
//
// Their service answers a verified request with
//
//	verified KEYID
//	METHOD REQUEST-TARGET
//
// and, under /own-expired/, a 401 dressed as the gateway's refusal for an
// expired signature.
func setupGateways(env *testscript.Env) error {
	keys := dirKeys(env.WorkDir)
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/own-expired/") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"type": middleware.DefaultProblemBase + "expired", "status": 401, "detail": "the session has expired"})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "verified %s\n%s %s\n", r.Header.Get(gateway.HeaderKeyID), r.Method, r.RequestURI)
	})
	start := func(name string, skew time.Duration) (*gwtest.Server, string, error) {
		gw, h, err := gwtest.New(gwtest.Config{Keys: keys, Handler: service, Skew: skew})
		if err != nil {
			return nil, "", err
		}
		srv := httptest.NewServer(h)
		env.Defer(srv.Close)
		env.Setenv(name, srv.URL)
		return gw, srv.URL, nil
	}
	gw, _, err := start("GATEWAY", 0)
	if err != nil {
		return err
	}
	_, ahead, err := start("GATEWAY_AHEAD", 10*time.Minute)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(gw.Public)
	if err != nil {
		return err
	}
	if err := os.WriteFile(env.WorkDir+"/gateway.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(env.WorkDir+"/gateway.jwks", gw.JWKS, 0o644); err != nil {
		return err
	}
	env.Setenv("GATEWAY_KID", gw.KeyID)
	u, _ := url.Parse(ahead)
	mitm := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		ModifyResponse: func(r *http.Response) error {
			if d, err := http.ParseTime(r.Header.Get("Date")); err == nil {
				r.Header.Set("Date", d.Add(time.Hour).UTC().Format(http.TimeFormat))
			}
			return nil
		},
	})
	env.Defer(mitm.Close)
	env.Setenv("MITM_DATE", mitm.URL)
	return nil
}

// cmdGet is "get [-status CODE] @URLFILE [OLD NEW]": an unsigned GET, as a
// browser sends, of the URL in URLFILE, with OLD replaced by NEW once;
// the body goes to stdout, and the status must be CODE (default 200).
func cmdGet(ts *testscript.TestScript, neg bool, args []string) {
	want := http.StatusOK
	if len(args) > 1 && args[0] == "-status" {
		fmt.Sscan(args[1], &want)
		args = args[2:]
	}
	if neg || (len(args) != 1 && len(args) != 3) || !strings.HasPrefix(args[0], "@") {
		ts.Fatalf("usage: get [-status CODE] @URLFILE [OLD NEW]")
	}
	u := strings.TrimSpace(ts.ReadFile(args[0][1:]))
	if len(args) == 3 {
		if !strings.Contains(u, args[1]) {
			ts.Fatalf("%q is not in %s", args[1], u)
		}
		u = strings.Replace(u, args[1], args[2], 1)
	}
	resp, err := http.Get(u)
	ts.Check(err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ts.Check(err)
	ts.Stdout().Write(body)
	if resp.StatusCode != want {
		ts.Fatalf("GET %s: %s %s, want %d", u, resp.Status, body, want)
	}
}

// cmdExchange is "exchange KEYID KEYFILE URL REQFILE RESPFILE": a signed
// GET of URL, the request written to REQFILE as sent and the response to
// RESPFILE as received, raw.
func cmdExchange(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 5 {
		ts.Fatalf("usage: exchange KEYID KEYFILE URL REQFILE RESPFILE")
	}
	var sent bytes.Buffer
	t, err := client.NewTransport(args[0], ts.MkAbs(args[1]), roundTrip(func(r *http.Request) (*http.Response, error) {
		dump, err := httputil.DumpRequestOut(r, true)
		if err != nil {
			return nil, err
		}
		sent.Write(dump)
		return http.DefaultTransport.RoundTrip(r)
	}))
	ts.Check(err)
	req, _ := http.NewRequest(http.MethodGet, args[2], nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := t.RoundTrip(req)
	ts.Check(err)
	dump, err := httputil.DumpResponse(resp, true)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), sent.Bytes(), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs(args[4]), dump, 0o644))
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cmdReplace is "replace FILE OLD NEW": OLD replaced by NEW once in FILE.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	data := ts.ReadFile(args[0])
	if !strings.Contains(data, args[1]) {
		ts.Fatalf("%q is not in %s", args[1], args[0])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Replace(data, args[1], args[2], 1)), 0o644))
}
