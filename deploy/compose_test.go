package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/replay/redis"
)

// composeFile is the part of a compose file the test reads.
type composeFile struct {
	Services map[string]struct {
		Build struct {
			Context    string
			Dockerfile string
		}
		Image       string
		Command     []string
		Environment map[string]string
		Secrets     []struct{ Source, Target string }
		StopGrace   string                                `yaml:"stop_grace_period"`
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	}
	Secrets map[string]struct{ File string }
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// setFlag replaces the value of --name=value in args, or adds it.
func setFlag(args []string, name, value string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "--"+name+"=") {
			args[i] = "--" + name + "=" + value
			return args
		}
	}
	return append(args, "--"+name+"="+value)
}

// TestComposeGateways reads deploy/docker/compose.yaml, checks how its two
// gateways are wired to the image, PostgreSQL, Redis and the master key,
// and runs their command lines for real, against this machine's
// PostgreSQL and Redis in place of the compose services (their names
// replaced by addresses of the test's own): a key made once works at both
// gateways, and a request accepted by one is a replay at the other. The
// compose file itself is not run: no image registry is reachable here for
// the postgres, redis and api images.
func TestComposeGateways(t *testing.T) {
	data, err := os.ReadFile("docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	gateways := []string{"gateway-a", "gateway-b"}
	for _, name := range gateways {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		dockerfile := filepath.Join("docker", s.Build.Context, s.Build.Dockerfile)
		if _, err := os.Stat(dockerfile); err != nil || filepath.Clean(dockerfile) != filepath.Join("..", "deploy", "docker", "Dockerfile") {
			t.Errorf("%s builds %s (%v), want deploy/docker/Dockerfile from the repository's root", name, dockerfile, err)
		}
		for _, dep := range []string{"postgres", "redis"} {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
		if db, err := url.Parse(flagValue(s.Command, "db")); err != nil || db.Scheme != "postgres" || db.Hostname() != "postgres" {
			t.Errorf("%s: --db=%s, want the postgres service", name, flagValue(s.Command, "db"))
		}
		if r, err := url.Parse(flagValue(s.Command, "redis")); err != nil || r.Hostname() != "redis" {
			t.Errorf("%s: --redis=%s, want the redis service", name, flagValue(s.Command, "redis"))
		}
		if len(s.Secrets) != 1 || c.Secrets[s.Secrets[0].Source].File == "" || flagValue(s.Command, "master-key-file") != "/run/secrets/"+s.Secrets[0].Target {
			t.Errorf("%s: --master-key-file=%s is not its secret %+v", name, flagValue(s.Command, "master-key-file"), s.Secrets)
		}
		grace, err1 := time.ParseDuration(s.StopGrace)
		drain, err2 := time.ParseDuration(flagValue(s.Command, "shutdown-timeout"))
		if err1 != nil || err2 != nil || grace < drain+5*time.Second {
			t.Errorf("%s: stop_grace_period %q leaves less than 5 s beyond --shutdown-timeout %q", name, s.StopGrace, flagValue(s.Command, "shutdown-timeout"))
		}
	}
	if t.Failed() {
		return
	}

	// The gateways' command lines, run here.
	dbURL := testenv.NewDatabase(t)
	redisURL, prefix := testenv.RequireRedis(t), testenv.RedisPrefix(t)
	dir := t.TempDir()
	masterKey := filepath.Join(dir, "master.key")
	master := make([]byte, 32)
	rand.Read(master)
	if err := os.WriteFile(masterKey, []byte(base64.StdEncoding.EncodeToString(master)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir}
	keyID, _ := adminKey(t, env, dbURL, "--master-key-file", masterKey)
	// A Redis never used looks like one that lost its data, and the
	// gateways would refuse every signature for the allowed skew: the
	// operator's word that it is new, which signet serve has no flag for.
	if _, err := redis.Init(context.Background(), redisURL, redis.Options{KeyPrefix: prefix}); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	var servers []*server
	for _, name := range gateways {
		args := append([]string{}, c.Services[name].Command...)
		args = setFlag(args, "upstream", up.URL)
		args = setFlag(args, "listen", "127.0.0.1:0")
		args = setFlag(args, "admin-listen", "127.0.0.1:0")
		args = setFlag(args, "db", dbURL)
		args = setFlag(args, "redis", redisURL)
		args = setFlag(args, "redis-prefix", prefix)
		args = setFlag(args, "master-key-file", masterKey)
		servers = append(servers, startServe(t, signetBinary(t), args, append(os.Environ(), env...)))
	}

	// One signed request, sent to both gateways under the same authority.
	key, err := client.LoadKey(filepath.Join(dir, "ops.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	signer := &httpsig.Signer{Key: key, KeyID: keyID}
	r, _ := http.NewRequest("GET", "http://api.example.com/orders", nil)
	if err := signer.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range servers {
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/orders", nil)
		req.Host = "api.example.com"
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, resp.Status+" "+string(bytes.TrimSpace(body)))
	}
	if !strings.HasPrefix(got[0], "200 ") || !strings.Contains(got[1], "/replayed") {
		t.Fatalf("the same signed request at gateway A, then B: %q; want 200, then a replay", got)
	}
}
