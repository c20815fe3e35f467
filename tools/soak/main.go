// Command soak runs mixed traffic through two signet serve instances that
// share a key store and a replay cache, for minutes, and reports whether
// good requests ever failed, the latency of good requests per interval,
// and the memory and descriptors of each gateway at the start and the end.
//
// The traffic is good requests (signed, must get 200), tampered ones
// (signed, then the body changed: digest-mismatch), replays of accepted
// requests sent to the other gateway (replayed) and unsigned ones
// (missing-signature); any other answer is an error. The gateways share
// a fresh PostgreSQL database (made on the server at -postgres, dropped at
// the end) or an SQLite file, and a key prefix of the Redis at -redis
// (deleted at the end). Everything is on loopback; the run is bounded in
// time and requests and stops by itself. From the repository root:
//
//	go run ./tools/soak                       # 3 minutes, PostgreSQL and Redis
//	go run ./tools/soak -keys sqlite -duration 30s
//
// It exits 1 if any request got an unexpected answer.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/redis"
)

type options struct {
	duration, interval time.Duration
	conns, rate        int
	keys               string // postgres or sqlite
	postgresURL        string
	redisURL           string
	maxRequests        int64
	out                io.Writer
}

func main() {
	o := options{out: os.Stdout}
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "how long to send traffic (at most 30m)")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "reporting interval")
	flag.IntVar(&o.conns, "conns", 16, "concurrent clients (at most 256)")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second, both gateways together (0: as fast as they answer)")
	flag.StringVar(&o.keys, "keys", "postgres", "shared key store: postgres (a fresh database) or sqlite (one file)")
	flag.StringVar(&o.postgresURL, "postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server to make the fresh database on")
	flag.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379", "Redis for the shared replay cache (a key prefix of its own)")
	flag.Int64Var(&o.maxRequests, "max-requests", 10_000_000, "stop after this many requests")
	flag.Parse()
	ok, err := soak(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// soak runs the whole soak and reports whether every answer was the one
// expected.
func soak(ctx context.Context, o options) (bool, error) {
	switch {
	case o.duration <= 0 || o.duration > 30*time.Minute:
		return false, errors.New("-duration must be positive and at most 30m")
	case o.conns < 1 || o.conns > 256:
		return false, errors.New("-conns must be between 1 and 256")
	case o.keys != "postgres" && o.keys != "sqlite":
		return false, errors.New("-keys must be postgres or sqlite")
	case o.interval <= 0:
		return false, errors.New("-interval must be positive")
	}
	dir, err := os.MkdirTemp("", "signet-soak-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	signet := filepath.Join(dir, "signet")
	build := exec.Command("go", "build", "-o", signet, "github.com/signet-dev/signet/cmd/signet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return false, fmt.Errorf("building signet (run from the repository): %w", err)
	}

	masterKey := filepath.Join(dir, "master.key")
	mk := make([]byte, 32)
	rand.Read(mk)
	if err := os.WriteFile(masterKey, []byte(base64.StdEncoding.EncodeToString(mk)), 0o600); err != nil {
		return false, err
	}
	db := filepath.Join(dir, "keys.db")
	if o.keys == "postgres" {
		if db, err = freshDatabase(ctx, o.postgresURL); err != nil {
			return false, err
		}
		defer dropDatabase(o.postgresURL, db)
	}
	prefix := fmt.Sprintf("signet-soak-%d:", time.Now().UnixNano())
	defer deleteKeys(o.redisURL, prefix)
	// A new prefix looks like a Redis that lost its data: say it is new.
	if _, err := redis.Init(ctx, o.redisURL, redis.Options{KeyPrefix: prefix}); err != nil {
		return false, fmt.Errorf("Redis at %s: %w", o.redisURL, err)
	}

	out, err := exec.Command(signet, "keys", "create", "--db", db, "--master-key-file", masterKey, "--owner", "soak", "--json").Output()
	if err != nil {
		return false, fmt.Errorf("creating a key: %w", errOutput(err))
	}
	var created struct {
		Key    struct{ ID string } `json:"key"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		return false, fmt.Errorf("reading the created key %q: %w", out, err)
	}
	key, err := httpsig.LoadSigningKey(httpsig.AlgHMACSHA256, []byte(created.Secret))
	if err != nil {
		return false, err
	}
	signer := &httpsig.Signer{Key: key, KeyID: created.Key.ID}

	upstream, err := startUpstream()
	if err != nil {
		return false, err
	}
	defer upstream.Close()
	var gws [2]*gateway
	for i := range gws {
		gws[i], err = startGateway(signet, "--upstream", upstream.url, "--db", db, "--master-key-file", masterKey,
			"--redis", o.redisURL, "--redis-prefix", prefix, "--log-level", "warn", "--drain", "0")
		if err != nil {
			return false, err
		}
		defer gws[i].stop()
	}

	fmt.Fprintf(o.out, "soak: 2 gateways (keys: %s, replay cache: Redis), %d clients, %s, rate %s, loopback only\n\n",
		o.keys, o.conns, o.duration, rateText(o.rate))
	start := [2]usage{gws[0].usage(), gws[1].usage()}
	l := &load{o: o, signer: signer, gws: gws, replays: make(chan *http.Request, 4096)}
	l.run(ctx)
	end := [2]usage{gws[0].usage(), gws[1].usage()}

	fmt.Fprintln(o.out)
	for i, g := range gws {
		w := l.warm[i]
		fmt.Fprintf(o.out, "gateway %c (idle, after the first interval, at the end): RSS %s, %s, %s; open descriptors %d, %d, %d; goroutines %d, %d, %d\n",
			'A'+i, mib(start[i].rss), mib(w.rss), mib(end[i].rss), start[i].fds, w.fds, end[i].fds, start[i].goroutines, w.goroutines, end[i].goroutines)
		if g.exited() {
			fmt.Fprintf(o.out, "gateway %c exited during the soak (%v):\n%s\n", 'A'+i, g.waitError, g.logs)
			l.total.wrong.Add(1)
		}
	}
	t := &l.total
	fmt.Fprintf(o.out, "total: %d requests: good %d (errors %d), tampered %d, replayed %d, unsigned %d; unexpected answers %d\n",
		t.requests(), t.n[good].Load(), t.goodErrors.Load(), t.n[tampered].Load(), t.n[replayed].Load(), t.n[unsigned].Load(), t.wrong.Load())
	for _, e := range l.examples() {
		fmt.Fprintln(o.out, "  e.g.", e)
	}
	for i, g := range gws {
		for _, line := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
				fmt.Fprintf(o.out, "  gateway %c: %.400s\n", 'A'+i, line)
			}
		}
	}
	return t.goodErrors.Load() == 0 && t.wrong.Load() == 0, nil
}

func rateText(r int) string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.Itoa(r) + " req/s"
}

func errOutput(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// The kinds of traffic, and the answer each must get.
type kind int

const (
	good kind = iota
	tampered
	replayed
	unsigned
	kinds
)

var want = [kinds]struct {
	status int
	reason string
}{
	good:     {200, ""},
	tampered: {401, "digest-mismatch"},
	replayed: {401, "replayed"},
	unsigned: {401, "missing-signature"},
}

// counts are the outcomes of an interval, or of the whole run.
type counts struct {
	n          [kinds]atomic.Int64
	goodErrors atomic.Int64 // good requests that did not get 200
	wrong      atomic.Int64 // any request that did not get its answer
	mu         sync.Mutex
	latencies  []time.Duration // of good requests
}

func (c *counts) requests() int64 {
	var n int64
	for i := range c.n {
		n += c.n[i].Load()
	}
	return n
}

type load struct {
	o       options
	signer  *httpsig.Signer
	gws     [2]*gateway
	replays chan *http.Request // accepted requests, to send again

	total    counts
	warm     [2]usage // of each gateway after the first interval
	interval atomic.Pointer[counts]
	sent     atomic.Int64

	exMu    sync.Mutex
	example []string // a few unexpected answers, for the report
}

var body = func() []byte {
	b := bytes.Repeat([]byte("x"), 1024)
	copy(b, `{"customer":42,"note":"`)
	b[len(b)-2], b[len(b)-1] = '"', '}'
	return b
}()

func (l *load) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.o.duration)
	defer cancel()
	l.interval.Store(&counts{})
	var tick <-chan time.Time
	if l.o.rate > 0 {
		t := time.NewTicker(time.Second / 100) // a hundredth of the rate at a time
		defer t.Stop()
		tick = t.C
	}
	tokens := make(chan struct{}, l.o.rate/100+l.o.conns)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: l.o.conns, MaxConnsPerHost: l.o.conns}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for range l.o.conns {
		wg.Go(func() {
			rnd := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
			for ctx.Err() == nil && l.sent.Add(1) <= l.o.maxRequests {
				if tick != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				l.one(client, rnd)
			}
		})
	}
	fmt.Fprintf(l.o.out, "%6s %8s %8s %8s %8s %8s %11s %6s %9s %9s\n", "t", "req/s", "good", "tampered", "replayed", "unsigned", "good errors", "wrong", "good p50", "good p99")
	started := time.Now()
	last, first := started, true
	end := started.Add(l.o.duration)
	report := time.NewTicker(l.o.interval)
	defer report.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick:
			for range max(l.o.rate/100, 1) {
				select {
				case tokens <- struct{}{}:
				default:
				}
			}
		case now := <-report.C:
			if end.Sub(now) > l.o.interval/10 { // else the last line says it
				l.line(l.interval.Swap(&counts{}), now.Sub(started), now.Sub(last))
				if first {
					first = false
					l.warm = [2]usage{l.gws[0].usage(), l.gws[1].usage()}
				}
				last = now
			}
		case <-ctx.Done():
		}
	}
	wg.Wait()
	now := time.Now()
	l.line(l.interval.Swap(&counts{}), now.Sub(started), now.Sub(last))
}

func (l *load) line(c *counts, at, d time.Duration) {
	c.mu.Lock()
	lat := slices.Clone(c.latencies)
	c.mu.Unlock()
	slices.Sort(lat)
	p50, p99 := "-", "-"
	if len(lat) > 0 {
		p50, p99 = lat[len(lat)/2].Round(time.Microsecond).String(), lat[len(lat)*99/100].Round(time.Microsecond).String()
	}
	fmt.Fprintf(l.o.out, "%6s %8.0f %8d %8d %8d %8d %11d %6d %9s %9s\n", at.Round(time.Second), float64(c.requests())/d.Seconds(),
		c.n[good].Load(), c.n[tampered].Load(), c.n[replayed].Load(), c.n[unsigned].Load(), c.goodErrors.Load(), c.wrong.Load(), p50, p99)
}

// one sends a request of a kind picked at random: seven in ten good, one
// in ten of each other kind.
func (l *load) one(client *http.Client, rnd *mrand.Rand) {
	k := good
	switch n := rnd.IntN(10); {
	case n == 7:
		k = tampered
	case n == 8:
		k = replayed
	case n == 9:
		k = unsigned
	}
	to := rnd.IntN(2)
	var r *http.Request
	if k == replayed {
		select {
		case r = <-l.replays:
			to = 1 - r.Context().Value(gatewayIndex{}).(int) // replay it at the other gateway
		default:
			k = good // nothing accepted yet to replay
		}
	}
	if r == nil {
		r, _ = http.NewRequest(http.MethodPost, l.gws[to].url+"/v1/orders?customer=42&expand=items", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if k != unsigned {
			if err := l.signer.SignRequest(r, body); err != nil {
				l.record(k, 0, "", 0, "signing: "+err.Error())
				return
			}
		}
		if k == tampered {
			b := bytes.Clone(body)
			b[len(b)-3] = 'y'
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
	} else {
		// To the other gateway's address, with the Host the signature
		// covers.
		u, _ := url.Parse(l.gws[to].url + r.URL.RequestURI())
		r = r.Clone(context.Background())
		r.URL = u
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	t0 := time.Now()
	resp, err := client.Do(r)
	if err != nil {
		l.record(k, 0, "", 0, err.Error())
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(t0)
	var p struct{ Type string }
	json.Unmarshal(b, &p)
	reason := p.Type[strings.LastIndexByte(p.Type, '/')+1:]
	if resp.StatusCode != 200 {
		b = nil
	}
	l.record(k, resp.StatusCode, reason, elapsed, string(b))
	if k == good && resp.StatusCode == 200 {
		keep := r.Clone(context.WithValue(context.Background(), gatewayIndex{}, to))
		select {
		case l.replays <- keep:
		default:
		}
	}
}

type gatewayIndex struct{}

func (l *load) record(k kind, status int, reason string, elapsed time.Duration, detail string) {
	w := want[k]
	ok := status == w.status && (w.reason == "" || reason == w.reason)
	for _, c := range []*counts{&l.total, l.interval.Load()} {
		c.n[k].Add(1)
		if !ok {
			c.wrong.Add(1)
			if k == good {
				c.goodErrors.Add(1)
			}
		}
		if ok && k == good {
			c.mu.Lock()
			c.latencies = append(c.latencies, elapsed)
			c.mu.Unlock()
		}
	}
	if !ok {
		l.exMu.Lock()
		if len(l.example) < 5 {
			l.example = append(l.example, fmt.Sprintf("%s: want %d %s, got %d %s %.200s", [...]string{"good", "tampered", "replayed", "unsigned"}[k], w.status, w.reason, status, reason, detail))
		}
		l.exMu.Unlock()
	}
}

func (l *load) examples() []string {
	l.exMu.Lock()
	defer l.exMu.Unlock()
	return l.example
}

// upstream is the API behind the gateways: it reads the body and answers
// a small JSON document.
type upstream struct {
	url string
	srv *http.Server
}

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"read":%d}`, n)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &upstream{url: "http://" + ln.Addr().String(), srv: srv}, nil
}

func (u *upstream) Close() { u.srv.Close() }

// gateway is a signet serve process.
type gateway struct {
	cmd       *exec.Cmd
	url       string
	adminURL  string
	logs      *limitedBuffer
	done      chan struct{}
	waitError error
}

func startGateway(signet string, args ...string) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g := &gateway{url: "http://" + addr, adminURL: "http://" + admin, logs: &limitedBuffer{max: 64 << 10}, done: make(chan struct{})}
	g.cmd = exec.Command(signet, append([]string{"serve", "--listen", addr, "--admin-listen", admin}, args...)...)
	g.cmd.Stderr = g.logs
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { g.waitError = g.cmd.Wait(); close(g.done) }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(g.adminURL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g, nil
			}
		}
		if g.exited() || time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("signet serve did not become healthy: %s", g.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited reports whether the process has ended; waitError then says how.
func (g *gateway) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *gateway) stop() {
	g.cmd.Process.Kill()
	<-g.done
}

type usage struct {
	rss             int64
	fds, goroutines int
}

// usage reads a gateway's resident memory and descriptors from /proc, and
// its goroutines from its metrics.
func (g *gateway) usage() usage {
	var u usage
	pid := strconv.Itoa(g.cmd.Process.Pid)
	if status, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				u.rss = kb << 10
			}
		}
	}
	if fds, err := os.ReadDir("/proc/" + pid + "/fd"); err == nil {
		u.fds = len(fds)
	}
	if resp, err := http.Get(g.adminURL + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				u.goroutines, _ = strconv.Atoi(v)
			}
		}
	}
	return u
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freshDatabase makes an empty database on the server at base and returns
// its URL.
func freshDatabase(ctx context.Context, base string) (string, error) {
	name := "signet_soak_" + strings.ToLower(rand.Text()[:12])
	if err := pgExec(ctx, base, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("PostgreSQL at %s: %w", base, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDatabase(base, dbURL string) {
	u, _ := url.Parse(dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pgExec(ctx, base, "DROP DATABASE IF EXISTS "+strings.TrimPrefix(u.Path, "/")+" WITH (FORCE)"); err != nil {
		fmt.Fprintln(os.Stderr, "soak: dropping the database:", err)
	}
}

func pgExec(ctx context.Context, base, q string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, q)
	return err
}

// deleteKeys removes the nonces the soak left in Redis.
func deleteKeys(redisURL, prefix string) {
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return
	}
	opt.DisableCache = true
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
