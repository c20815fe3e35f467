package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/signet-dev/signet/gateway"
)

// stop ends signet serve in order. For drain it keeps serving while
// /healthz fails, so that load balancers stop sending requests, and asks
// clients not to keep their connections; then it stops accepting and
// gives the requests in flight up to timeout to finish. Requests still
// running then (WebSockets included) are logged, without their query, and
// cut. It returns an error only when the shutdown itself failed: cut
// requests are the expected cost of a timeout, not a failure.
func stop(log *slog.Logger, g *gateway.Gateway, srv, adminSrv *http.Server, cutRequests context.CancelFunc, drain, timeout time.Duration, errs <-chan error) error {
	g.Drain()
	if drain > 0 {
		srv.SetKeepAlivesEnabled(false)
		log.Info("draining before shutdown", "drain", drain.String())
		select {
		case <-time.After(drain):
		case err := <-errs:
			if !errors.Is(err, http.ErrServerClosed) {
				log.Error("a listener failed while draining", "error", err.Error())
			}
		}
	}
	log.Info("shutting down: no new connections, waiting for requests in flight", "timeout", timeout.String(), "in_flight", len(g.InFlight()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	// Shutdown does not wait for WebSockets, which were taken over from
	// the server, but they are requests in flight too.
	for err == nil && len(g.InFlight()) > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	cut := 0
	if errors.Is(err, context.DeadlineExceeded) {
		now := time.Now()
		for _, r := range g.InFlight() {
			cut++
			log.Warn("request cut by shutdown", "method", r.Method, "path", r.Path, "request_id", r.RequestID,
				"running_for", now.Sub(r.Started).Round(time.Millisecond).String())
		}
		cutRequests()
		err = srv.Close()
	}
	// The admin listener goes last: /healthz says "draining" to the end.
	adminCtx, adminCancel := context.WithTimeout(context.Background(), time.Second)
	defer adminCancel()
	if aerr := adminSrv.Shutdown(adminCtx); aerr != nil {
		adminSrv.Close()
	}
	if err != nil {
		return err
	}
	log.Info("stopped", "requests_cut", cut)
	return nil
}
