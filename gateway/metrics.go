package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/middleware"
)

type metrics struct {
	requests           *prometheus.CounterVec
	overloaded         prometheus.Counter
	verifySeconds      prometheus.Histogram
	keyLookupSeconds   prometheus.Histogram
	keyStoreErrors     prometheus.Counter
	replayStoreErrors  prometheus.Counter
	upstreamErrors     prometheus.Counter // no response header came
	upstreamCut        prometheus.Counter // the response broke off after its header
	responseSignErrors prometheus.Counter
	limitErrors        prometheus.Counter
}

// occupied is implemented by nonce stores that hold their entries
// themselves, as *memory.Store does.
type occupied interface {
	Len() int
	Cap() int
}

// cacheCounter is implemented by key resolvers that cache, as
// *keys.Service does.
type cacheCounter interface {
	CacheStats() keys.CacheStats
}

func newMetrics(reg prometheus.Registerer, resolver, nonces any, inFlight *inFlight) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_requests_total",
			Help: "Requests by outcome (accepted, public, refused, limited, unavailable, overloaded), reason code and route (empty before one is found).",
		}, []string{"outcome", "reason", "route"}),
		verifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_verify_duration_seconds",
			Help:    "Time to read the body and verify a request.",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1},
		}),
		keyLookupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "signet_key_lookup_duration_seconds",
			Help: "Time to resolve a signature's keyid: from the cache, or from the key store.",
			// Cache hits take a microsecond or less; a store round trip a
			// millisecond or so; a store past its deadline hundreds.
			Buckets: []float64{1e-6, 5e-6, 25e-6, 100e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 250e-3, 1},
		}),
		keyStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_key_store_errors_total",
			Help: "Key lookups that failed because the key store could not answer.",
		}),
		replayStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_replay_store_errors_total",
			Help: "Nonce checks that failed because the replay store could not answer.",
		}),
		responseSignErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_response_sign_errors_total",
			Help: "Responses that could not be signed or sent as signed (too large to hold, a full disk, content unlike its own Content-Digest): answered with a signed 502, or cut.",
		}),
		limitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_limit_store_errors_total",
			Help: "Rate limit and uses decisions that failed because the limiter or the key store could not answer (answered 503).",
		}),
	}
	upstream := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_upstream_errors_total",
		Help: "Accepted requests the upstream failed: with no response header (phase=header, answered 502 or 504), or by breaking off the response body (phase=body, the client's response is cut).",
	}, []string{"phase"})
	m.upstreamErrors = upstream.WithLabelValues("header")
	m.upstreamCut = upstream.WithLabelValues("body")
	reg.MustRegister(m.requests, m.verifySeconds, m.keyLookupSeconds, m.keyStoreErrors, m.replayStoreErrors, m.responseSignErrors, m.limitErrors, upstream,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signet_requests_in_flight",
			Help: "Client requests being handled.",
		}, func() float64 { return float64(inFlight.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signet_requests_in_flight_limit",
			Help: "Client requests handled at once beyond which requests are refused (503, outcome overloaded).",
		}, func() float64 { return float64(cap(inFlight.free)) }),
	)
	// A registry shared with the rest of a program may have them already.
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			panic(err)
		}
	}
	if c, ok := resolver.(cacheCounter); ok {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "signet_key_cache_hits_total",
				Help: "Key lookups answered from the gateway's cache.",
			}, func() float64 { return float64(c.CacheStats().Hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "signet_key_cache_misses_total",
				Help: "Key lookups that went to the key store.",
			}, func() float64 { return float64(c.CacheStats().Misses) }),
		)
	}
	if o, ok := nonces.(occupied); ok {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "signet_replay_store_entries",
				Help: "Nonces the in-memory replay store holds; when it reaches its capacity, requests are refused with 503.",
			}, func() float64 { return float64(o.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "signet_replay_store_capacity",
				Help: "Nonces the in-memory replay store may hold (serve --replay-capacity).",
			}, func() float64 { return float64(o.Cap()) }),
		)
	}
	m.overloaded = m.requests.WithLabelValues("overloaded", string(middleware.ReasonUnavailable), "")
	return m
}

// observe counts the outcome of a request on route ("" before one was
// found: the label is bounded by the routes of the policy).
func (m *metrics) observe(o middleware.Outcome, route string) {
	m.verifySeconds.Observe(o.Elapsed.Seconds())
	switch {
	case o.Status == 0:
		// Counted by the usage controls, which may still refuse it.
	case o.Reason == middleware.ReasonUnavailable:
		m.requests.WithLabelValues("unavailable", string(o.Reason), route).Inc()
	default:
		m.requests.WithLabelValues("refused", string(o.Reason), route).Inc()
	}
}

func (m *metrics) public(route string) {
	m.requests.WithLabelValues("public", "", route).Inc()
}
