package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/signet-dev/signet/httpsig"
)

// Settings holds what signet serve takes as flags. Each flag --x-y is the
// top-level key x_y of the policy file, and a flag given on the command
// line overrides the file (see [Options.Flags]). Zero values mean the
// default of the flag; the defaults that the policy itself needs are
// filled in by Load.
type Settings struct {
	Listen          string        // listen
	AdminListen     string        // admin_listen
	DB              string        // db
	MasterKeyFile   string        // master_key_file
	Redis           string        // redis
	RedisPrefix     string        // redis_prefix
	ReplaySnapshot  string        // replay_snapshot
	ReplayCapacity  int           // replay_capacity
	TLSCert         string        // tls_cert
	TLSKey          string        // tls_key
	MaxBody         int64         // max_body: bytes; routes may lower or raise it
	BodyBudget      int64         // body_budget
	StripSignature  bool          // strip_signature
	UpstreamSigning bool          // upstream_signing: sign what is forwarded with the gateway's keys
	Scheme          string        // scheme: what clients use when no trusted proxy says
	MaxAge          time.Duration // max_age; routes may override it
	MaxSkew         time.Duration // max_skew
	Tag             string        // tag
	LogFormat       string        // log_format: json or text
	LogLevel        slog.Level    // log_level
	DebugExplain    bool          // debug_explain
	ShutdownTimeout time.Duration // shutdown_timeout
	Drain           time.Duration // drain
	MaxInFlight     int           // max_in_flight
	UpstreamTimeout time.Duration // upstream_timeout: the default response_header_timeout of upstreams
	WriteTimeout    time.Duration // write_timeout
	// GatewayKeys is the file of the gateway's own Ed25519 keys
	// (gateway_keys), which sign its responses; made when missing.
	GatewayKeys string
	// Usage controls: the rate of keys whose record sets none, the rate
	// of each owner's keys together ("100/s"; "" for none), the prefix of
	// the limits' keys in Redis, and how often usage counts are written.
	DefaultRate      string        // default_rate
	DefaultBurst     int           // default_burst
	OwnerRate        string        // owner_rate
	OwnerBurst       int           // owner_burst
	RedisLimitPrefix string        // redis_limit_prefix
	MeterInterval    time.Duration // meter_interval
	UsesBatch        int           // uses_batch
	// Upstream is the URL of the upstream named "default" (upstream).
	Upstream string
}

// Defaults of the settings the policy uses itself.
const (
	DefaultListen      = ":8080"
	DefaultAdminListen = "127.0.0.1:9090"
	DefaultMaxBody     = 10 << 20
	DefaultLogFormat   = "json"
)

func defaultSettings() Settings {
	return Settings{
		Listen: DefaultListen, AdminListen: DefaultAdminListen, MaxBody: DefaultMaxBody,
		MaxAge: httpsig.DefaultMaxAge, MaxSkew: httpsig.DefaultMaxSkew, LogFormat: DefaultLogFormat,
	}
}

// kinds of setting values.
const (
	kString = iota
	kBool
	kInt
	kDuration
	kSize
	kLevel
)

// setting binds a key (and its flag) to a field of Settings.
type setting struct {
	key  string
	kind int
	// restart marks the settings a running gateway cannot change: a
	// reload that changes one keeps the old value and says so.
	restart bool
	ptr     func(*Settings) any
}

var settings = []setting{
	{"listen", kString, true, func(s *Settings) any { return &s.Listen }},
	{"admin_listen", kString, true, func(s *Settings) any { return &s.AdminListen }},
	{"db", kString, true, func(s *Settings) any { return &s.DB }},
	{"master_key_file", kString, true, func(s *Settings) any { return &s.MasterKeyFile }},
	{"redis", kString, true, func(s *Settings) any { return &s.Redis }},
	{"redis_prefix", kString, true, func(s *Settings) any { return &s.RedisPrefix }},
	{"replay_snapshot", kString, true, func(s *Settings) any { return &s.ReplaySnapshot }},
	{"replay_capacity", kInt, true, func(s *Settings) any { return &s.ReplayCapacity }},
	{"tls_cert", kString, true, func(s *Settings) any { return &s.TLSCert }},
	{"tls_key", kString, true, func(s *Settings) any { return &s.TLSKey }},
	{"max_body", kSize, false, func(s *Settings) any { return &s.MaxBody }},
	{"body_budget", kSize, true, func(s *Settings) any { return &s.BodyBudget }},
	{"strip_signature", kBool, false, func(s *Settings) any { return &s.StripSignature }},
	{"upstream_signing", kBool, false, func(s *Settings) any { return &s.UpstreamSigning }},
	{"scheme", kString, false, func(s *Settings) any { return &s.Scheme }},
	{"max_age", kDuration, false, func(s *Settings) any { return &s.MaxAge }},
	{"max_skew", kDuration, false, func(s *Settings) any { return &s.MaxSkew }},
	{"tag", kString, false, func(s *Settings) any { return &s.Tag }},
	{"log_format", kString, true, func(s *Settings) any { return &s.LogFormat }},
	{"log_level", kLevel, false, func(s *Settings) any { return &s.LogLevel }},
	{"debug_explain", kBool, false, func(s *Settings) any { return &s.DebugExplain }},
	{"shutdown_timeout", kDuration, true, func(s *Settings) any { return &s.ShutdownTimeout }},
	{"drain", kDuration, true, func(s *Settings) any { return &s.Drain }},
	{"max_in_flight", kInt, true, func(s *Settings) any { return &s.MaxInFlight }},
	{"upstream_timeout", kDuration, false, func(s *Settings) any { return &s.UpstreamTimeout }},
	{"write_timeout", kDuration, true, func(s *Settings) any { return &s.WriteTimeout }},
	{"upstream", kString, false, func(s *Settings) any { return &s.Upstream }},
	{"gateway_keys", kString, true, func(s *Settings) any { return &s.GatewayKeys }},
	{"default_rate", kString, true, func(s *Settings) any { return &s.DefaultRate }},
	{"default_burst", kInt, true, func(s *Settings) any { return &s.DefaultBurst }},
	{"owner_rate", kString, true, func(s *Settings) any { return &s.OwnerRate }},
	{"owner_burst", kInt, true, func(s *Settings) any { return &s.OwnerBurst }},
	{"redis_limit_prefix", kString, true, func(s *Settings) any { return &s.RedisLimitPrefix }},
	{"meter_interval", kDuration, true, func(s *Settings) any { return &s.MeterInterval }},
	{"uses_batch", kInt, true, func(s *Settings) any { return &s.UsesBatch }},
}

// SettingKeys returns the top-level keys of the file that hold settings,
// which are the names of signet serve's flags with '_' for '-'.
func SettingKeys() []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = s.key
	}
	return out
}

func lookupSetting(key string) *setting {
	for i := range settings {
		if settings[i].key == key {
			return &settings[i]
		}
	}
	return nil
}

// set parses v, the text of a value, into the field of st.
func (st *setting) set(s *Settings, v string) error {
	switch p := st.ptr(s).(type) {
	case *string:
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a whole number, 0 or more")
		}
		*p = n
	case *time.Duration:
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	case *int64:
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*p = n
	case *slog.Level:
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return errors.New("want debug, info, warn or error")
		}
		*p = l
	}
	return nil
}

// decodeSetting sets st from a YAML value: booleans and whole numbers must
// be written as such, the rest as strings (sizes may be bare numbers).
func (d *decoder) decodeSetting(s *Settings, st *setting, val ast.Node) {
	what := st.key
	var text string
	var ok bool
	switch st.kind {
	case kBool:
		var b bool
		if b, ok = d.boolean(val, what); ok {
			text = strconv.FormatBool(b)
		}
	case kInt:
		var n int64
		if n, ok = d.integer(val, what); ok {
			text = strconv.FormatInt(n, 10)
		}
	case kSize:
		text, ok = d.scalar(val, what)
	default:
		text, ok = d.str(val, what)
	}
	if !ok {
		return
	}
	if err := st.set(s, text); err != nil {
		d.errorf(val, "%s: %v", what, err)
	}
}

// ParseSize reads a byte count such as 1048576, 512KiB or 10MiB.
func ParseSize(s string) (int64, error) {
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

// ParseDuration reads a duration such as 300s, 1m30s or 24h; a bare
// number is refused, since its unit would be a guess.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("want a duration such as 300s, 5m or 24h, not %q", s)
	case d < 0:
		return 0, errors.New("a duration here cannot be negative")
	}
	return d, nil
}

// FormatSize writes n as ParseSize reads it, in the largest exact unit.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// check reports settings that cannot work together or at all: report
// takes the key concerned and a message whose %s verbs are keys, written
// as the flags or the keys of the file, as the values came.
func (s *Settings) check(report func(key, format string, keys ...string)) {
	if (s.TLSCert == "") != (s.TLSKey == "") {
		report("tls_cert", "%s and %s go together", "tls_cert", "tls_key")
	}
	if s.LogFormat != "json" && s.LogFormat != "text" {
		report("log_format", "%s must be json or text", "log_format")
	}
	if s.Scheme != "" && s.Scheme != "http" && s.Scheme != "https" {
		report("scheme", "%s must be http or https", "scheme")
	}
	if s.MaxAge <= 0 {
		report("max_age", "%s must be positive", "max_age")
	}
}
