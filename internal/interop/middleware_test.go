package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/replay/redis"
)

// nodeServer is clients/js/tools/middleware-server.mjs running: an Express
// app behind the Node.js verifier (@signet/client/server) that answers
// with the request it received.
type nodeServer struct {
	url string
}

// nodeConfig is the server's configuration ($SIGNET_INTEROP).
type nodeConfig struct {
	Keys  map[string]nodeKey `json:"keys"`
	Now   int64              `json:"now,omitempty"`
	Redis *nodeRedis         `json:"redis,omitempty"`
}

type nodeRedis struct {
	URL    string `json:"url"`
	Prefix string `json:"prefix"`
}

// startNodeServer starts the Node.js server; it needs clients/js's dev
// dependencies (npm ci). Without node or them, the test fails under
// CI=true and is skipped elsewhere.
func startNodeServer(t *testing.T, cfg nodeConfig) *nodeServer {
	t.Helper()
	cc := newCrosscheck(t)
	dir, err := filepath.Abs("../../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "express")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("clients/js has no dev dependencies (npm ci): %v", err)
		}
		t.Skipf("clients/js has no dev dependencies (run npm ci there): %v", err)
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, cc.node, filepath.Join(dir, "tools", "middleware-server.mjs"))
	cmd.Env = append(os.Environ(), "SIGNET_INTEROP="+string(conf))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case u, ok := <-line:
		if !ok {
			t.Fatal("middleware-server.mjs exited before listening")
		}
		return &nodeServer{url: u}
	case <-time.After(30 * time.Second):
		t.Fatal("middleware-server.mjs did not start listening")
	}
	return nil
}

// nodeReceived is what the Node.js server answers for a request it
// accepted.
type nodeReceived struct {
	Method string      `json:"method"`
	Target string      `json:"target"`
	Host   string      `json:"host"`
	Header [][2]string `json:"header"`
	Body   []byte      `json:"body"`
	KeyID  string      `json:"key_id"`
}

// sendNode sends w to the Node.js server and returns its answer: the
// request it received, or why it refused.
func sendNode(hc *http.Client, server string, w wireRequest) (outcome, *nodeReceived, error) {
	req, err := newRequest(w, bytes.NewReader(w.Body))
	if err != nil {
		return outcome{}, nil, err
	}
	req.URL.Host = strings.TrimPrefix(server, "http://")
	resp, err := hc.Do(req)
	if err != nil {
		return outcome{}, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{}, nil, err
	}
	o := outcome{status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusOK:
		var got nodeReceived
		if err := json.Unmarshal(data, &got); err != nil {
			return o, nil, fmt.Errorf("node: %v: %s", err, data)
		}
		o.received = &received{Method: got.Method, Target: got.Target, Host: got.Host, Header: got.Header, Body: got.Body}
		return o, &got, nil
	case resp.Header.Get("Content-Type") == "application/problem+json":
		var p problem
		if err := json.Unmarshal(data, &p); err != nil {
			return o, nil, fmt.Errorf("problem: %v: %s", err, data)
		}
		o.reason, o.detail = p.Type[strings.LastIndexByte(p.Type, '/')+1:], p.Detail
		return o, nil, nil
	}
	return o, nil, fmt.Errorf("node: %s: %s", resp.Status, data)
}

// nodeMethods returns the methods node:http accepts: a request with
// another is refused by its parser before any middleware sees it.
func nodeMethods(t *testing.T, cc *crosscheck) []string {
	t.Helper()
	out, err := exec.Command(cc.node, "-p", `JSON.stringify(require("node:http").METHODS)`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	if err := json.Unmarshal(out, &methods); err != nil {
		t.Fatal(err)
	}
	return methods
}

// startGoMiddleware starts a Go server with middleware.Verify in front of
// echo, with the keys, the clock stopped at now, and nonces in memory.
func startGoMiddleware(t *testing.T, keys []*testKey, nonces httpsig.NonceStore, clock func() time.Time) string {
	t.Helper()
	km := httpsig.KeyMap{}
	for _, k := range keys {
		km[k.id] = k.verify
	}
	verify := middleware.Verify(middleware.Options{Verifier: httpsig.Verifier{Keys: km, Nonces: nonces, Now: clock}})
	srv := httptest.NewServer(verify(http.HandlerFunc(echo)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestMiddlewares runs the Go middleware (middleware.Verify) and the
// Node.js one (createVerifier of @signet/client/server, in Express) side
// by side, over HTTP on 127.0.0.1: requests Go signs must pass the Node.js
// middleware with their target, method and body intact, requests Node.js
// signs must pass the Go middleware, and both must refuse the same
// altered requests for the same reason.
func TestMiddlewares(t *testing.T) {
	cc := newCrosscheck(t)
	seed := envInt(t, "SIGNET_INTEROP_SEED", defaultSeed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e9955bd1e995))
	keys := newKeys(t, rng)
	cfg := nodeConfig{Keys: map[string]nodeKey{}, Now: now}
	for _, k := range keys {
		cfg.Keys[k.id] = nodeKey{Alg: string(k.alg), Key: k.public}
	}
	node := startNodeServer(t, cfg)
	clock := func() time.Time { return time.Unix(now, 0) }
	goURL := startGoMiddleware(t, keys, memory.New(memory.Options{Now: clock}), clock)
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}
	t.Cleanup(hc.CloseIdleConnections)

	accepted := nodeMethods(t, cc)
	all := generate(rng, keys, int(envInt(t, "SIGNET_INTEROP_N", defaultN)), strings.TrimPrefix(node.url, "http://"))
	var cases []testCase
	for _, c := range all {
		if slices.Contains(accepted, c.req.Method) {
			cases = append(cases, c)
		}
	}
	t.Logf("seed %d: %d of %d requests have a method node:http accepts: %s", seed, len(cases), len(all), summary(cases))

	t.Run("GoSignsNodeMiddlewareVerifies", func(t *testing.T) {
		rep := &report{t: t}
		for _, c := range cases {
			signer := &httpsig.Signer{Key: c.key.signer, KeyID: c.key.id, Tag: c.tag, Now: func() time.Time { return time.Unix(created, 0) }}
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
					body = struct{ io.Reader }{body}
				}
			}
			req, err := newRequest(c.req, body)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			req.URL.Host = strings.TrimPrefix(node.url, "http://")
			resp, err := (&http.Client{Transport: &client.Transport{Signer: signer, Base: hc.Transport}}).Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				rep.mismatch("%s: the Node.js middleware refused what Go signed: %s %s\nthe request:\n%s", c.name, resp.Status, data, c.req)
				continue
			}
			var got nodeReceived
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("%s: %v: %s", c.name, err, data)
			}
			if got.Method != c.req.Method || got.Target != c.req.Target || !bytes.Equal(got.Body, c.req.Body) || got.KeyID != c.key.id {
				rep.mismatch("%s: the handler behind the Node.js middleware got %s %s (%d bytes, key %q), not what was sent", c.name, got.Method, got.Target, len(got.Body), got.KeyID)
			}
		}
		rep.done(len(cases))
	})

	t.Run("NodeSignsBothMiddlewaresVerify", func(t *testing.T) {
		lines := make([]any, len(cases))
		for i, c := range cases {
			in := signInput{
				Op: "sign", Request: toNode(c.req), KeyID: c.key.id, Alg: string(c.key.alg), Key: c.key.private,
				Created: created, Nonce: fmt.Sprintf("mw-%03d", i), Components: c.components, Tag: c.tag,
			}
			if c.expires {
				in.Expires = created + 300
			}
			lines[i] = in
		}
		var outs []signOutput
		cc.run(t, lines, &outs)
		rep := &report{t: t}
		for i, c := range cases {
			if outs[i].Error != "" {
				t.Fatalf("%s: Node.js could not sign: %s", c.name, outs[i].Error)
			}
			w := c.req.clone()
			w.Header = append(w.Header, outs[i].Headers...)
			g, err := send(hc, goURL, w)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			n, got, err := sendNode(hc, node.url, w)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			switch {
			case g.received == nil:
				rep.mismatch("%s: the Go middleware refused what Node.js signed: %v\nthe request:\n%s", c.name, g, w)
			case n.received == nil:
				rep.mismatch("%s: the Node.js middleware refused what Node.js signed: %v\nthe request:\n%s", c.name, n, w)
			case !bytes.Equal(g.received.Body, c.req.Body) || g.received.Target != c.req.Target:
				rep.mismatch("%s: the Go handler got %s (%d bytes)", c.name, g.received.Target, len(g.received.Body))
			case !bytes.Equal(got.Body, c.req.Body) || got.Target != c.req.Target:
				rep.mismatch("%s: the Node.js handler got %s (%d bytes)", c.name, got.Target, len(got.Body))
			}
		}
		rep.done(len(cases))
	})

	t.Run("Tampered", func(t *testing.T) {
		// Each altered request carries a signature of its own, so that
		// neither side has seen its nonce: the refusal is about the
		// alteration, whatever order the checks run in.
		const copies = 2
		lines := make([]any, 0, copies*len(cases))
		for i, c := range cases {
			for n := range copies {
				in := signInput{
					Op: "sign", Request: toNode(c.req), KeyID: c.key.id, Alg: string(c.key.alg), Key: c.key.private,
					Created: created, Nonce: fmt.Sprintf("tp-%03d-%d", i, n), Components: c.components, Tag: c.tag,
				}
				if c.expires {
					in.Expires = created + 300
				}
				lines = append(lines, in)
			}
		}
		var outs []signOutput
		cc.run(t, lines, &outs)
		rep := &report{t: t}
		used := map[string]int{}
		total := 0
		for i, c := range cases {
			for n, k := range []int{i % len(tampers), rng.IntN(len(tampers))} {
				out := outs[copies*i+n]
				if out.Error != "" {
					t.Fatalf("%s: Node.js could not sign: %s", c.name, out.Error)
				}
				for j := range len(tampers) {
					tp := tampers[(k+j)%len(tampers)]
					w := c.req.clone()
					w.Header = append(w.Header, out.Headers...)
					want, ok := tp.apply(&w, &c, keys)
					if !ok || !slices.Contains(accepted, w.Method) {
						continue
					}
					g, err := send(hc, goURL, w)
					if err != nil {
						t.Fatalf("%s, %s: %v", c.name, tp.name, err)
					}
					n, _, err := sendNode(hc, node.url, w)
					if err != nil {
						t.Fatalf("%s, %s: %v", c.name, tp.name, err)
					}
					used[tp.name]++
					total++
					switch {
					case want == "":
						if g.received == nil || n.received == nil {
							rep.mismatch("%s, %s: an equivalent message was refused: Go %v, Node.js %v\nthe request:\n%s", c.name, tp.name, g, n, w)
						}
					case g.received != nil || n.received != nil:
						rep.mismatch("%s, %s: accepted (Go %v, Node.js %v)\nthe request:\n%s", c.name, tp.name, g, n, w)
					case g.reason != n.reason || g.status != n.status:
						rep.mismatch("%s, %s: Go refuses with %d %s (%s), Node.js with %d %s (%s)\nthe request:\n%s", c.name, tp.name, g.status, g.reason, g.detail, n.status, n.reason, n.detail, w)
					case n.reason != string(want):
						rep.mismatch("%s, %s: both refuse with %s, want %s", c.name, tp.name, n.reason, want)
					}
					break
				}
			}
		}
		for _, tp := range tampers {
			// node:http parses only upper-case methods of its list.
			if used[tp.name] == 0 && tp.name != "method case" {
				t.Errorf("no request could be altered by %q", tp.name)
			}
		}
		rep.done(total)
	})
}

// TestMiddlewaresShareRedis has the Go middleware (with replay/redis) and
// the Node.js one (with RedisNonceStore) keep their nonces in the same
// Redis under the same prefix: a request one accepted is a replay at the
// other, whichever signed it.
func TestMiddlewaresShareRedis(t *testing.T) {
	cc := newCrosscheck(t)
	prefix := testenv.RedisPrefix(t)
	url := testenv.RequireRedis(t)
	ctx := context.Background()
	if _, err := redis.Init(ctx, url, redis.Options{KeyPrefix: prefix}); err != nil {
		t.Fatal(err)
	}
	store, err := redis.New(url, redis.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	keys := newKeys(t, rng)
	cfg := nodeConfig{Keys: map[string]nodeKey{}, Redis: &nodeRedis{URL: url, Prefix: prefix}}
	for _, k := range keys {
		cfg.Keys[k.id] = nodeKey{Alg: string(k.alg), Key: k.public}
	}
	node := startNodeServer(t, cfg)
	goURL := startGoMiddleware(t, keys, store, nil)
	hc := &http.Client{}
	t.Cleanup(hc.CloseIdleConnections)

	req := wireRequest{Method: "POST", Target: "/v1/orders?customer=42", Host: "api.example.com",
		Header: [][2]string{{"Content-Type", "application/json"}}, Body: []byte(`{"sku":"A-1"}`)}
	for _, k := range keys {
		// Go signs; the Go middleware accepts; the Node.js one has seen it.
		signer := &httpsig.Signer{Key: k.signer, KeyID: k.id}
		r, err := newRequest(req, bytes.NewReader(req.Body))
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.SignRequest(r, req.Body); err != nil {
			t.Fatal(err)
		}
		w := req.clone()
		for name, vs := range r.Header {
			if !slices.ContainsFunc(w.Header, func(f [2]string) bool { return strings.EqualFold(f[0], name) }) {
				for _, v := range vs {
					w.Header = append(w.Header, [2]string{name, v})
				}
			}
		}
		g, err := send(hc, goURL, w)
		if err != nil || g.received == nil {
			t.Fatalf("%s: the Go middleware: %v %v", k.id, g, err)
		}
		n, _, err := sendNode(hc, node.url, w)
		if err != nil || n.reason != string(httpsig.ReasonReplayed) {
			t.Fatalf("%s: the Node.js middleware took a request the Go one accepted: %v %v", k.id, n, err)
		}

		// Node.js signs; the Node.js middleware accepts; the Go one has seen it.
		var outs []signOutput
		cc.run(t, []any{signInput{Op: "sign", Request: toNode(req), KeyID: k.id, Alg: string(k.alg), Key: k.private,
			Created: time.Now().Unix(), Nonce: "shared-" + k.id}}, &outs)
		if outs[0].Error != "" {
			t.Fatal(outs[0].Error)
		}
		w = req.clone()
		w.Header = append(w.Header, outs[0].Headers...)
		n, _, err = sendNode(hc, node.url, w)
		if err != nil || n.received == nil {
			t.Fatalf("%s: the Node.js middleware: %v %v", k.id, n, err)
		}
		g, err = send(hc, goURL, w)
		if err != nil || g.reason != string(httpsig.ReasonReplayed) {
			t.Fatalf("%s: the Go middleware took a request the Node.js one accepted: %v %v", k.id, g, err)
		}
	}
}
