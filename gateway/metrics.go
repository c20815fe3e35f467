package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/middleware"
)

type metrics struct {
	requests          *prometheus.CounterVec
	accepted          prometheus.Counter
	verifySeconds     prometheus.Histogram
	keyStoreErrors    prometheus.Counter
	replayStoreErrors prometheus.Counter
	upstreamErrors    prometheus.Counter
}

// cacheCounter is implemented by key resolvers that cache, as
// *keys.Service does.
type cacheCounter interface {
	CacheStats() keys.CacheStats
}

func newMetrics(reg prometheus.Registerer, resolver any) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_requests_total",
			Help: "Requests by outcome (accepted, refused, unavailable) and reason code.",
		}, []string{"outcome", "reason"}),
		verifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_verify_duration_seconds",
			Help:    "Time to read the body and verify a request.",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1},
		}),
		keyStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_key_store_errors_total",
			Help: "Key lookups that failed because the key store could not answer.",
		}),
		replayStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_replay_store_errors_total",
			Help: "Nonce checks that failed because the replay store could not answer.",
		}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_upstream_errors_total",
			Help: "Accepted requests the upstream did not answer.",
		}),
	}
	reg.MustRegister(m.requests, m.verifySeconds, m.keyStoreErrors, m.replayStoreErrors, m.upstreamErrors)
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
	m.accepted = m.requests.WithLabelValues("accepted", "")
	return m
}

func (m *metrics) observe(o middleware.Outcome) {
	m.verifySeconds.Observe(o.Elapsed.Seconds())
	switch {
	case o.Status == 0:
		m.accepted.Inc()
	case o.Reason == middleware.ReasonUnavailable:
		m.requests.WithLabelValues("unavailable", string(o.Reason)).Inc()
	default:
		m.requests.WithLabelValues("refused", string(o.Reason)).Inc()
	}
}
