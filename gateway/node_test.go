package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
)

// nodeUpstream is a node:http server that reports, one JSON line per
// request, the target and field lines Node.js parsed.
const nodeUpstream = `
import http from 'node:http';
const srv = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://upstream');
  console.log(JSON.stringify({url: req.url, pathname: u.pathname, hash: u.hash, headers: req.headers, raw: req.rawHeaders}));
  req.resume();
  req.on('end', () => res.end('ok'));
});
srv.listen(0, '127.0.0.1', () => console.log(JSON.stringify({port: srv.address().port})));
`

type nodeSeen struct {
	URL      string            `json:"url"`
	Pathname string            `json:"pathname"`
	Hash     string            `json:"hash"`
	Headers  map[string]string `json:"headers"`
	Raw      []string          `json:"raw"`
	Port     int               `json:"port"`
}

// startNode starts the Node.js upstream and returns its address and what
// it reports. Without node the test fails under CI=true and is skipped
// elsewhere.
func startNode(t *testing.T) (string, <-chan nodeSeen) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed: %v", err)
		}
		t.Skipf("node is needed: %v", err)
	}
	script := filepath.Join(t.TempDir(), "upstream.mjs")
	if err := os.WriteFile(script, []byte(nodeUpstream), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, node, script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	seen := make(chan nodeSeen, 100)
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("node did not start: %v", sc.Err())
	}
	var hello nodeSeen
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil || hello.Port == 0 {
		t.Fatalf("node said %q", sc.Text())
	}
	go func() {
		for sc.Scan() {
			var s nodeSeen
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				seen <- s
			}
		}
	}()
	return fmt.Sprintf("127.0.0.1:%d", hello.Port), seen
}

func receive(t *testing.T, seen <-chan nodeSeen) nodeSeen {
	t.Helper()
	select {
	case s := <-seen:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("node received nothing")
	}
	return nodeSeen{}
}

// TestNodeUpstream: a Node.js upstream acts on what was verified. Node
// keeps a fragment in req.url, so a target with one must never reach it.
func TestNodeUpstream(t *testing.T) {
	addr, seen := startNode(t)

	// Straight to Node.js: the fragment is in req.url, and URL parsing
	// moves the query after it out of the query.
	resp, _ := wiretest.Send(t, addr, "GET /v1/orders/7?x=1#&admin=true HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n")
	direct := receive(t, seen)
	if resp.StatusCode != 200 || direct.URL != "/v1/orders/7?x=1#&admin=true" || direct.Hash != "#&admin=true" {
		t.Fatalf("node without the gateway: %d %+v", resp.StatusCode, direct)
	}

	e := newWireEnv(t, "", func(c *gateway.Config) {
		c.Upstream.Host = addr
		c.Upstream.Path = "/base"
	})
	for _, target := range []string{"/v1/orders/7?x=1#&admin=true", "/v1/orders/7#/../../admin/delete", "/../admin", "/%2e%2e/admin"} {
		raw := e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n")
		if resp, body := wiretest.Send(t, e.addr, raw); resp.StatusCode != 400 || reasonOf(t, resp, body) != "invalid-target" {
			t.Fatalf("%s: %d %s", target, resp.StatusCode, body)
		}
	}
	select {
	case s := <-seen:
		t.Fatalf("node received %+v", s)
	default:
	}

	for _, target := range []string{`/a\b?q="<>`, "/{y}/^`|?z=|&%7B", "/a%2Fb?odd=%zz&&"} {
		raw := e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\nX_Signet_Scopes: admin\r\n\r\n")
		if resp, body := wiretest.Send(t, e.addr, raw); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", target, resp.StatusCode, body)
		}
		s := receive(t, seen)
		if s.URL != "/base"+target {
			t.Errorf("node req.url %q, signed %q", s.URL, target)
		}
		for name := range s.Headers {
			if n := strings.ReplaceAll(name, "_", "-"); strings.HasPrefix(n, "x-signet-") && name != "x-signet-key-id" && name != "x-signet-owner" && name != "x-signet-scopes" {
				t.Errorf("node got the field %q", name)
			}
		}
		if s.Headers["x-signet-scopes"] != "orders:read" {
			t.Errorf("node got scopes %q", s.Headers["x-signet-scopes"])
		}
	}

	// Node keeps only the first of several Content-Type lines; the
	// signature covered them joined, and Node gets that value.
	sg := *e.signer
	sg.Components = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "content-type"}}
	raw := wiretest.Sign(t, &sg, e.host("GET /x HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\n\r\n"))
	if resp, body := wiretest.Send(t, e.addr, raw); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if s := receive(t, seen); s.Headers["content-type"] != "text/plain, application/json" {
		t.Errorf("node content-type %q, verified %q", s.Headers["content-type"], "text/plain, application/json")
	}
}
