package interop

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
)

// newPythonCheck finds a Python 3 that can import the cryptography package
// (SIGNET_PYTHON, else python3 on PATH, else Debian's /usr/bin/python3) and
// clients/python/tools/crosscheck.py, which speaks crosscheck.mjs's
// protocol. Without one the test fails under CI=true and is skipped
// elsewhere.
func newPythonCheck(t *testing.T) *crosscheck {
	t.Helper()
	script, err := filepath.Abs("../../clients/python/tools/crosscheck.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	candidates := []string{os.Getenv("SIGNET_PYTHON"), "python3", "/usr/bin/python3"}
	var tried []string
	for _, c := range candidates {
		if c == "" {
			continue
		}
		path, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, c+": "+err.Error())
			continue
		}
		if out, err := exec.Command(path, "-c", "import cryptography").CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(out)))
			continue
		}
		return &crosscheck{node: path, script: script}
	}
	msg := "a python3 with the cryptography package is needed for the cross-language check (apt-get install python3-cryptography): " + strings.Join(tried, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// optionalNode returns the Node.js side when node is installed, for the
// direct Python × Node.js checks; nil otherwise (TestCrossLanguage then
// reports the missing node, or skips).
func optionalNode(t *testing.T) *crosscheck {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Logf("node not found: Python is checked against Go only here")
		return nil
	}
	script, err := filepath.Abs("../../clients/js/tools/crosscheck.mjs")
	if err != nil {
		t.Fatal(err)
	}
	return &crosscheck{node: node, script: script}
}

// TestCrossLanguagePython signs the generated requests with the Python
// client and verifies them with the Go gateway (over HTTP on 127.0.0.1) and
// Node.js; signs them with the Go client and verifies them with Python;
// checks that Python builds Go's signature bases and, for the same
// parameters, the same fields as Go and Node.js, byte for byte; and that Go,
// Python and Node.js refuse each altered request for the same reason.
func TestCrossLanguagePython(t *testing.T) {
	py := newPythonCheck(t)
	node := optionalNode(t)
	seed := envInt(t, "SIGNET_INTEROP_SEED", defaultSeed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e9955bd1e995))
	keys := newKeys(t, rng)
	server := startServer(t, keys)
	cases := generate(rng, keys, int(envInt(t, "SIGNET_INTEROP_N", defaultN)), strings.TrimPrefix(server, "http://"))
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}
	t.Cleanup(hc.CloseIdleConnections)
	t.Logf("seed %d: %s", seed, summary(cases))

	var signed []wireRequest // by Python, as sent
	t.Run("PythonSignsGoVerifies", func(t *testing.T) {
		signed = pythonSignsGoVerifies(t, py, node, hc, server, keys, cases)
	})
	t.Run("GoSignsPythonVerifies", func(t *testing.T) {
		goSignsPythonVerifies(t, py, hc, server, keys, cases)
	})
	t.Run("Tampered", func(t *testing.T) {
		if len(signed) != len(cases) {
			t.Skip("needs the requests PythonSignsGoVerifies signed")
		}
		tamperedPython(t, py, node, hc, server, keys, cases, signed, rng)
	})
}

// signLine is the crosscheck line that signs c with the given nonce.
func signLine(c testCase, w wireRequest, nonce string) signInput {
	in := signInput{
		Op: "sign", Request: toNode(w), KeyID: c.key.id, Alg: string(c.key.alg), Key: c.key.private,
		Created: created, Nonce: nonce, Components: c.components, Tag: c.tag,
	}
	if c.expires {
		in.Expires = created + 300
	}
	return in
}

func pythonSignsGoVerifies(t *testing.T, py, node *crosscheck, hc *http.Client, server string, keys []*testKey, cases []testCase) []wireRequest {
	lines := make([]any, len(cases))
	for i, c := range cases {
		lines[i] = signLine(c, c.req, fmt.Sprintf("py-%03d", i))
	}
	var outs []signOutput
	py.run(t, lines, &outs)
	// Node.js signs the same requests with the same parameters: both
	// algorithms are deterministic, so the fields must be the same.
	var nodeOuts []signOutput
	if node != nil {
		node.run(t, lines, &nodeOuts)
	}
	rep := &report{t: t}
	signed := make([]wireRequest, len(cases))
	var verifyLines []any
	for i, c := range cases {
		out := outs[i]
		if out.Error != "" {
			rep.mismatch("%s: Python could not sign: %s\nreproduce: %s", c.name, out.Error, reproducer(lines[i]))
			continue
		}
		if node != nil {
			if n := nodeOuts[i]; n.Error != "" || !equalFields(n.Headers, out.Headers) || n.Base != out.Base {
				rep.mismatch("%s: Node.js and Python sign differently\nPython:  %q\nNode.js: %q (%s)\nreproduce: %s", c.name, out.Headers, n.Headers, n.Error, reproducer(lines[i]))
			}
		}
		w := c.req.clone()
		w.Header = append(w.Header, out.Headers...)
		signed[i] = w
		verifyLines = append(verifyLines, verifyLine(w, keys))
		o, err := send(hc, server, w)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if o.received == nil {
			rep.mismatch("%s: Go refused what Python signed: %v\nPython's signature base:\n%s\nreproduce: %s\nthe request:\n%s", c.name, o, out.Base, reproducer(lines[i]), w)
			continue
		}
		if got := o.received.wire(); got.Target != c.req.Target || got.Method != c.req.Method || !bytes.Equal(got.Body, c.req.Body) {
			t.Fatalf("%s: the server received %s %s (%d bytes), not what was sent", c.name, got.Method, got.Target, len(got.Body))
		}
		base, err := goBase(o.received.wire())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if base != out.Base {
			rep.mismatch("%s: signature bases differ\nPython:\n%s\nGo:\n%s", c.name, out.Base, base)
		}
	}
	if node != nil {
		var vs []verifyOutput
		node.run(t, verifyLines, &vs)
		for i, v := range vs {
			if !v.OK {
				rep.mismatch("Node.js refused what Python signed: %s: %s\nreproduce: %s", v.Reason, v.Message, reproducer(verifyLines[i]))
			}
		}
	}
	rep.done(len(cases))
	return signed
}

// equalFields compares field lists, names without regard to case.
func equalFields(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i][0], b[i][0]) || a[i][1] != b[i][1] {
			return false
		}
	}
	return true
}

func goSignsPythonVerifies(t *testing.T, py *crosscheck, hc *http.Client, server string, keys []*testKey, cases []testCase) {
	clock := func() time.Time { return time.Unix(created, 0) }
	var lines []any
	var wires []wireRequest
	for _, c := range cases {
		signer := &httpsig.Signer{Key: c.key.signer, KeyID: c.key.id, Tag: c.tag, Now: clock}
		if c.components != nil {
			comps, err := httpsig.ParseComponents(strings.Join(c.components, " "))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			signer.Components = comps
		}
		if c.expires {
			signer.ExpiresAfter = 300 * time.Second
		}
		var body io.Reader
		if len(c.req.Body) > 0 {
			body = bytes.NewReader(c.req.Body)
			if c.stream {
				body = struct{ io.Reader }{body} // no GetBody: read into memory
			}
		}
		req, err := newRequest(c.req, body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		req.URL.Host = strings.TrimPrefix(server, "http://")
		o, err := roundTrip(&http.Client{Transport: &client.Transport{Signer: signer, Base: hc.Transport}}, req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if o.received == nil {
			t.Fatalf("%s: Go refused what Go signed: %v\nthe request:\n%s", c.name, o, c.req)
		}
		w := o.received.wire()
		wires = append(wires, w)
		lines = append(lines, verifyLine(w, keys))

		// Python signs the received request again with the same
		// parameters: the fields must come out as Go's.
		sigs, err := httpsig.ParseSignatures(toHeader(w.Header))
		if err != nil || len(sigs) != 1 {
			t.Fatalf("%s: the received signature: %v", c.name, err)
		}
		p := sigs[0].Params
		unsigned := w.clone()
		unsigned.del("Signature")
		unsigned.del("Signature-Input")
		in := signInput{
			Op: "sign", Request: toNode(unsigned), KeyID: c.key.id, Alg: string(c.key.alg), Key: c.key.private,
			Created: p.Created.Unix(), Nonce: p.Nonce, Tag: p.Tag,
		}
		if !p.Expires.IsZero() {
			in.Expires = p.Expires.Unix()
		}
		if c.components != nil {
			for _, comp := range p.Components {
				in.Components = append(in.Components, comp.String())
			}
		}
		lines = append(lines, in)
	}
	var outs []struct {
		verifyOutput
		signOutput
	}
	py.run(t, lines, &outs)
	rep := &report{t: t}
	for i, c := range cases {
		w, v, s := wires[i], outs[2*i].verifyOutput, outs[2*i+1].signOutput
		if !v.OK {
			rep.mismatch("%s: Python refused what Go signed: %s: %s\nreproduce: %s", c.name, v.Reason, v.Message, reproducer(lines[2*i]))
			continue
		}
		if s.Error != "" {
			rep.mismatch("%s: Python could not sign what Go signed: %s\nreproduce: %s", c.name, s.Error, reproducer(lines[2*i+1]))
			continue
		}
		base, err := goBase(w)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if base != s.Base {
			rep.mismatch("%s: signature bases differ\nGo:\n%s\nPython:\n%s", c.name, base, s.Base)
			continue
		}
		for _, name := range []string{"Signature-Input", "Signature", "Content-Digest"} {
			var pyValue string
			for _, f := range s.Headers {
				if f[0] == name {
					pyValue = f[1]
				}
			}
			if goValue := strings.Join(w.get(name), ", "); pyValue != goValue {
				rep.mismatch("%s: %s differs\nGo:     %s\nPython: %s", c.name, name, goValue, pyValue)
			}
		}
	}
	rep.done(len(cases))
}

// tamperedPython alters the requests Python signed with the alterations of
// the Node.js check (two per request: one in turn, so that every kind is
// tried, and one at random), and checks that Go (over HTTP), Python and
// Node.js refuse each for the same reason, the one expected.
func tamperedPython(t *testing.T, py, node *crosscheck, hc *http.Client, server string, keys []*testKey, cases []testCase, signed []wireRequest, rng *rand.Rand) {
	type variant struct {
		name string
		want httpsig.Reason
		w    wireRequest
		goes outcome
	}
	var variants []variant
	var lines []any
	used := map[string]int{}
	for i, c := range cases {
		if signed[i].Method == "" {
			continue // Python could not sign it; reported already
		}
		for _, k := range []int{i % len(tampers), rng.IntN(len(tampers))} {
			for j := range len(tampers) {
				tp := tampers[(k+j)%len(tampers)]
				w := signed[i].clone()
				want, ok := tp.apply(&w, &c, keys)
				if !ok {
					continue
				}
				o, err := send(hc, server, w)
				if err != nil {
					t.Fatalf("%s, %s: %v", c.name, tp.name, err)
				}
				used[tp.name]++
				variants = append(variants, variant{name: c.name + ", " + tp.name, want: want, w: w, goes: o})
				lines = append(lines, verifyLine(w, keys))
				break
			}
		}
	}
	var pys, nodes []verifyOutput
	py.run(t, lines, &pys)
	if node != nil {
		node.run(t, lines, &nodes)
	}
	rep := &report{t: t}
	for i, v := range variants {
		p := pys[i]
		if node != nil {
			if n := nodes[i]; n.OK != p.OK || n.Reason != p.Reason {
				rep.mismatch("%s: Python says ok=%v %s (%s), Node.js ok=%v %s (%s)\nreproduce: %s", v.name, p.OK, p.Reason, p.Message, n.OK, n.Reason, n.Message, reproducer(lines[i]))
				continue
			}
		}
		switch {
		case v.want == "":
			// The Go server saw this nonce before, unaltered: replayed
			// means the signature verified, as the nonce is checked last.
			if (v.goes.received == nil && v.goes.reason != string(httpsig.ReasonReplayed)) || !p.OK {
				rep.mismatch("%s: an equivalent message was refused (Go: %v; Python: ok=%v %s)\nthe request:\n%s", v.name, v.goes, p.OK, p.Reason, v.w)
			}
		case v.goes.replayOfBody(v.want, p.Reason):
		case v.goes.received != nil || p.OK:
			rep.mismatch("%s: accepted (Go: %v; Python: ok=%v %s)\nthe request:\n%s", v.name, v.goes, p.OK, p.Reason, v.w)
		case v.goes.reason != p.Reason:
			rep.mismatch("%s: Go refuses with %s (%s), Python with %s (%s)\nreproduce: %s", v.name, v.goes.reason, v.goes.detail, p.Reason, p.Message, reproducer(lines[i]))
		case p.Reason != string(v.want):
			rep.mismatch("%s: all refuse with %s (%s), want %s", v.name, p.Reason, p.Message, v.want)
		}
	}
	for _, tp := range tampers {
		if used[tp.name] == 0 {
			t.Errorf("no request could be altered by %q", tp.name)
		}
	}
	rep.done(len(variants))
}
