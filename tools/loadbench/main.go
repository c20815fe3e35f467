// Command loadbench measures, in one run and on loopback only, the
// throughput and latency of the same signed requests sent to: the upstream
// alone, a plain httputil.ReverseProxy, signet serve with the in-memory
// replay cache (alone, behind a policy of 100 routes, and signing its
// responses with --gateway-keys), and signet serve with Redis; and signet serve with usage
// controls on (a key with a rate limit and a budget of uses, an owner rate),
// in memory and in Redis, and in Redis without the owner rate. Every signet serve counts usage (metering).
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
	flag.Parse()
	var err error
	switch *role {
	case "upstream":
		err = serveUpstream(*listen)
	case "proxy":
		err = serveProxy(*listen, *upstream)
	default:
		if *duration > time.Minute || *conns < 1 || *conns > 256 {
			err = errors.New("-duration must be at most 60s and -conns between 1 and 256")
			break
		}
		err = bench(benchOptions{*duration, *warmup, *conns, *bodySize, *redisURL, *maxRequests})
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
}

type result struct {
	name          string
	requests      int64
	errors        int64
	rps           float64
	p50, p99, max time.Duration
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
		cmd.Stderr = &limitedBuffer{max: 64 << 10}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		procs = append(procs, cmd)
		if err := waitReady(addr); err != nil {
			return "", fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, cmd.Stderr)
		}
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
	}
	scenarios := []scenario{
		{"upstream alone", up, signer},
		{"httputil.ReverseProxy", proxy, signer},
		{"signet serve (memory)", gwMemory, signer},
		{"signet serve (100 routes)", gwRoutes, signer},
		{"signet serve (limits, memory)", gwLimits, limited},
		{"signet serve (signed)", gwSigned, signer},
	}
	if o.redisURL != "" {
		prefix := fmt.Sprintf("signet-loadbench-%d:", time.Now().UnixNano())
		defer deleteKeys(o.redisURL, prefix)
		// A new prefix looks like a Redis that lost its data: say it is new.
		if _, err := redis.Init(context.Background(), o.redisURL, redis.Options{KeyPrefix: prefix}); err != nil {
			return err
		}
		adminAddr, _ := freeAddr()
		gwRedis, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix)...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (Redis)", gwRedis, signer})
		adminAddr, _ = freeAddr()
		gwRedisLimits, err := start(signet, append(append(serveArgs, limitArgs...), "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix, "--redis-limit-prefix", prefix+"limit:")...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (limits, Redis)", gwRedisLimits, limited})
		// The same without the owner's rate: one Redis call fewer.
		adminAddr, _ = freeAddr()
		gwRedisKey, err := start(signet, append(serveArgs, "--admin-listen", adminAddr, "--redis", o.redisURL, "--redis-prefix", prefix, "--redis-limit-prefix", prefix+"limit2:")...)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, scenario{"signet serve (key limits, Redis)", gwRedisKey, limited})
	}

	body := bytes.Repeat([]byte("x"), o.bodySize)
	copy(body, `{"customer":42,"note":"`)
	body[len(body)-2], body[len(body)-1] = '"', '}'
	fmt.Printf("loadbench: %d connections, %s per scenario after %s warm-up, POST with a %d-byte body, HMAC-signed, loopback only\n\n",
		o.conns, o.duration, o.warmup, o.bodySize)
	var results []result
	for _, s := range scenarios {
		run(s.url, s.signer, body, o, o.warmup, "")
		results = append(results, run(s.url, s.signer, body, o, o.duration, s.name))
	}
	report(results)
	return nil
}

// run sends signed requests from o.conns workers for d and measures them.
func run(base string, signer *httpsig.Signer, body []byte, o benchOptions, d time.Duration, name string) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n, errs atomic.Int64
	lat := make([][]time.Duration, o.conns)
	var wg sync.WaitGroup
	target := base + "/v1/orders?customer=42&expand=items"
	startAll := time.Now()
	for w := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && n.Add(1) <= o.maxRequests {
				r, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				if err := signer.SignRequest(r, body); err != nil {
					errs.Add(1)
					continue
				}
				t0 := time.Now()
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
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := result{name: name, requests: int64(len(all)), errors: errs.Load()}
	if len(all) > 0 {
		res.rps = float64(len(all)) / elapsed.Seconds()
		res.p50, res.p99, res.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	}
	return res
}

func report(results []result) {
	var proxy float64
	for _, r := range results {
		if strings.HasPrefix(r.name, "httputil") {
			proxy = r.rps
		}
	}
	fmt.Printf("%-30s %10s %10s %10s %10s %8s %12s\n", "scenario", "req/s", "p50", "p99", "max", "errors", "vs proxy")
	for _, r := range results {
		ratio := "-"
		if proxy > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.rps/proxy)
		}
		fmt.Printf("%-30s %10.0f %10s %10s %10s %8d %12s\n", r.name, r.rps, round(r.p50), round(r.p99), round(r.max), r.errors, ratio)
	}
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
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return
	}
	c, err := rueidis.NewClient(opt)
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
