package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/limit"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	limitredis "github.com/signet-dev/signet/limit/redis"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/replay/redis"
)

type serveOptions struct {
	upstream       string
	listen, admin  string
	db, masterKey  string
	redisURL       string
	redisPrefix    string
	replayCapacity int
	replaySnapshot string
	tlsCert        string
	tlsKey         string
	maxBody        int64
	bodyBudget     int64
	stripSignature bool
	scheme         string
	maxAge, skew   time.Duration
	tag            string
	logFormat      string
	logLevel       slog.Level
	debugExplain   bool
	shutdown       time.Duration
	limits         serveLimits
	gatewayKeys    string
	usage          serveUsage

	config   string
	policy   *policy.Policy  // the settings above come from it
	watcher  *policy.Watcher // of --config
	onReload func(policy.Reload)
}

// serveLimits bound the gateway's work; see README for the defaults.
type serveLimits struct {
	maxInFlight                   int
	upstreamTimeout, writeTimeout time.Duration
	drain                         time.Duration
}

// newServeOptions defines the flags of signet serve on fs, and returns the
// options they fill and the function that checks them once fs is parsed
// (with the policy file of --config read under them).
func newServeOptions(fs *pflag.FlagSet) (*serveOptions, func() error) {
	o := &serveOptions{}
	var maxBody, bodyBudget, level string
	fs.StringVar(&o.config, "config", "", "policy `FILE`: routes, upstreams, trusted proxies, and any of these flags as keys (--max-age is max_age); a flag given here wins; reloaded on SIGHUP and when it changes")
	fs.StringVar(&o.upstream, "upstream", "", "URL of the API behind the gateway (required without --config)")
	fs.StringVar(&o.listen, "listen", ":8080", "address for client traffic")
	fs.StringVar(&o.admin, "admin-listen", "127.0.0.1:9090", "address for /healthz, /metrics, the admin API and its console (/), the verify API (POST /v1/verify) and /.well-known/signet-keys")
	fs.StringVar(&o.db, "db", "", "key store: a SQLite path or postgres:// URL (default: the embedded SQLite file)")
	fs.StringVar(&o.masterKey, "master-key-file", "", "file holding the master key that seals HMAC secrets (default: $SIGNET_MASTER_KEY, or a file beside the SQLite database)")
	fs.StringVar(&o.redisURL, "redis", "", "redis:// URL of a replay cache shared by several gateways (default: in memory)")
	fs.StringVar(&o.redisPrefix, "redis-prefix", redis.DefaultKeyPrefix, "prefix of the nonce keys in Redis")
	fs.StringVar(&o.replaySnapshot, "replay-snapshot", "", "file the in-memory replay cache is saved to on shutdown and read from at start (default: beside an SQLite key store)")
	fs.IntVar(&o.replayCapacity, "replay-capacity", memory.DefaultMaxEntries, "nonces the in-memory replay cache holds: at least 2 × peak signed requests/s × (--max-age + --max-skew)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate chain, to serve HTTPS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&maxBody, "max-body", "10MiB", "largest request body accepted (413 above)")
	fs.StringVar(&bodyBudget, "body-budget", "64MiB", "request body bytes held in memory at once, across requests (503 beyond; at least --max-body)")
	fs.BoolVar(&o.stripSignature, "strip-signature", false, "remove Signature and Signature-Input before forwarding")
	fs.Bool("upstream-signing", false, "sign each forwarded request with the gateway's own key (label signet, tag signet-gateway), for upstreams that verify it (middleware.TrustGateway, trustGateway of @signet/client/server); needs --gateway-keys")
	fs.StringVar(&o.scheme, "scheme", "", `scheme clients use, when a TLS-terminating proxy stands in front ("https")`)
	fs.DurationVar(&o.maxAge, "max-age", httpsig.DefaultMaxAge, "how old a signature's created time may be")
	fs.DurationVar(&o.skew, "max-skew", httpsig.DefaultMaxSkew, "how far in the future created may be")
	fs.StringVar(&o.tag, "tag", "", "accept only signatures with this tag")
	fs.StringVar(&o.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&level, "log-level", "info", "log level: debug (every request), info (refusals), warn, error")
	fs.BoolVar(&o.debugExplain, "debug-explain", false, "show clients the signature base on refusals (never in production)")
	fs.StringVar(&o.gatewayKeys, "gateway-keys", "", "keyring `FILE` of the gateway's own Ed25519 keys (made, mode 0600, when missing): every response is signed, the public keys served at /.well-known/signet-keys; reloaded on SIGHUP and when it changes")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 20*time.Second, "after the drain, how long requests in flight may take to finish before they are cut")
	fs.DurationVar(&o.limits.drain, "drain", 5*time.Second, "on SIGTERM, how long to fail /healthz while still serving, so that load balancers move away")
	fs.IntVar(&o.limits.maxInFlight, "max-in-flight", gateway.DefaultMaxInFlight, "requests handled at once; beyond, 503 with Retry-After")
	fs.DurationVar(&o.limits.upstreamTimeout, "upstream-timeout", gateway.DefaultUpstreamTimeout, "how long the upstream may take to send its response header (504 beyond; 0: no limit)")
	fs.Var(&originList{}, policy.FlagCORSOrigin, "web `ORIGIN` (https://app.example.com, or *) whose pages may call the gateway: its CORS preflights are answered unsigned; repeat or separate with commas; replaces the cors origins of --config")
	fs.DurationVar(&o.limits.writeTimeout, "write-timeout", gateway.DefaultWriteTimeout, "how long a client may take to accept each write of a response (0: no limit)")
	var defaultRate, ownerRate string
	fs.StringVar(&defaultRate, "default-rate", "", "rate limit of the keys whose record sets none, such as 100/s (default: none)")
	fs.IntVar(&o.usage.defaultBurst, "default-burst", 0, "burst of --default-rate (default: its count)")
	fs.StringVar(&ownerRate, "owner-rate", "", "rate limit of all the keys of each owner together, such as 1000/s (default: none)")
	fs.IntVar(&o.usage.ownerBurst, "owner-burst", 0, "burst of --owner-rate (default: its count)")
	fs.StringVar(&o.usage.redisPrefix, "redis-limit-prefix", limitredis.DefaultKeyPrefix, "prefix of the rate limit and uses keys in Redis")
	fs.IntVar(&o.usage.usesBatch, "uses-batch", DefaultUsesBatch, "uses a gateway takes from the key store at a time for a key with a budget: more than the requests of one key in flight at once; a crash loses at most this many of each key")
	fs.DurationVar(&o.usage.meterInterval, "meter-interval", keys.DefaultMeterInterval, "how often usage counts are written to the key store (a crash loses at most about this much, plus a second)")
	return o, func() error {
		_, err := o.check(fs, maxBody, bodyBudget, level)
		return err
	}
}

// check checks the options once the flags are parsed, reading the policy
// file of --config, if any, under the flags given. maxBody, bodyBudget and
// level are the flags' text.
func (o *serveOptions) check(fs *pflag.FlagSet, maxBody, bodyBudget, level string) (_ *serveOptions, err error) {
	if o.config == "" && o.upstream == "" {
		return nil, errors.New("--upstream is required (or --config FILE)")
	}
	if err := o.loadPolicy(fs); err != nil {
		return nil, err
	}
	maxBody, bodyBudget, level = policy.FormatSize(o.policy.Settings.MaxBody), policy.FormatSize(o.policy.Settings.BodyBudget), o.policy.Settings.LogLevel.String()
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case o.logFormat != "json" && o.logFormat != "text":
		return nil, errors.New("--log-format must be json or text")
	case o.scheme != "" && o.scheme != "http" && o.scheme != "https":
		return nil, errors.New("--scheme must be http or https")
	case o.maxAge <= 0 || o.skew < 0:
		return nil, errors.New("--max-age must be positive and --max-skew not negative")
	case o.replayCapacity < 1:
		return nil, errors.New("--replay-capacity must be at least 1")
	case o.redisURL != "" && (flagSet(fs, "replay-capacity") || o.replaySnapshot != ""):
		return nil, errors.New("--replay-capacity and --replay-snapshot are for the in-memory replay cache; with --redis, Redis holds the nonces")
	case o.limits.maxInFlight < 1:
		return nil, errors.New("--max-in-flight must be at least 1")
	case o.policy.Settings.UpstreamSigning && o.gatewayKeys == "":
		return nil, errors.New("--upstream-signing (upstream_signing) needs the gateway's own keys: --gateway-keys FILE (gateway_keys), made by signet gateway-keys init")
	case o.limits.upstreamTimeout < 0 || o.limits.writeTimeout < 0 || o.limits.drain < 0 || o.shutdown < 0:
		return nil, errors.New("--upstream-timeout, --write-timeout, --drain and --shutdown-timeout cannot be negative")
	}
	if o.maxBody, err = parseSize(maxBody); err != nil {
		return nil, fmt.Errorf("--max-body: %w", err)
	}
	if o.bodyBudget, err = parseSize(bodyBudget); err != nil {
		return nil, fmt.Errorf("--body-budget: %w", err)
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if o.usage.defaultRate, err = parseLimitRate("--default-rate", o.policy.Settings.DefaultRate, o.usage.defaultBurst); err != nil {
		return nil, err
	}
	if o.usage.ownerRate, err = parseLimitRate("--owner-rate", o.policy.Settings.OwnerRate, o.usage.ownerBurst); err != nil {
		return nil, err
	}
	if o.usage.usesBatch < 1 {
		return nil, errors.New("--uses-batch must be at least 1")
	}
	if o.usage.meterInterval <= 0 {
		return nil, errors.New("--meter-interval must be positive")
	}
	return o, nil
}

// loadPolicy reads the policy: the file of --config, if given, with the
// flags given on the command line over it, and the flags' defaults under
// it; and sets the options from its settings.
func (o *serveOptions) loadPolicy(fs *pflag.FlagSet) error {
	opts := policy.Options{Defaults: map[string]string{}, Flags: map[string]string{}}
	fs.VisitAll(func(f *pflag.Flag) {
		if isSetting(f) {
			opts.Defaults[f.Name] = f.DefValue
		}
	})
	// Visit sees only the flags given on the command line.
	fs.Visit(func(f *pflag.Flag) {
		if isSetting(f) {
			opts.Flags[f.Name] = f.Value.String()
		}
	})
	if o.config == "" {
		p, err := policy.Parse("", nil, opts)
		if err != nil {
			return policyError(err)
		}
		o.policy = p
	} else {
		w, err := policy.NewWatcher(o.config, policy.WatchOptions{Options: opts, OnReload: func(r policy.Reload) {
			if o.onReload != nil {
				o.onReload(r)
			}
		}})
		if err != nil {
			return policyError(err)
		}
		o.watcher, o.policy = w, w.Policy()
	}
	s := o.policy.Settings
	o.upstream, o.listen, o.admin, o.db, o.masterKey = s.Upstream, s.Listen, s.AdminListen, s.DB, s.MasterKeyFile
	o.redisURL, o.redisPrefix, o.replayCapacity, o.replaySnapshot = s.Redis, s.RedisPrefix, s.ReplayCapacity, s.ReplaySnapshot
	o.tlsCert, o.tlsKey, o.stripSignature, o.scheme = s.TLSCert, s.TLSKey, s.StripSignature, s.Scheme
	o.maxAge, o.skew, o.tag, o.logFormat, o.debugExplain = s.MaxAge, s.MaxSkew, s.Tag, s.LogFormat, s.DebugExplain
	o.shutdown, o.gatewayKeys = s.ShutdownTimeout, s.GatewayKeys
	o.limits = serveLimits{maxInFlight: s.MaxInFlight, upstreamTimeout: s.UpstreamTimeout, writeTimeout: s.WriteTimeout, drain: s.Drain}
	o.usage.defaultBurst, o.usage.ownerBurst, o.usage.redisPrefix, o.usage.meterInterval, o.usage.usesBatch = s.DefaultBurst, s.OwnerBurst, s.RedisLimitPrefix, s.MeterInterval, s.UsesBatch
	return nil
}

// serveUsage configures the usage controls.
type serveUsage struct {
	defaultRate, ownerRate   limit.Rate // zero: none
	defaultBurst, ownerBurst int
	redisPrefix              string
	meterInterval            time.Duration
	usesBatch                int
}

// DefaultUsesBatch is the default of --uses-batch: more than the requests
// of one key a gateway has in flight at once under a heavy load, so that a
// batch is not spent before the next one is taken.
const DefaultUsesBatch = 100

// parseLimitRate reads a rate setting ("" for none) and its burst, as the
// key store checks a key's.
func parseLimitRate(flag, text string, burst int) (limit.Rate, error) {
	if text == "" {
		if burst != 0 {
			return limit.Rate{}, fmt.Errorf("%s: a burst needs a rate", flag)
		}
		return limit.Rate{}, nil
	}
	r, err := keys.ParseRate(text)
	if err != nil {
		return limit.Rate{}, fmt.Errorf("%s: %v", flag, err)
	}
	l := limit.Rate{N: r.N, Per: r.Per, Burst: int64(burst)}
	if err := l.Validate(); err != nil {
		return limit.Rate{}, fmt.Errorf("%s: %v", flag, err)
	}
	return l, nil
}

// usageControls is what enforces the limits and counts usage.
type usageControls struct {
	limiter interface {
		limit.Limiter
		limit.Counter
	}
	redis *limitredis.Store // to close; nil in memory
	meter *keys.Meter
}

// openUsage makes the limiter (in Redis with --redis, else in memory) and
// the meter, which writes to ks.
func openUsage(o *serveOptions, ks *keys.Service, log *slog.Logger) (*usageControls, error) {
	u := &usageControls{}
	ledger := gateway.Ledger(ks)
	if o.redisURL != "" {
		rs, err := limitredis.New(o.redisURL, limitredis.Options{KeyPrefix: o.usage.redisPrefix, Ledger: ledger, Batch: o.usage.usesBatch})
		if err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		u.limiter, u.redis = rs, rs
	} else {
		u.limiter = limitmemory.New(limitmemory.Options{Ledger: ledger, Batch: o.usage.usesBatch})
	}
	u.meter = keys.NewMeter(ks, keys.MeterOptions{Interval: o.usage.meterInterval, Logger: log})
	return u, nil
}

// close writes the last usage counts, once no request can reach the
// gateway, and closes the limiter.
func (u *usageControls) close(log *slog.Logger) error {
	err := u.meter.Close()
	if err != nil {
		log.Error("usage counts not written", "error", err.Error())
		err = fmt.Errorf("usage counts: %w", err)
	}
	if u.redis != nil {
		u.redis.Close()
	}
	return err
}

// policyError puts the problems of a policy on lines of their own.
func policyError(err error) error {
	var es policy.Errors
	if errors.As(err, &es) {
		lines := make([]string, len(es))
		for i, e := range es {
			lines[i] = e.Error()
		}
		return errors.New(strings.Join(lines, "; "))
	}
	return err
}

// originList is a flag that may be repeated; its value is the values
// given, comma-separated.
type originList []string

func (l *originList) String() string { return strings.Join(*l, ",") }

func (l *originList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (l *originList) Type() string { return "ORIGIN" }

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *pflag.FlagSet, name string) bool { return fs.Changed(name) }

// isSetting reports whether f is a flag of serve that the policy file has
// a key for: all but --config, and cobra's --help.
func isSetting(f *pflag.Flag) bool {
	return f.Name != "config" && f.Name != "help"
}

// parseSize reads a byte count such as 1048576, 512KiB or 10MiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, errors.New("want a size such as 10MiB, 512KiB or 1048576")
	}
	return n * mult, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(e *Env, o *serveOptions, log *slog.Logger) (err error) {
	ks, err := openKeys(e, o.db, o.masterKey, log)
	if err != nil {
		return err
	}
	defer ks.Close()
	replay, err := openReplayCache(e, o, log)
	if err != nil {
		return err
	}
	// Once no request can reach it: saved for the next start, unlocked.
	defer func() { err = errors.Join(err, replay.close(log)) }()
	ring, err := openGatewayKeys(e, o.gatewayKeys, log)
	if err != nil {
		return err
	}
	usage, err := openUsage(o, ks, log)
	if err != nil {
		return err
	}
	// Once no request can reach it: the last counts written.
	defer func() { err = errors.Join(err, usage.close(log)) }()
	g, err := gateway.New(gateway.Config{
		Limiter: usage.limiter, Uses: usage.limiter, Meter: usage.meter,
		DefaultRate: o.usage.defaultRate, OwnerRate: o.usage.ownerRate,
		Policy: o.policy, Admin: ks, Logger: log, Keyring: ring,
		Verify: middleware.Options{
			Verifier: httpsig.Verifier{
				Policy: httpsig.Policy{MaxAge: o.maxAge, MaxSkew: o.skew, Tag: o.tag},
				Keys:   ks, Nonces: replay.store, Scheme: o.scheme, Debug: o.debugExplain,
			},
			MaxBodyBytes: o.maxBody, BodyBudget: o.bodyBudget,
		},
		MaxInFlight: o.limits.maxInFlight, UpstreamTimeout: noneIfZero(o.limits.upstreamTimeout), WriteTimeout: noneIfZero(o.limits.writeTimeout),
	})
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", o.admin)
	if err != nil {
		ln.Close()
		return err
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	// Cancelled when the shutdown gives up on requests still in flight,
	// so that their upstream calls and WebSockets end too.
	requests, cutRequests := context.WithCancel(context.Background())
	defer cutRequests()
	srv := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return requests },
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
		TLSConfig:         tlsConfig,
	}
	adminSrv := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, ErrorLog: errLog}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("signet serve listening",
		"addr", ln.Addr().String(), "scheme", scheme, "admin_addr", adminLn.Addr().String(),
		"config", o.config, "routes", len(o.policy.Routes), "upstreams", len(o.policy.Upstreams), "replay_cache", map[bool]string{true: "redis", false: "memory"}[o.redisURL != ""], "signs_responses", ring != nil,
		"default_rate", o.policy.Settings.DefaultRate, "owner_rate", o.policy.Settings.OwnerRate, "meter_interval", o.usage.meterInterval.String(),
		"max_in_flight", o.limits.maxInFlight, "upstream_timeout", o.limits.upstreamTimeout.String(), "write_timeout", o.limits.writeTimeout.String())
	errs := make(chan error, 2)
	go func() {
		if tlsConfig != nil {
			errs <- srv.ServeTLS(ln, "", "")
		} else {
			errs <- srv.Serve(ln)
		}
	}()
	go func() { errs <- adminSrv.Serve(adminLn) }()
	if ring != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		go watchGatewayKeys(watchCtx, o.gatewayKeys, g, log, hup, policy.DefaultWatchInterval)
	}
	if o.watcher != nil {
		o.onReload = func(r policy.Reload) { reloaded(log, g, r) }
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		go o.watcher.Run(watchCtx, hup)
	}
	drain := o.limits.drain
	select {
	case err = <-errs:
		drain = 0 // a listener failed: stop at once, with an error
	case <-e.Context.Done():
	}
	return errors.Join(err, stop(log, g, srv, adminSrv, cutRequests, drain, o.shutdown, errs))
}

// reloaded puts a reloaded policy in force, and says what became of it.
func reloaded(log *slog.Logger, g *gateway.Gateway, r policy.Reload) {
	if r.Err != nil {
		log.Error("policy not reloaded; the policy in force stays", "cause", r.Cause, "error", policyError(r.Err).Error())
		return
	}
	if err := g.SetPolicy(r.Policy); err != nil {
		log.Error("policy not reloaded; the policy in force stays", "cause", r.Cause, "error", err.Error())
		return
	}
	if len(r.Restart) > 0 {
		log.Warn("policy reloaded, but these settings take a restart and keep their values", "settings", strings.Join(r.Restart, ","))
	}
	log.Info("policy reloaded", "cause", r.Cause, "file", r.Policy.File, "routes", len(r.Policy.Routes), "upstreams", len(r.Policy.Upstreams))
}

// noneIfZero turns a flag's 0 ("no limit") into the gateway's negative.
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
