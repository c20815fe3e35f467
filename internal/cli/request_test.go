package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/memory"
)

// setupRequestServer starts, for each script, the server the request_*
// scripts send to, and sets $SERVER to its URL.
func setupRequestServer(env *testscript.Env) error {
	srv := httptest.NewServer(newRequestServer(env.WorkDir))
	env.Defer(srv.Close)
	env.Setenv("SERVER", srv.URL)
	return nil
}

// newRequestServer returns the handler of the test server: it checks
// signatures as a Signet server does, with the keys in dir (keyid K is the
// public key in K.pub, or the HMAC secret in K.key), and answers a verified
// request with what it received:
//
//	verified KEYID
//	METHOD REQUEST-TARGET
//	content-type: VALUE (when there is one)
//
//	BODY
//
// Paths choose other behaviour:
//
//	/skew/DURATION/...  its clock runs DURATION ahead of the real one
//	/status/CODE        it answers CODE to a verified request
//	/debug/...          its refusals carry the signature base it built
//	/own-expired/...    it answers a verified request as an API behind a
//	                    gateway might: 401 with the gateway's problem type
//	                    for expired, its challenge and a Date of now
func newRequestServer(dir string) http.Handler {
	nonces := memory.New(memory.Options{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var skew time.Duration
		if rest, ok := strings.CutPrefix(r.URL.Path, "/skew/"); ok {
			d, _, _ := strings.Cut(rest, "/")
			var err error
			if skew, err = time.ParseDuration(d); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		now := func() time.Time { return time.Now().Add(skew) }
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v := &httpsig.Verifier{Keys: dirKeys(dir), Nonces: nonces, Now: now, Debug: strings.HasPrefix(r.URL.Path, "/debug/")}
		res, err := v.VerifyRequest(r, body)
		w.Header().Set("Date", now().UTC().Format(http.TimeFormat))
		if err == nil && strings.HasPrefix(r.URL.Path, "/own-expired/") {
			err = &httpsig.VerifyError{Reason: httpsig.ReasonExpired, Detail: "the session has expired"}
		}
		if err != nil {
			var ve *httpsig.VerifyError
			if !errors.As(err, &ve) {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			p, _ := json.Marshal(map[string]any{
				"type": "https://signet.dev/problems/" + string(ve.Reason), "title": string(ve.Reason),
				"status": ve.Reason.Status(), "detail": ve.Detail, "signature_base": ve.Base,
			})
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("WWW-Authenticate", `Signature realm="test"`)
			w.WriteHeader(ve.Reason.Status())
			w.Write(p)
			return
		}
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			n, _ := strconv.Atoi(code)
			if n >= 300 && n < 400 {
				w.Header().Set("Location", "/")
			}
			w.WriteHeader(n)
			fmt.Fprintln(w, http.StatusText(n))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "verified %s\n%s %s\n", res.KeyID, r.Method, r.RequestURI)
		if ct := r.Header.Get("Content-Type"); ct != "" {
			fmt.Fprintf(w, "content-type: %s\n", ct)
		}
		fmt.Fprintf(w, "\n%s", body)
	})
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// dirKeys resolves keyids to the key files in a directory.
type dirKeys string

func (d dirKeys) ResolveKey(_ context.Context, keyID string) (httpsig.VerifyingKey, error) {
	if !keyIDPattern.MatchString(keyID) {
		return nil, httpsig.ErrUnknownKey
	}
	for _, name := range []string{keyID + ".pub", keyID + ".key"} {
		data, err := os.ReadFile(filepath.Join(string(d), name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return httpsig.LoadVerifyingKey("", data)
	}
	return nil, httpsig.ErrUnknownKey
}

func TestRequestOptions(t *testing.T) {
	env := map[string]string{keyIDEnv: "env-id", keyFileEnv: "env.key"}
	for _, tt := range []struct {
		name  string
		env   map[string]string
		args  []string
		err   string
		check func(t *testing.T, o *requestOptions)
	}{
		{name: "minimal", args: []string{"--key-id", "k", "--key", "f", "https://api.example.com/v1"},
			check: func(t *testing.T, o *requestOptions) {
				if o.url.Host != "api.example.com" || o.method != "" || o.dataSet {
					t.Errorf("%+v", o)
				}
			}},
		{name: "flags after the URL", args: []string{"https://a.example/", "--key-id", "k", "--key", "f", "-X", "PATCH", "-H", "A: 1, 2", "-H", "B:2", "-d", "", "-i", "-v"},
			check: func(t *testing.T, o *requestOptions) {
				if o.method != "PATCH" || len(o.headers) != 2 || o.headers[0] != "A: 1, 2" || !o.dataSet || o.data != "" || !o.include || !o.verbose {
					t.Errorf("%+v", o)
				}
			}},
		{name: "long names", args: []string{"--request", "PUT", "--header", "A: 1", "--data", "x", "--include", "--verbose", "--key-id", "k", "--key", "f", "http://a/"},
			check: func(t *testing.T, o *requestOptions) {
				if o.method != "PUT" || len(o.headers) != 1 || o.data != "x" || !o.include || !o.verbose {
					t.Errorf("%+v", o)
				}
			}},
		{name: "key from the environment", env: env, args: []string{"http://a/"},
			check: func(t *testing.T, o *requestOptions) {
				if o.keyID != "env-id" || o.keyFile != "env.key" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "flags over the environment", env: env, args: []string{"--key-id", "k", "--key", "f", "http://a/"},
			check: func(t *testing.T, o *requestOptions) {
				if o.keyID != "k" || o.keyFile != "f" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "no URL", args: []string{"--key-id", "k", "--key", "f"}, err: "a URL is required"},
		{name: "two URLs", args: []string{"--key-id", "k", "--key", "f", "http://a/", "http://b/"}, err: "one URL only"},
		{name: "relative URL", args: []string{"--key-id", "k", "--key", "f", "/v1/orders"}, err: "must be absolute"},
		{name: "ftp URL", args: []string{"--key-id", "k", "--key", "f", "ftp://a.example/"}, err: "must be absolute"},
		{name: "no key id", args: []string{"--key", "f", "http://a/"}, err: "--key-id is required (or set SIGNET_KEY_ID)"},
		{name: "no key", args: []string{"--key-id", "k", "http://a/"}, err: "--key is required (or set SIGNET_KEY_FILE)"},
		{name: "data twice", args: []string{"--key-id", "k", "--key", "f", "-d", "x", "--data-file", "y", "http://a/"}, err: "cannot be used together"},
		{name: "bad header", args: []string{"--key-id", "k", "--key", "f", "-H", "no colon", "http://a/"}, err: "is not 'Name: value'"},
		{name: "bad header name", args: []string{"--key-id", "k", "--key", "f", "-H", "a b: c", "http://a/"}, err: "is not 'Name: value'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(t, newCmdRequest, tt.env, tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}
