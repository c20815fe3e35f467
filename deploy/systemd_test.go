package deploy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const unitFile = "systemd/signet.service"

// needTool returns the path of a program the test needs; without it the
// test skips, or fails under CI=true, where scripts/test installs it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (Debian package %s); CI=true requires it", name, pkg)
		}
		t.Skipf("%s is missing (Debian package %s): skipped", name, pkg)
	}
	return p
}

// unit is a systemd unit file: its directives by section, in order,
// continuation lines joined.
type unit map[string][][2]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section, pending := unit{}, "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			pending += l + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		u[section] = append(u[section], [2]string{k, v})
	}
	return u
}

// get returns the last value of key in section.
func (u unit) get(section, key string) string {
	v := ""
	for _, kv := range u[section] {
		if kv[0] == key {
			v = kv[1]
		}
	}
	return v
}

func (u unit) has(section, key string) bool {
	for _, kv := range u[section] {
		if kv[0] == key {
			return true
		}
	}
	return false
}

// readEnvFile reads KEY=VALUE lines, as systemd's EnvironmentFile= does
// for the plain values the example uses.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

var braced = regexp.MustCompile(`\$\{(\w+)\}`)

// expandCommand expands a command line as systemd does for ExecStart=
// without quotes: ${VAR} in place, and a word that is $VAR alone into the
// words of its value (none if it is empty).
func expandCommand(cmdline string, env map[string]string) []string {
	var argv []string
	for _, w := range strings.Fields(cmdline) {
		if name, ok := strings.CutPrefix(w, "$"); ok && regexp.MustCompile(`^\w+$`).MatchString(name) {
			argv = append(argv, strings.Fields(env[name])...)
			continue
		}
		argv = append(argv, braced.ReplaceAllStringFunc(w, func(m string) string { return env[m[2:len(m)-1]] }))
	}
	return argv
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, in a
// root that has the binary where ExecStart= says, and requires it to say
// nothing; and systemd-analyze security, whose exposure score must stay
// "OK" (at most 2.0 of 10).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd")
	u := readUnit(t, unitFile)
	exe := strings.Fields(u.get("Service", "ExecStart"))[0]
	root := t.TempDir()
	copyFile(t, signetBinary(t), filepath.Join(root, exe), 0o755)
	copyFile(t, unitFile, filepath.Join(root, "etc/systemd/system/signet.service"), 0o644)
	// The targets the unit's default dependencies name.
	sys := "/usr/lib/systemd/system"
	entries, err := os.ReadDir(sys)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".target") {
			copyFile(t, filepath.Join(sys, e.Name()), filepath.Join(root, sys, e.Name()), 0o644)
		}
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, "signet.service").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", unitFile).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for signet.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security said:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", score, out)
	}
	for _, want := range []string{"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallFilter", "StateDirectory", "ReadWritePaths", "LimitNOFILE", "Restart", "TimeoutStopSec"} {
		if !u.has("Service", want) {
			t.Errorf("the unit does not set %s=", want)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnitRuns runs the unit's ExecStart= as systemd would, with the
// example environment file (its paths and addresses moved into the test's
// directory and loopback), a master key credential, and a key store made
// by an operator as README says: the gateway serves, and on SIGTERM lets a
// request in flight finish and exits well within TimeoutStopSec=.
func TestSystemdUnitRuns(t *testing.T) {
	u := readUnit(t, unitFile)
	env := readEnvFile(t, "systemd/signet.env")
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	drain, err := time.ParseDuration(env["SIGNET_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SIGNET_SHUTDOWN_TIMEOUT: %v", err)
	}
	if stop < drain+5*time.Second {
		t.Errorf("TimeoutStopSec=%v leaves less than 5 s beyond the drain time %v: systemd would kill a draining gateway", stop, drain)
	}
	if !strings.HasPrefix(env["SIGNET_DB"], "/var/lib/signet/") {
		t.Errorf("SIGNET_DB=%s is outside the state directory the unit may write", env["SIGNET_DB"])
	}

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	master := make([]byte, 32)
	rand.Read(master)
	if err := os.WriteFile(filepath.Join(creds, "master.key"), []byte(base64.StdEncoding.EncodeToString(master)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "signet.db")
	_, admin := adminKey(t, []string{"HOME=" + dir}, db, "--master-key-file", filepath.Join(creds, "master.key"))

	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	env["SIGNET_UPSTREAM"] = up.URL
	env["SIGNET_LISTEN"] = "127.0.0.1:0"
	env["SIGNET_ADMIN_LISTEN"] = "127.0.0.1:0"
	env["SIGNET_DB"] = db
	env["CREDENTIALS_DIRECTORY"] = creds
	env["HOME"] = dir
	env["PATH"] = "/usr/bin:/bin"
	argv := expandCommand(u.get("Service", "ExecStart"), env)
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	s := startServe(t, signetBinary(t), argv[1:], environ)

	if code, body := get(t, http.DefaultClient, "http://"+s.admin+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, admin, "http://"+s.addr+"/ok"); code != 200 {
		t.Fatalf("a signed request: %d %s", code, body)
	}
	inFlight := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), stop)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.addr+"/slow", nil)
		resp, err := admin.Do(r)
		if err != nil {
			inFlight <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inFlight <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	select { // the request reaches the upstream
	case <-arrived:
	case msg := <-inFlight:
		t.Fatalf("the slow request ended before reaching the upstream: %s", msg)
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the upstream within 10 s")
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		close(release)
	}()
	took, err := s.stop(t, stop)
	if err != nil {
		t.Fatalf("signet serve exited with %v on SIGTERM", err)
	}
	if got := <-inFlight; got != "200 done" {
		t.Errorf("the request in flight at SIGTERM got %q, want 200 done", got)
	}
	t.Logf("stopped %v after SIGTERM, draining one request", took.Round(time.Millisecond))
}
