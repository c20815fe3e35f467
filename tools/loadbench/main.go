// Command loadbench measures, in one run and on loopback only, the
// throughput and latency of the same signed requests sent to: the upstream
// alone, a plain httputil.ReverseProxy, nginx as a plain reverse proxy
// (when an nginx binary is installed: Debian's nginx-light is enough),
// signet serve with the in-memory replay cache (alone, behind a policy of
// 100 routes, with usage controls on, and signing its responses with
// --gateway-keys), and signet serve with Redis (alone, and with usage
// controls: a key with a rate limit and a budget of uses, an owner rate;
// and without the owner rate). Every signet serve counts usage (metering).
//
// nginx runs with a generated configuration: one worker, keepalive
// connections to the upstream, keepalive_requests high on both sides, no
// access log, on a free loopback port; the benchmark starts and stops it.
//
// With -rounds, the scenarios take turns that many times and each figure
// is the median over the rounds, so that a shared machine whose other load
// comes and goes disturbs every scenario alike.
//
// With -levels, each scenario is also run at those percentages of the
// throughput it just reached (a fixed request rate, spread over the
// connections), for its latency below saturation; latency is then
// measured from when each request was due, so that a stalled server is
// not hidden by the requests it kept from being sent.
//
// Every scenario runs as separate processes (load generator, proxy,
// upstream) and every request is signed, even where nothing checks it, so
// that the client's work is the same in each. Run it from the repository
// root:
//
//	go run ./tools/loadbench -duration 5s -conns 32
//
// It is bounded in time and in requests, and stops by itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/redis"
)

func main() {
	role := flag.String("role", "bench", "internal: bench, upstream or proxy")
	listen := flag.String("listen", "", "internal: address to serve on")
	upstream := flag.String("upstream", "", "internal: upstream URL of the proxy")
	duration := flag.Duration("duration", 5*time.Second, "measurement time per scenario (at most 60s)")
	warmup := flag.Duration("warmup", time.Second, "warm-up time per scenario")
	conns := flag.Int("conns", 32, "concurrent connections (at most 256)")
	bodySize := flag.Int("body", 1024, "request body size in bytes")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", `Redis for the last scenario ("" to skip it)`)
	maxRequests := flag.Int64("max-requests", 5_000_000, "stop a scenario after this many requests")
	levels := flag.String("levels", "", `also run each scenario at these percentages of its peak, e.g. "50,80,100"`)
	only := flag.String("only", "", "run only the scenarios whose name contains one of these comma-separated words")
	nginx := flag.String("nginx", "nginx", `nginx binary for the nginx scenario ("" to skip it)`)
	procs := flag.Int("proxy-procs", 0, "GOMAXPROCS of the plain proxy and of signet serve (0: the Go default); nginx runs one worker")
	rounds := flag.Int("rounds", 1, "run the scenarios in turn this many times and report medians (at most 20)")
	flag.Parse()
	var err error
	switch *role {
	case "upstream":
		err = serveUpstream(*listen)
	case "proxy":
		err = serveProxy(*listen, *upstream)
	default:
		if *duration > time.Minute || *conns < 1 || *conns > 256 || *rounds < 1 || *rounds > 20 {
			err = errors.New("-duration must be at most 60s, -conns between 1 and 256, -rounds between 1 and 20")
			break
		}
		var pcts []float64
		if pcts, err = parseLevels(*levels); err != nil {
			break
		}
		err = bench(benchOptions{*duration, *warmup, *conns, *bodySize, *redisURL, *maxRequests, pcts, *only, *nginx, *rounds, *procs})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// serveUpstream is the API behind the proxies: it reads the body and
// answers a small JSON document.
func serveUpstream(addr string) error {
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"read":%d}`, n)
	}))
}

// serveProxy is the baseline: a plain reverse proxy with the same upstream
// transport as the gateway.
func serveProxy(addr, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host; pr.SetXForwarded() },
		Transport: gateway.NewTransport(),
	}
	return http.ListenAndServe(addr, p)
}

type benchOptions struct {
	duration, warmup time.Duration
	conns, bodySize  int
	redisURL         string
	maxRequests      int64
	levels           []float64 // percentages of peak throughput
	only             string
	nginx            string
	rounds           int
	procs            int // GOMAXPROCS of the proxies, 0 for the default
}

func parseLevels(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(f, &v); err != nil || v <= 0 || v > 100 {
			return nil, fmt.Errorf("-levels: %q is not a percentage in (0, 100]", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// selected reports whether the scenario name is among those -only asks for.
func (o benchOptions) selected(name string) bool {
	if o.only == "" {
		return true
	}
	for w := range strings.SplitSeq(o.only, ",") {
		if w = strings.TrimSpace(w); w != "" && strings.Contains(strings.ToLower(name), strings.ToLower(w)) {
			return true
		}
	}
	return false
}

type result struct {
	name          string
	level         float64 // percentage of peak, 0 for the peak run
	requests      int64
	errors        int64
	rps           float64
	p50, p99, max time.Duration
	cpu           time.Duration // the proxy's CPU time per request
}

func bench(o benchOptions) error {
	dir, err := os.MkdirTemp("", "signet-loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	signet := filepath.Join(dir, "signet")
	build := exec.Command("go", "build", "-o", signet, "./cmd/signet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building signet (run from the repository root): %w", err)
	}
	var procs []*exec.Cmd
	pidOf := map[string]int{} // URL -> process
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	start := func(name string, args ...string) (string, error) {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		args = append(args, "--listen", addr)
		cmd := exec.Command(name, args...)
		if o.procs > 0 && !slices.Contains(args, "upstream") {
			cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", o.procs))
		}
		cmd.Stderr = &limitedBuffer{max: 64 << 10}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		procs = append(procs, cmd)
		if err := waitReady(addr); err != nil {
			return "", fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, cmd.Stderr)
		}
		pidOf["http://"+addr] = cmd.Process.Pid
		return "http://" + addr, nil
	}

	db := filepath.Join(dir, "keys.db")
	keyOut, err := exec.Command(signet, "keys", "create", "--db", db, "--owner", "loadbench", "--scopes", "orders:write", "--json").Output()
	if err != nil {
		return fmt.Errorf("creating a key: %w", err)
	}
	var created struct {
		Key    struct{ ID string } `json:"key"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal(keyOut, &created); err != nil {
		return fmt.Errorf("reading the created key %q: %w", keyOut, err)
	}
	key, err := httpsig.LoadSigningKey(httpsig.AlgHMACSHA256, []byte(created.Secret))
	if err != nil {
		return err
	}
	signer := &httpsig.Signer{Key: key, KeyID: created.Key.ID}
	// A key with limits that the benchmark never reaches, so that every
	// request is decided and passes: its rate, its owner's, and its uses.
	limited, err := createSigner(signet, db, "--rate", "1000000/s", "--burst", "1000000", "--uses", "1000000000000")
	if err != nil {
		return err
	}
	limitArgs := []string{"--owner-rate", "1000000/s", "--owner-burst", "1000000"}

	up, err := start(self, "-role", "upstream")
	if err != nil {
		return err
	}
	proxy, err := start(self, "-role", "proxy", "-upstream", up)
	if err != nil {
		return err
	}
	serveArgs := []string{"serve", "--upstream", up, "--db", db, "--log-level", "warn"}
	adminAddr, _ := freeAddr()
	gwMemory, err := start(signet, append(serveArgs, "--admin-listen", adminAddr)...)
	if err != nil {
		return err
	}
	// The same behind a policy of 100 routes, the benchmark's among them,
	// with a scope to check; its own replay snapshot, so that its lock does
	// not meet the first gateway's.
	config := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(config, routes100(), 0o600); err != nil {
		return err
	}
	adminAddr, _ = freeAddr()
	gwRoutes, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--config", config, "--replay-snapshot", filepath.Join(dir, "routes.nonces"))...)
	if err != nil {
		return err
	}
	// The first gateway again, signing every response (Ed25519, the
	// content's digest): the load generator does not verify them, so
	// that its work stays the same.
	adminAddr, _ = freeAddr()
	gwSigned, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--gateway-keys", filepath.Join(dir, "gateway-keys.json"), "--replay-snapshot", filepath.Join(dir, "signed.nonces"))...)
	if err != nil {
		return err
	}
	adminAddr, _ = freeAddr()
	gwLimits, err := start(signet, append(append(serveArgs, limitArgs...), "--admin-listen", adminAddr, "--replay-snapshot", filepath.Join(dir, "limits.nonces"))...)
	if err != nil {
		return err
	}
	type scenario struct {
		name, url string
		signer    *httpsig.Signer
		pids      []int // the proxy's processes, whose CPU time is counted
	}
	scenarios := []scenario{
		{"upstream alone", up, signer, []int{pidOf[up]}},
		{"httputil.ReverseProxy", proxy, signer, []int{pidOf[proxy]}},
	}
	if o.nginx != "" {
		if bin, err := lookNginx(o.nginx); err != nil {
			fmt.Fprintf(os.Stderr, "loadbench: no nginx (%v): skipping the nginx scenario; on Debian: apt-get install nginx-light\n", err)
		} else {
			stop, url, pid, err := startNginx(bin, filepath.Join(dir, "nginx"), up)
			if err != nil {
				return err
			}
			defer stop()
			scenarios = append(scenarios, scenario{"nginx proxy_pass", url, signer, []int{pid}})
		}
	}
	scenarios = append(scenarios,
		scenario{"signet serve (memory)", gwMemory, signer, []int{pidOf[gwMemory]}},
		scenario{"signet serve (100 routes)", gwRoutes, signer, []int{pidOf[gwRoutes]}},
		scenario{"signet serve (limits, memory)", gwLimits, limited, []int{pidOf[gwLimits]}},
		scenario{"signet serve (signed)", gwSigned, signer, []int{pidOf[gwSigned]}},
	)
	if o.redisURL != "" {
		prefix := fmt.Sprintf("signet-loadbench-%d:", time.Now().UnixNano())
		defer deleteKeys(o.redisURL, prefix)
		// A new prefix looks like a Redis that lost its data: say it is new.
		if _, err := redis.Init(context.Background(), o.redisURL, redis.Options{KeyPrefix: prefix}); err != nil {
			return err
		}
		// The Redis scenarios count the Redis server's CPU time too, when
		// it runs on this machine.
		redisPid := redisProcess(o.redisURL)
		adminAddr, _ := freeAddr()
		gwRedis, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix)...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (Redis)", gwRedis, signer, []int{pidOf[gwRedis], redisPid}})
		adminAddr, _ = freeAddr()
		gwRedisLimits, err := start(signet, append(append(serveArgs, limitArgs...), "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix, "--redis-limit-prefix", prefix+"limit:")...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (limits, Redis)", gwRedisLimits, limited, []int{pidOf[gwRedisLimits], redisPid}})
		// The same without the owner's rate: one Redis call fewer.
		adminAddr, _ = freeAddr()
		gwRedisKey, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix, "--redis-limit-prefix", prefix+"limit2:")...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (key limits, Redis)", gwRedisKey, limited, []int{pidOf[gwRedisKey], redisPid}})
	}

	body := bytes.Repeat([]byte("x"), o.bodySize)
	copy(body, `{"customer":42,"note":"`)
	body[len(body)-2], body[len(body)-1] = '"', '}'
	fmt.Printf("loadbench: %d connections, %s per scenario after %s warm-up, POST with a %d-byte body, HMAC-signed, loopback only; medians of %d rounds\n\n",
		o.conns, o.duration, o.warmup, o.bodySize, o.rounds)
	// Rounds take turns through the scenarios, so that a machine whose
	// other load comes and goes disturbs them alike; each figure is the
	// median over the rounds.
	var selected []int
	for i, s := range scenarios {
		if o.selected(s.name) {
			selected = append(selected, i)
			run(s.url, s.signer, body, o, o.warmup, "", 0, nil)
		}
	}
	peaks := make([][]result, len(scenarios))
	for range o.rounds {
		for _, i := range selected {
			s := scenarios[i]
			peaks[i] = append(peaks[i], run(s.url, s.signer, body, o, o.duration, s.name, 0, s.pids))
		}
	}
	var results []result
	for _, i := range selected {
		s := scenarios[i]
		peak := medianResult(peaks[i])
		results = append(results, peak)
		for _, pct := range o.levels {
			var rs []result
			for range o.rounds {
				r := run(s.url, s.signer, body, o, o.duration, s.name, peak.rps*pct/100, s.pids)
				r.level = pct
				rs = append(rs, r)
			}
			results = append(results, medianResult(rs))
		}
	}
	report(results)
	return nil
}

// medianResult returns the median of each figure of rs, and their sums of
// requests and errors.
func medianResult(rs []result) result {
	out := rs[0]
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out.rps = med(func(r result) float64 { return r.rps })
	out.p50 = time.Duration(med(func(r result) float64 { return float64(r.p50) }))
	out.p99 = time.Duration(med(func(r result) float64 { return float64(r.p99) }))
	out.max = time.Duration(med(func(r result) float64 { return float64(r.max) }))
	out.cpu = time.Duration(med(func(r result) float64 { return float64(r.cpu) }))
	out.requests, out.errors = 0, 0
	for _, r := range rs {
		out.requests += r.requests
		out.errors += r.errors
	}
	return out
}

// lookNginx finds the nginx binary, also in /usr/sbin, which is not in
// every user's PATH.
func lookNginx(name string) (string, error) {
	bin, err := exec.LookPath(name)
	if err != nil && name == "nginx" {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			return "/usr/sbin/nginx", nil
		}
	}
	return bin, err
}

// startNginx runs nginx as a plain reverse proxy to upstream, with a
// configuration generated in dir, and returns how to stop it and its URL.
func startNginx(bin, dir, upstream string) (stop func(), url string, pid int, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", 0, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", 0, err
	}
	up := strings.TrimPrefix(upstream, "http://")
	user := ""
	if os.Geteuid() == 0 {
		// Its worker would otherwise run as nobody, who cannot enter dir.
		user = "user root;"
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	keepalive_requests 10000000;
	client_max_body_size 64m;
	client_body_buffer_size 64k;
	upstream api {
		server %[3]s;
		keepalive 256;
		keepalive_requests 10000000;
	}
	server {
		listen %[4]s;
		location / {
			proxy_pass http://api;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		}
	}
}
`, user, dir, up, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, "", 0, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	out := &limitedBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, "", 0, err
	}
	stop = func() {
		// SIGTERM: the master stops its worker and exits.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if err := waitReady(addr); err != nil {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, "", 0, fmt.Errorf("nginx: %w\n%s%s", err, out, log)
	}
	return stop, "http://" + addr, cmd.Process.Pid, nil
}

// run sends signed requests from o.conns workers for d and measures them:
// as fast as the server answers, or at rate requests per second in all if
// rate is positive, each worker sending on its own schedule and latency
// counted from when a request was due.
func run(base string, signer *httpsig.Signer, body []byte, o benchOptions, d time.Duration, name string, rate float64, pids []int) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n, errs atomic.Int64
	lat := make([][]time.Duration, o.conns)
	var wg sync.WaitGroup
	target := base + "/v1/orders?customer=42&expand=items"
	startAll := time.Now()
	cpu0 := cpuTime(pids)
	for w := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			due := startAll
			if rate > 0 {
				interval = time.Duration(float64(o.conns) / rate * float64(time.Second))
				due = startAll.Add(interval * time.Duration(w) / time.Duration(o.conns))
			}
			for ctx.Err() == nil && n.Add(1) <= o.maxRequests {
				if rate > 0 {
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
				}
				r, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				if err := signer.SignRequest(r, body); err != nil {
					errs.Add(1)
					continue
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = due
					due = due.Add(interval)
				}
				resp, err := client.Do(r)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(startAll)
	cpu := cpuTime(pids) - cpu0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := result{name: name, requests: int64(len(all)), errors: errs.Load()}
	if len(all) > 0 {
		res.rps = float64(len(all)) / elapsed.Seconds()
		res.p50, res.p99, res.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
		res.cpu = cpu / time.Duration(len(all))
	}
	return res
}

func report(results []result) {
	var proxy, nginx float64
	var nginxCPU time.Duration
	for _, r := range results {
		switch {
		case r.level != 0:
		case strings.HasPrefix(r.name, "httputil"):
			proxy = r.rps
		case strings.HasPrefix(r.name, "nginx"):
			nginx, nginxCPU = r.rps, r.cpu
		}
	}
	percent := func(rps, of float64) string {
		if of == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*rps/of)
	}
	fmt.Printf("%-33s %6s %10s %10s %10s %10s %8s %9s %9s %9s %9s\n", "scenario", "load", "req/s", "p50", "p99", "max", "errors", "vs proxy", "vs nginx", "CPU/req", "CPU nginx")
	for _, r := range results {
		load := "peak"
		if r.level != 0 {
			load = fmt.Sprintf("%.0f%%", r.level)
		}
		cpu, ofNginx := "-", "-"
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.1fµs", float64(r.cpu)/1e3)
		}
		if r.cpu > 0 && nginxCPU > 0 {
			ofNginx = percent(float64(nginxCPU), float64(r.cpu))
		}
		fmt.Printf("%-33s %6s %10.0f %10s %10s %10s %8d %9s %9s %9s %9s\n", r.name, load, r.rps, round(r.p50), round(r.p99), round(r.max), r.errors, percent(r.rps, proxy), percent(r.rps, nginx), cpu, ofNginx)
	}
	fmt.Println("\nCPU/req: the proxy's CPU time (user + system) per request, Redis's included in the Redis scenarios; CPU nginx: nginx's CPU/req as a percentage of it.")
}

// createSigner makes a key in db with the extra flags of keys create.
func createSigner(signet, db string, flags ...string) (*httpsig.Signer, error) {
	out, err := exec.Command(signet, append([]string{"keys", "create", "--db", db, "--owner", "loadbench-limited", "--scopes", "orders:write", "--json"}, flags...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("creating a key: %w", err)
	}
	var created struct {
		Key    struct{ ID string } `json:"key"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		return nil, fmt.Errorf("reading the created key %q: %w", out, err)
	}
	key, err := httpsig.LoadSigningKey(httpsig.AlgHMACSHA256, []byte(created.Secret))
	if err != nil {
		return nil, err
	}
	return &httpsig.Signer{Key: key, KeyID: created.Key.ID}, nil
}

func round(d time.Duration) string { return d.Round(time.Microsecond).String() }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("did not start listening")
}

// deleteKeys removes the nonces the Redis scenario left behind.
func deleteKeys(redisURL, prefix string) {
	c, err := redisClient(redisURL)
	if err != nil {
		return
	}
	defer c.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return
		}
		if len(e.Elements) > 0 {
			c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build())
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// routes100 is a policy of 100 routes in which the benchmark's request
// (POST /v1/orders) needs the scope its key has.
func routes100() []byte {
	var b bytes.Buffer
	b.WriteString("routes:\n  - {match: \"POST /v1/orders\", scopes: [\"orders:write\"]}\n")
	for i := range 33 {
		fmt.Fprintf(&b, "  - {match: \"GET /v1/res%d/{id}\", scopes: [\"r%d:read\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"POST /v1/res%d\", scopes: [\"r%d:write\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"/v1/res%d/{id}/sub/\"}\n", i)
	}
	return b.Bytes()
}

// cpuTime returns the CPU time (user and system) the processes pids and
// their children have used so far, read from /proc; 0 where there is none.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	seen := map[int]bool{}
	var add func(pid int)
	add = func(pid int) {
		if pid <= 0 || seen[pid] {
			return
		}
		seen[pid] = true
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		// The fields after the command's ")": state is the first, utime
		// and stime the 12th and 13th (fields 14 and 15 of proc(5)).
		i := bytes.LastIndexByte(stat, ')')
		if f := strings.Fields(string(stat[i+1:])); i >= 0 && len(f) > 12 {
			var u, s int64
			fmt.Sscan(f[11], &u)
			fmt.Sscan(f[12], &s)
			ticks += u + s
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(children)) {
			var child int
			fmt.Sscan(c, &child)
			add(child)
		}
	}
	for _, pid := range pids {
		add(pid)
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// redisProcess returns the process id of the Redis server at redisURL if
// it runs on this machine, 0 otherwise.
func redisProcess(redisURL string) int {
	c, err := redisClient(redisURL)
	if err != nil {
		return 0
	}
	defer c.Close()
	info, err := c.Do(context.Background(), c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			var pid int
			fmt.Sscan(v, &pid)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return pid
			}
		}
	}
	return 0
}

// redisClient connects to the Redis at redisURL, without a client-side
// cache.
func redisClient(redisURL string) (rueidis.Client, error) {
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	opt.DisableCache = true
	return rueidis.NewClient(opt)
}
