package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/internal/testtime"
)

// buildSignet builds the signet command into a directory of the test's.
func buildSignet(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the signet binary")
	}
	bin := filepath.Join(t.TempDir(), "signet")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/signet-dev/signet/cmd/signet").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a signet serve process.
type proc struct {
	cmd   *exec.Cmd
	logs  *syncBuffer
	addrs struct {
		Addr      string `json:"addr"`
		AdminAddr string `json:"admin_addr"`
	}
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// startProc runs the signet binary's serve with args on free loopback
// ports and waits until it listens. It is killed at the end of the test if
// it is still running.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	p.cmd.Stderr = p.logs
	p.cmd.Env = append(os.Environ(), "SIGNET_MASTER_KEY=", "SIGNET_DB=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	for deadline := time.Now().Add(20 * time.Second); p.addrs.Addr == ""; {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, `"msg":"signet serve listening"`) {
				json.Unmarshal([]byte(line), &p.addrs)
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("serve exited: %v\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", p.logs)
		}
	}
	return p
}

// wait returns the exit code, or fails the test after d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("serve still running %s after SIGTERM:\n%s", d, p.logs)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// heldBackend is an upstream whose /slow requests wait for release.
func heldBackend(t *testing.T) (u string, arrived chan string, release chan struct{}) {
	arrived, release = make(chan string, 16), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			arrived <- r.URL.Path
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, arrived, release
}

// newClientKey makes a key in a new SQLite file and returns the file and
// a client that signs with the key.
func newClientKey(t *testing.T) (db string, c *http.Client) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme", "--json")
	if code != 0 {
		t.Fatalf("keys create: %s", stderr)
	}
	var created struct {
		Key    struct{ ID string }
		Secret string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "acme.key")
	os.WriteFile(keyFile, []byte(created.Secret), 0o600)
	tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db, &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestServeGracefulShutdown sends SIGTERM to a running signet serve with a
// request in flight: /healthz turns 503 "draining" while requests are
// still served, the request in flight completes, and the exit code is 0.
func TestServeGracefulShutdown(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	up, arrived, release := heldBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", db, "--drain", "2s", "--shutdown-timeout", "10s")
	base := "http://" + p.addrs.Addr

	inFlight := make(chan string, 1)
	go func() {
		code, body, err := get(c, base+"/v1/slow")
		if err != nil {
			body = err.Error()
		}
		inFlight <- http.StatusText(code) + ": " + body
	}()
	<-arrived
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "/healthz to say draining", func() bool {
		code, body, err := get(http.DefaultClient, "http://"+p.addrs.AdminAddr+"/healthz")
		return err == nil && code == 503 && strings.Contains(body, `"draining"`)
	})
	if code, body, err := get(c, base+"/v1/during-drain"); err != nil || code != 200 {
		t.Fatalf("a request during the drain: %d %q %v", code, body, err)
	}
	close(release)
	if got := <-inFlight; got != "OK: done /v1/slow" {
		t.Fatalf("the request in flight: %s", got)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.logs)
	}
	logs := p.logs.String()
	for _, want := range []string{`"msg":"draining before shutdown"`, `"msg":"stopped","requests_cut":0`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}

// TestServeShutdownCutsRequests: requests still running when
// --shutdown-timeout expires are cut and logged (method, path, request id,
// never the query), and the exit code is still 0: the shutdown was
// orderly.
func TestServeShutdownCutsRequests(t *testing.T) {
	bin := buildSignet(t)
	db, c := newClientKey(t)
	up, arrived, _ := heldBackend(t)
	p := startProc(t, bin, "--upstream", up, "--db", db, "--drain", "0", "--shutdown-timeout", "300ms")
	cut := make(chan error, 1)
	go func() {
		r, _ := http.NewRequest("GET", "http://"+p.addrs.Addr+"/v1/files/slow?X-Amz-Signature=s3cr3t", nil)
		r.Header.Set("X-Request-Id", "req-cut-1")
		resp, err := c.Do(r)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cut <- err
	}()
	<-arrived
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.logs)
	}
	if err := <-cut; err == nil {
		t.Error("the cut request got a whole response")
	}
	var entry struct {
		Level, Msg, Method, Path string
		RequestID                string `json:"request_id"`
	}
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "request cut by shutdown") {
			json.Unmarshal(sc.Bytes(), &entry)
		}
	}
	if entry.Level != "WARN" || entry.Method != "GET" || entry.Path != "/v1/files/slow" || entry.RequestID != "req-cut-1" {
		t.Fatalf("cut request logged as %+v:\n%s", entry, p.logs)
	}
	if strings.Contains(p.logs.String(), "s3cr3t") {
		t.Fatalf("the query reached the log:\n%s", p.logs)
	}
}

// TestServeCannotListen: a port already taken is a failure to start,
// exit 1.
func TestServeCannotListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	db, _ := newClientKey(t)
	code, _, stderr := run(t, "", "serve", "--upstream", "http://127.0.0.1:1", "--db", db, "--listen", ln.Addr().String(), "--admin-listen", "127.0.0.1:0")
	if code != exitRefused || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d with the port taken: %s", code, stderr)
	}
}

// eventually polls cond until it holds, or fails the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testtime.Eventually(t, d, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}
