// Package deploy holds no code: its tests check the operator material
// beside them (the Grafana dashboard, the systemd unit, the container
// image) against a real signet binary built from this tree.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// signetBinary builds ./cmd/signet once per test binary, static as the
// container image has it.
func signetBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signet-deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "signet")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "../cmd/signet")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/signet: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// run runs the signet binary to completion and returns its stdout.
func run(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(signetBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("signet %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// adminKey makes a key store at db with a first admin key, as an operator
// does, and returns its id and a client that signs with it. The key file
// is ops.key in the directory of env's HOME.
func adminKey(t *testing.T, env []string, db string, extra ...string) (string, *http.Client) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "ops.key")
	for _, kv := range env {
		if home, ok := strings.CutPrefix(kv, "HOME="); ok {
			keyFile = filepath.Join(home, "ops.key")
		}
	}
	args := append([]string{"keys", "create", "--db", db, "--owner", "ops", "--scopes", "admin", "--secret-out", keyFile, "--json"}, extra...)
	var created struct{ Key struct{ ID string } }
	if err := json.Unmarshal(run(t, env, args...), &created); err != nil {
		t.Fatal(err)
	}
	return created.Key.ID, adminClient(t, created.Key.ID, keyFile)
}

// adminClient returns a client that signs with the key in keyFile.
func adminClient(t *testing.T, id, keyFile string) *http.Client {
	t.Helper()
	tr, err := client.NewTransport(id, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: tr}
}

// A server is a running signet serve.
type server struct {
	cmd         *exec.Cmd
	addr, admin string        // where it listens
	exited      chan struct{} // closed when it has exited, with err
	err         error
	logMu       sync.Mutex
	log         bytes.Buffer
}

// startServe starts signet with args (a serve command line) and env, and
// waits until it says where it listens. It is stopped at the end of the
// test if still running.
func startServe(t *testing.T, bin string, args, env []string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	s.cmd.Env = env
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.logMu.Lock()
			s.log.Write(append(sc.Bytes(), '\n'))
			s.logMu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "signet serve listening" {
				listening <- line
			}
		}
		io.Copy(io.Discard, stderr)
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("signet serve log:\n%s", s.logText())
		}
	})
	select {
	case line := <-listening:
		s.addr, _ = line["addr"].(string)
		s.admin, _ = line["admin_addr"].(string)
	case <-s.exited:
		t.Fatalf("signet serve exited: %v\n%s", s.err, s.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("signet serve did not start listening within 30 s\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// stop sends SIGTERM and returns how long the server took to exit, and
// its error.
func (s *server) stop(t *testing.T, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		return time.Since(start), s.err
	case <-time.After(limit):
		t.Fatalf("signet serve still running %v after SIGTERM", limit)
		return 0, nil
	}
}

// get fetches url with c and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// newUpstream is the API behind the gateway.
func newUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Signet-Owner"))
	}))
	t.Cleanup(up.Close)
	return up
}
