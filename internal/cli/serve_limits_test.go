package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// okBackend answers 200 to everything.
func okBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// usageTotals runs keys usage --json on db and returns its totals.
func usageTotals(t *testing.T, db string) (accepted int64, refused map[string]int64) {
	t.Helper()
	code, out, stderr := run(t, "", "keys", "usage", "--db", db, "--since", "2h", "--json")
	if code != 0 {
		t.Fatalf("keys usage: %d %s", code, stderr)
	}
	var rep struct {
		Total struct {
			Accepted int64            `json:"accepted"`
			Refused  map[string]int64 `json:"refused"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep.Total.Accepted, rep.Total.Refused
}

// TestServeLimits: signet serve enforces --default-rate and a route's rate
// from the policy file, and writes its usage counts on a graceful stop.
func TestServeLimits(t *testing.T) {
	db, c := newClientKey(t)
	up := okBackend(t)
	cfg := filepath.Join(t.TempDir(), "signet.yaml")
	os.WriteFile(cfg, []byte("upstream: "+up+"\nroutes:\n  - {name: slow, match: /slow/, rate: {limit: 1/m, burst: 1}}\n  - {name: rest, match: /}\n"), 0o644)
	p := startServe(t, "--config", cfg, "--db", db, "--default-rate", "1/min", "--default-burst", "3", "--meter-interval", "1h")
	base := "http://" + p.addrs.Addr
	var codes []int
	for _, path := range []string{"/slow/a", "/slow/b", "/a", "/b", "/c"} {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.Header.Get("RateLimit-Policy") == "" {
			t.Errorf("%s: no RateLimit-Policy", path)
		}
	}
	// /slow/a spends one of the key's three, /slow/b is refused by the
	// route (spending nothing of the key's); /a and /b take the key's last
	// two, and /c is over.
	if want := []int{200, 429, 200, 200, 429}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if resp, _ := http.Get(base + "/a"); resp != nil {
		resp.Body.Close()
	}
	p.stop(t)
	accepted, refused := usageTotals(t, db)
	if accepted != 3 || refused["rate-limited"] != 2 || refused["missing-signature"] != 1 {
		t.Fatalf("counted %d accepted, %v refused; want 3, 2 rate-limited and 1 missing-signature", accepted, refused)
	}
}

// TestServeMeterCrash: a gateway killed between two writes of its counts
// loses only the requests counted since the last write.
func TestServeMeterCrash(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	up := okBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", db, "--drain", "0", "--meter-interval", "500ms")
	base := "http://" + p.addrs.Addr
	send := func(n int) {
		for i := range n {
			code, body, err := get(c, base+"/x")
			if err != nil || code != 200 {
				t.Fatalf("request %d: %d %s %v", i, code, body, err)
			}
		}
	}
	const first, second = 40, 25
	send(first)
	eventually(t, 10*time.Second, "the first counts to be written", func() bool {
		a, _ := usageTotals(t, db)
		return a == first
	})
	send(second)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	accepted, _ := usageTotals(t, db)
	if accepted < first || accepted > first+second {
		t.Fatalf("counted %d after the crash, want %d (all that was written before the second batch) to %d", accepted, first, first+second)
	}
	t.Logf("the crash lost %d of the %d requests made since the last write", first+second-accepted, second)
}
