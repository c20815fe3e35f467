package deploy

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// podman runs podman on a storage of the test's own, so that nothing of
// the machine's images or containers is touched, with what this machine's
// sandbox needs: no cgroup manager of systemd's, runc where crun cannot
// work on hybrid cgroups, and resource limits no higher than the test's
// own (it may not raise them).
type podman struct {
	t    *testing.T
	bin  string
	base []string
	run  []string // flags of every container run or build step
}

func newPodman(t *testing.T) *podman {
	bin := needTool(t, "podman", "podman")
	dir, err := os.MkdirTemp("", "signet-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, bin: bin, base: []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
	}}
	if runc, err := exec.LookPath("runc"); err == nil {
		p.base = append(p.base, "--runtime", runc)
	}
	var nofile, nproc syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	unix.Getrlimit(unix.RLIMIT_NPROC, (*unix.Rlimit)(&nproc))
	p.run = []string{"--network=host",
		fmt.Sprintf("--ulimit=nofile=%d:%d", min(nofile.Cur, 4096), min(nofile.Cur, 4096)),
		fmt.Sprintf("--ulimit=nproc=%d:%d", min(nproc.Cur, 4096), min(nproc.Cur, 4096)),
	}
	t.Cleanup(func() {
		exec.Command(bin, append(p.base, "rm", "--all", "--force")...).Run()
		exec.Command(bin, append(p.base, "rmi", "--all", "--force")...).Run()
		os.RemoveAll(dir)
	})
	return p
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	return exec.Command(p.bin, append(p.base, args...)...)
}

// out runs podman and returns its stdout, failing the test on an error.
func (p *podman) out(stdin io.Reader, args ...string) []byte {
	p.t.Helper()
	c := p.cmd(args...)
	c.Stdin = stdin
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// builderImage makes an image of the Go toolchain this test runs with
// (and CA certificates), to stand for the golang image the Dockerfile
// builds with: no image registry is reachable from these machines.
func (p *podman) builderImage(name string) {
	p.t.Helper()
	goroot := strings.TrimSpace(string(goEnv(p.t, "GOROOT")))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	addTree(p.t, tw, goroot, strings.TrimPrefix(goroot, "/"))
	addTree(p.t, tw, "/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt")
	for _, d := range []string{"tmp", "root"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o1777})
	}
	if err := tw.Close(); err != nil {
		p.t.Fatal(err)
	}
	p.out(&buf, "import",
		"--change", "ENV=PATH="+filepath.Join(goroot, "bin")+":/usr/bin:/bin",
		"--change", "ENV=HOME=/root", "--change", "ENV=GOPATH=/root/go",
		"-", name)
}

func goEnv(t *testing.T, name string) []byte {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(out)
}

// addTree adds the files under path to tw as name.
func addTree(t *testing.T, tw *tar.Writer, path, name string) {
	t.Helper()
	err := filepath.Walk(path, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join(name, rel))
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContainerImage builds deploy/docker/Dockerfile with podman (the
// toolchain image made from this machine's Go, modules from its module
// cache: there is no registry to pull from) and runs the image: it holds
// no shell, runs as an unprivileged user, makes a key store in its volume
// and serves signed traffic, and stops on SIGTERM.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image: not with -short")
	}
	p := newPodman(t)
	// A probe: can a container run here at all?
	probe := filepath.Join(t.TempDir(), "probe")
	copyFile(t, signetBinary(t), probe, 0o755)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	addTree(t, tw, probe, "signet")
	tw.Close()
	p.out(&buf, "import", "-", "localhost/signet-probe")
	if out, err := p.cmd(append(append([]string{"run", "--rm"}, p.run...), "localhost/signet-probe", "/signet", "version")...).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("podman cannot run a container here (CI=true requires it): %v\n%s", err, out)
		}
		t.Skipf("podman cannot run a container on this machine, so the image is not tested: %v\n%s", err, out)
	}

	// Modules come from the module cache, as a read-only file proxy; the
	// build cache is shared with the test's own go build of the binary.
	signetBinary(t)
	if out, err := exec.Command("go", "mod", "download").CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	p.builderImage("localhost/signet-test-go")
	build := append([]string{"build"}, p.run...)
	dockerfile, _ := filepath.Abs("docker/Dockerfile")
	build = append(build, "--file", dockerfile,
		"--build-arg", "GO_IMAGE=localhost/signet-test-go",
		"--build-arg", "GOPROXY=file:///goproxy",
		"--volume", string(goEnv(t, "GOMODCACHE"))+"/cache/download:/goproxy:ro",
		"--volume", string(goEnv(t, "GOCACHE"))+":/root/.cache/go-build",
		"--tag", "localhost/signet:test", "..")
	start := time.Now()
	p.out(nil, build...)
	t.Logf("image built in %v", time.Since(start).Round(time.Second))

	var inspect []struct {
		Config struct {
			User       string
			Entrypoint []string
		}
		Size int64
	}
	if err := json.Unmarshal(p.out(nil, "image", "inspect", "localhost/signet:test"), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	if c := inspect[0].Config; c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/usr/local/bin/signet" {
		t.Errorf("image config: user %q, entrypoint %q", c.User, c.Entrypoint)
	}
	t.Logf("image size %.1f MiB", float64(inspect[0].Size)/(1<<20))
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/busybox"} {
		if out, err := p.cmd(append(append([]string{"run", "--rm", "--entrypoint", sh}, p.run...), "localhost/signet:test", "-c", "id")...).CombinedOutput(); err == nil {
			t.Errorf("the image has a shell at %s: %s", sh, out)
		}
	}

	// A key store in the volume, made by the image as an operator would.
	state := t.TempDir()
	if err := os.Chown(state, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	runArgs := func(args ...string) []string {
		r := append([]string{"run", "--rm"}, p.run...)
		r = append(r, "--volume", state+":/var/lib/signet", "localhost/signet:test")
		return append(r, args...)
	}
	var created struct{ Key struct{ ID string } }
	if err := json.Unmarshal(p.out(nil, runArgs("keys", "create", "--owner", "ops", "--scopes", "admin", "--secret-out", "/var/lib/signet/ops.key", "--json")...), &created); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"signet.db", "signet.master.key", "ops.key"} {
		fi, err := os.Stat(filepath.Join(state, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65532 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: owner %d, mode %v; want 65532, 0600", name, st.Uid, fi.Mode().Perm())
		}
	}
	admin := adminClient(t, created.Key.ID, filepath.Join(state, "ops.key"))

	up := newUpstream(t)
	name := "signet-test-" + fmt.Sprint(os.Getpid())
	args := append([]string{"run", "--rm", "--name", name}, runArgs("serve", "--upstream", up.URL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")[2:]...)
	s := startServe(t, p.bin, append(append([]string{}, p.base...), args...), os.Environ())
	if code, body := get(t, http.DefaultClient, "http://"+s.admin+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, admin, "http://"+s.addr+"/orders"); code != 200 || string(body) != "hello ops" {
		t.Fatalf("a signed request through the container: %d %s", code, body)
	}
	if code, _ := get(t, http.DefaultClient, "http://"+s.addr+"/orders"); code != 401 {
		t.Fatalf("an unsigned request: %d", code)
	}
	if _, err := s.stop(t, 30*time.Second); err != nil {
		t.Fatalf("the container exited with %v on SIGTERM", err)
	}
}
