package cli

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSecondGatewayRefused: a second signet serve on the SQLite file
// of a running one, without --redis, would keep nonces of its own and
// accept the first one's replays; it refuses to start, and says why.
func TestServeSecondGatewayRefused(t *testing.T) {
	db, _ := newClientKey(t)
	first := startServe(t, "--upstream", "http://127.0.0.1:1", "--db", db)
	defer first.stop(t)
	code, _, stderr := run(t, "", "serve", "--upstream", "http://127.0.0.1:1", "--db", db, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if code != exitRefused || !strings.Contains(stderr, "give each --redis") {
		t.Fatalf("second gateway: exit %d\n%s", code, stderr)
	}
}

// TestServeReplayAcrossRestart sends requests, restarts signet serve, and
// sends them again: after a graceful stop the snapshot remembers them;
// after a SIGKILL the horizon refuses them; either way they are replays.
// Fresh requests pass again once the horizon (--max-skew after the start)
// is behind.
func TestServeReplayAcrossRestart(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	up, _, _ := heldBackend(t)
	args := []string{"--upstream", up, "--db", db, "--drain", "0", "--max-skew", "1s"}

	// send sends a request (the client signs it) and records the bytes
	// that went out, for a replay.
	var sent []*http.Request
	send := func(base string) int {
		r, _ := http.NewRequest("GET", base+"/v1/orders/7", nil)
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && !strings.Contains(string(b), "replayed") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		sent = append(sent, resp.Request)
		return resp.StatusCode
	}
	replay := func(base string, r *http.Request) (int, string) {
		again, _ := http.NewRequest(r.Method, base+r.URL.RequestURI(), nil)
		again.Header = r.Header.Clone()
		again.Host = r.Host
		resp, err := http.DefaultClient.Do(again)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	p := startProc(t, bin, args...)
	base := "http://" + p.addrs.Addr
	if code := send(base); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("graceful stop: exit %d\n%s", code, p.logs)
	}

	p = startProc(t, bin, args...)
	if !strings.Contains(p.logs.String(), "restored the snapshot") {
		t.Errorf("no snapshot restored:\n%s", p.logs)
	}
	base = "http://" + p.addrs.Addr
	// The client signed for the first gateway's address: send the same
	// bytes, Host included, to the new one.
	if code, body := replay(base, sent[0]); code != 401 || !strings.Contains(body, "replayed") {
		t.Fatalf("replay after a graceful restart: %d %s", code, body)
	}
	// The snapshot brings the first gateway's horizon (its start plus
	// --max-skew), which signatures of its first second may predate.
	eventually(t, 10*time.Second, "a fresh request to pass after a graceful restart", func() bool {
		return send(base) == 200
	})
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)

	p = startProc(t, bin, args...)
	if !strings.Contains(p.logs.String(), "did not stop cleanly") {
		t.Errorf("the crash is not logged:\n%s", p.logs)
	}
	base = "http://" + p.addrs.Addr
	for i, r := range sent {
		if code, body := replay(base, r); code != 401 || !strings.Contains(body, "replayed") {
			t.Fatalf("replay %d after a SIGKILL: %d %s", i, code, body)
		}
	}
	eventually(t, 10*time.Second, "fresh requests to pass once the horizon is behind", func() bool {
		return send(base) == 200
	})
}
