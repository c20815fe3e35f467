package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/cli"
	"github.com/signet-dev/signet/internal/gwtest"
)

// presignInput is a presign line of the crosscheck tools.
type presignInput struct {
	Op      string `json:"op"`
	URL     string `json:"url"`
	KeyID   string `json:"keyId"`
	Alg     string `json:"alg"`
	Key     string `json:"key"`
	Method  string `json:"method,omitempty"`
	Expires int    `json:"expires"`
	Created int64  `json:"created"`
	Nonce   string `json:"nonce,omitempty"`
}

type presignOutput struct {
	URL   string `json:"url"`
	Error string `json:"error"`
}

// genTarget makes a path and a query out of what a URL may hold: the
// characters every client sends as written, escapes, empty pieces,
// repeated names, and now and then something that must be refused.
func genTarget(rng *rand.Rand) string {
	const safe = "abcXYZ019-._~!$&()*+,;=:@"
	word := func(chars string, n int) string {
		var b strings.Builder
		for range n {
			switch rng.IntN(12) {
			case 0:
				fmt.Fprintf(&b, "%%%02X", rng.IntN(256))
			default:
				b.WriteByte(chars[rng.IntN(len(chars))])
			}
		}
		return b.String()
	}
	var b strings.Builder
	for range 1 + rng.IntN(3) {
		b.WriteString("/" + strings.NewReplacer("&", "", "=", "").Replace(word(safe, rng.IntN(6))))
	}
	if rng.IntN(5) == 0 {
		return b.String()
	}
	b.WriteByte('?')
	for i := range rng.IntN(5) {
		if i > 0 {
			b.WriteByte('&')
		}
		name := word("abcxyz09-_.~+", 1+rng.IntN(4))
		switch rng.IntN(10) {
		case 0:
			name = "signet-" + []string{"sig", "input", "SIG", "siG2"}[rng.IntN(4)]
		case 1:
			name = ""
		}
		b.WriteString(name)
		if rng.IntN(4) > 0 {
			b.WriteString("=" + strings.ReplaceAll(word(safe+"/?", rng.IntN(8)), "&", "%26"))
		}
	}
	if rng.IntN(15) == 0 {
		b.WriteString([]string{"'", " ", "\"", "#frag", "/../x"}[rng.IntN(5)])
	}
	return b.String()
}

// TestPresignCrossLanguage presigns generated URLs in Go, Node.js, Python
// and with the CLI, which must all make the same URL, byte for byte, or all
// refuse it; then URLs each makes now are used, as a browser would, on a
// gateway that accepts presigned requests.
func TestPresignCrossLanguage(t *testing.T) {
	node, py := newCrosscheck(t), newPythonCheck(t)
	seed := envInt(t, "SIGNET_INTEROP_SEED", defaultSeed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	keys := newKeys(t, rng)
	dir := t.TempDir()

	var lines []any
	for i := range 120 {
		k := keys[i%len(keys)]
		in := presignInput{
			Op: "presign", URL: "https://api.example.com" + genTarget(rng), KeyID: k.id, Alg: string(k.alg), Key: k.private,
			Expires: 1 + rng.IntN(86400), Created: 1700000000 + int64(rng.IntN(1e6)),
		}
		if rng.IntN(3) == 0 {
			in.Nonce = fmt.Sprintf("n-%d", i)
		}
		if rng.IntN(6) == 0 {
			in.Method = []string{"HEAD", "PUT", "DELETE"}[rng.IntN(3)]
		}
		lines = append(lines, in)
	}
	var fromNode, fromPython []presignOutput
	node.run(t, lines, &fromNode)
	py.run(t, lines, &fromPython)
	refused := 0
	for i, l := range lines {
		in := l.(presignInput)
		k := keys[i%len(keys)]
		s := &httpsig.Signer{Key: k.signer, KeyID: k.id, Now: func() time.Time { return time.Unix(in.Created, 0) }}
		fromGo, goErr := s.Presign(in.URL, httpsig.PresignOptions{Method: in.Method, Expires: time.Duration(in.Expires) * time.Second, SingleUse: in.Nonce != "", Nonce: in.Nonce})
		fromCLI, cliErr := presignWithCLI(t, dir, k, in)
		if goErr != nil {
			refused++
			if fromNode[i].Error == "" || fromPython[i].Error == "" || cliErr == nil {
				t.Errorf("%s: Go refuses (%v); Node %q, Python %q, CLI %q (%v)", in.URL, goErr, fromNode[i].URL, fromPython[i].URL, fromCLI, cliErr)
			}
			continue
		}
		if fromNode[i].URL != fromGo || fromPython[i].URL != fromGo || fromCLI != fromGo {
			t.Errorf("%s:\nGo     %s\nNode   %s %s\nPython %s %s\nCLI    %s %v\nreproduce: %s", in.URL, fromGo,
				fromNode[i].URL, fromNode[i].Error, fromPython[i].URL, fromPython[i].Error, fromCLI, cliErr, reproducer(in))
		}
	}
	t.Logf("%d URLs, %d refused by all", len(lines), refused)

	// Live: URLs made now, used as a browser uses them.
	seen := make(chan string, 1)
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(keys), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RequestURI
		io.WriteString(w, "the image")
	})})
	now := time.Now().Unix()
	target := "/v1/img/7.png?size=large&v=2"
	// The same inputs make the same URL in every language: each its own
	// nonce, or the second would be a replay of the first.
	liveLines := func(lang string) []any {
		var live []any
		for _, k := range keys {
			for _, nonce := range []string{"", "once-" + lang} {
				live = append(live, presignInput{Op: "presign", URL: gw.URL + target, KeyID: k.id, Alg: string(k.alg), Key: k.private, Expires: 60, Created: now, Nonce: nonce})
			}
		}
		return live
	}
	live := liveLines("node")
	fromNode, fromPython = nil, nil
	node.run(t, live, &fromNode)
	py.run(t, liveLines("python"), &fromPython)
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for lang, outs := range map[string][]presignOutput{"node": fromNode, "python": fromPython} {
		for i, o := range outs {
			in := live[i].(presignInput)
			if o.Error != "" {
				t.Fatalf("%s: %s", lang, o.Error)
			}
			if s := get(o.URL); s != 200 {
				t.Errorf("%s, %s: %d", lang, o.URL, s)
			} else if got := <-seen; got != target {
				t.Errorf("%s, %s: the API saw %s", lang, o.URL, got)
			}
			want := 200
			if in.Nonce != "" {
				want = 401
			}
			if s := get(o.URL); s != want {
				t.Errorf("%s, %s used again: %d, want %d", lang, o.URL, s, want)
			} else if s == 200 {
				<-seen
			}
			if s := get(strings.Replace(o.URL, "v=2", "v=3", 1)); s != 401 {
				t.Errorf("%s: a parameter changed: %d", lang, s)
			}
		}
	}
	// Expired: made an hour ago for a minute.
	old := presignInput{Op: "presign", URL: gw.URL + target, KeyID: keys[0].id, Alg: string(keys[0].alg), Key: keys[0].private, Expires: 60, Created: now - 3600}
	fromNode = nil
	node.run(t, []any{old}, &fromNode)
	if s := get(fromNode[0].URL); s != 401 {
		t.Errorf("expired: %d", s)
	}
}

// presignWithCLI runs signet presign, in process, for in.
func presignWithCLI(t *testing.T, dir string, k *testKey, in presignInput) (string, error) {
	t.Helper()
	keyFile := filepath.Join(dir, k.id+".key")
	if _, err := os.Stat(keyFile); err != nil {
		if err := os.WriteFile(keyFile, []byte(k.private), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"presign", "--key-id", k.id, "--key", keyFile, "--alg", string(k.alg),
		"--created", fmt.Sprint(in.Created), "--expires", fmt.Sprintf("%ds", in.Expires)}
	if in.Method != "" {
		args = append(args, "-X", in.Method)
	}
	if in.Nonce != "" {
		args = append(args, "--nonce", in.Nonce)
	}
	var out, errOut bytes.Buffer
	e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" },
		Now: time.Now, Context: context.Background()}
	if code := cli.Run(e, append(args, "--", in.URL)); code != 0 {
		return "", fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

func keyMap(keys []*testKey) httpsig.KeyMap {
	m := httpsig.KeyMap{}
	for _, k := range keys {
		m[k.id] = k.verify
	}
	return m
}

// responseInput is a verify_response line of the crosscheck tools.
type responseInput struct {
	Op       string      `json:"op"`
	Request  nodeRequest `json:"request"`
	Response struct {
		Status  int         `json:"status"`
		Headers [][2]string `json:"headers"`
		BodyB64 string      `json:"body_b64,omitempty"`
	} `json:"response"`
	Keys string `json:"keys"`
}

type responseOutput struct {
	OK      bool   `json:"ok"`
	Tag     string `json:"tag"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// exchange is a request as it was sent, and the raw response.
type exchange struct {
	req  *http.Request
	resp *http.Response
	body []byte
}

// TestResponsesCrossLanguage sends signed requests through a gateway that
// signs its responses, records what was sent and received, alters some,
// and checks that Go, Node.js and Python accept and refuse the same
// responses for the same reasons.
func TestResponsesCrossLanguage(t *testing.T) {
	node, py := newCrosscheck(t), newPythonCheck(t)
	seed := envInt(t, "SIGNET_INTEROP_SEED", defaultSeed)
	rng := rand.New(rand.NewPCG(seed, seed^0xfeed))
	keys := newKeys(t, rng)
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(keys), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"):
			var code int
			fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/status/"), &code)
			w.WriteHeader(code)
		case strings.HasPrefix(r.URL.Path, "/big"):
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(bytes.Repeat([]byte{0xa5, 0}, 300_000))
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"path":%q,"got":%d}`, r.URL.Path, len(body))
		}
	})})

	var exchanges []exchange
	record := roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		exchanges = append(exchanges, exchange{r, resp, body})
		return resp, nil
	})
	targets := []string{"/v1/orders/7", "/v1/orders?customer=42&expand=items", "/v1/x?", "/status/204", "/status/404", "/big", "/status/201?a=%20b"}
	for i, target := range targets {
		k := keys[i%len(keys)]
		tr := &client.Transport{Signer: &httpsig.Signer{Key: k.signer, KeyID: k.id}, Base: record}
		method, body := http.MethodGet, ""
		if i%3 == 1 {
			method, body = http.MethodPost, `{"sku":"A-1"}`
		}
		req, _ := http.NewRequest(method, gw.URL+target, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		}
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// An unsigned request: the gateway's own signed refusal.
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/v1/orders/7", nil)
	if _, err := record.RoundTrip(req); err != nil {
		t.Fatal(err)
	}

	var cases []exchange
	var names []string
	for i, x := range exchanges {
		name := fmt.Sprintf("%s %s → %d", x.req.Method, x.req.URL.RequestURI(), x.resp.StatusCode)
		cases = append(cases, x)
		names = append(names, name)
		alter := func(what string, f func(resp *http.Response, body []byte) []byte) {
			resp := *x.resp
			resp.Header = x.resp.Header.Clone()
			cases = append(cases, exchange{x.req, &resp, f(&resp, bytes.Clone(x.body))})
			names = append(names, name+", "+what)
		}
		switch {
		case len(x.body) > 0:
			alter("a byte of the body", func(_ *http.Response, b []byte) []byte { b[len(b)/2] ^= 1; return b })
		case x.resp.StatusCode != http.StatusNoContent:
			// (A fetch Response cannot give a 204 content.)
			alter("content added", func(_ *http.Response, b []byte) []byte { return []byte("x") })
		}
		alter("status", func(r *http.Response, b []byte) []byte { r.StatusCode = 299; return b })
		alter("date", func(r *http.Response, b []byte) []byte {
			r.Header.Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
			return b
		})
		alter("unsigned", func(r *http.Response, b []byte) []byte { r.Header.Del("Signature"); return b })
		other := exchanges[(i+1)%len(exchanges)].req
		cases = append(cases, exchange{other, x.resp, x.body})
		names = append(names, name+", answering another request")
	}

	var lines []any
	var wants []string
	v := &httpsig.ResponseVerifier{Keys: gw.Keys()}
	for _, c := range cases {
		in := responseInput{Op: "verify_response", Request: nodeRequest{Method: c.req.Method, URL: c.req.URL.String(), Headers: headerPairs(c.req.Header)}, Keys: string(gw.JWKS)}
		in.Response.Status = c.resp.StatusCode
		in.Response.Headers = headerPairs(c.resp.Header)
		in.Response.BodyB64 = base64.StdEncoding.EncodeToString(c.body)
		lines = append(lines, in)
		resp := *c.resp
		resp.Request = c.req
		res, err := v.Verify(context.Background(), &resp, c.body)
		want := "ok " + res.Tag
		if err != nil {
			r, _ := httpsig.ReasonOf(err)
			want = string(r)
		}
		wants = append(wants, want)
	}
	for lang, check := range map[string]*crosscheck{"node": node, "python": py} {
		var outs []responseOutput
		check.run(t, lines, &outs)
		for i, o := range outs {
			got := o.Reason
			if o.OK {
				got = "ok " + o.Tag
			}
			if got != wants[i] {
				dump, _ := httputil.DumpResponse(cases[i].resp, false)
				t.Errorf("%s: %s: %s (%s), Go says %s\n%s", lang, names[i], got, o.Message, wants[i], dump)
			}
		}
	}
	t.Logf("%d responses (%d as received, the others altered)", len(cases), len(exchanges))
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func headerPairs(h http.Header) [][2]string {
	out := [][2]string{}
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}
