package gateway

// Drain marks the gateway as going away: from now on /healthz answers 503
// with the status "draining", so that load balancers stop sending it
// traffic, while requests are still served as before. There is no way
// back.
func (g *Gateway) Drain() {
	if !g.draining.Swap(true) {
		g.log.Info("draining: /healthz now fails so that load balancers stop sending requests")
	}
}

// InFlight returns the client requests being handled, for a shutdown to
// say which it cut.
func (g *Gateway) InFlight() []InFlightRequest { return g.inFlight.snapshot() }
