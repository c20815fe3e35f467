package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/middleware"
)

// maxAdminBody bounds admin API request bodies.
const maxAdminBody = 64 << 10

// KeyAdmin is what the admin API needs of the key store; *keys.Service
// implements it.
type KeyAdmin interface {
	Create(ctx context.Context, req keys.CreateRequest) (*keys.Created, error)
	Get(ctx context.Context, id string) (*keys.Key, error)
	List(ctx context.Context, f keys.ListFilter) ([]keys.Key, error)
	Rotate(ctx context.Context, req keys.RotateRequest) (*keys.Created, error)
	Revoke(ctx context.Context, id, actor string) error
	SetScopes(ctx context.Context, id string, scopes []string, actor string) error
	Audit(ctx context.Context, f keys.AuditFilter) ([]keys.AuditEvent, error)
}

var _ KeyAdmin = (*keys.Service)(nil)

// The keys the key service resolves tell the middleware whom they belong
// to; without it the upstream would get an empty owner.
var _ middleware.OwnedKey = (*keys.ResolvedKey)(nil)

func (g *Gateway) newAdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /.well-known/signet-keys", g.serveKeys) // KeysPath
	g.registerVerifyAPI(mux)
	if g.cfg.Admin == nil {
		return mux
	}
	opts := g.opts
	opts.MaxBodyBytes, opts.BodyBudget, opts.Verifier.Debug, opts.Presigned = maxAdminBody, 0, false, false
	verify, requireAdmin := middleware.Verify(opts), middleware.RequireScopes(opts, keys.ScopeAdmin)
	admin := func(h http.HandlerFunc) http.Handler {
		return withRequestID(verify(requireAdmin(h)))
	}
	a := &adminAPI{keys: g.cfg.Admin, g: g}
	mux.Handle("POST /v1/keys", admin(a.create))
	mux.Handle("GET /v1/keys", admin(a.list))
	mux.Handle("GET /v1/keys/{id}", admin(a.show))
	mux.Handle("POST /v1/keys/{id}/rotate", admin(a.rotate))
	mux.Handle("POST /v1/keys/{id}/revoke", admin(a.revoke))
	mux.Handle("DELETE /v1/keys/{id}", admin(a.revoke))
	mux.Handle("PUT /v1/keys/{id}/scopes", admin(a.setScopes))
	mux.Handle("GET /v1/audit", admin(a.audit))
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	return mux
}

// healthz answers 200 when every store answers, 503 otherwise or once the
// gateway drains. The body says which store failed and why: /healthz is on
// the admin listener, for operators and load balancers.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, body := http.StatusOK, map[string]string{"status": "ok"}
	for _, c := range g.checkers {
		if err := c.p.Ping(ctx); err != nil {
			status, body["status"], body[c.name] = http.StatusServiceUnavailable, "unavailable", err.Error()
			g.log.Warn("health check failed", "check", c.name, "error", err.Error())
		}
	}
	if g.draining.Load() {
		status, body["status"] = http.StatusServiceUnavailable, "draining"
	}
	writeJSON(w, status, body)
}

type adminAPI struct {
	keys KeyAdmin
	g    *Gateway
}

// actor names the admin key behind a request, for the audit log.
func actor(r *http.Request) string {
	if id, ok := middleware.FromContext(r.Context()); ok {
		return "key:" + id.KeyID
	}
	return "unknown"
}

// createRequest is the body of POST /v1/keys.
type createRequest struct {
	Owner     string   `json:"owner"`
	Alg       string   `json:"alg"`
	PublicKey string   `json:"public_key"`
	Scopes    []string `json:"scopes"`
	// Expires is an RFC 3339 time, or a duration from now such as "90d"
	// or "12h".
	Expires string `json:"expires"`
	Label   string `json:"label"`
}

// createdResponse carries a new key and, for HMAC keys, its secret: the
// only time the secret is shown.
type createdResponse struct {
	Key    keys.Key `json:"key"`
	Secret string   `json:"secret,omitempty"`
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !a.decode(w, r, &req) {
		return
	}
	expires, err := keys.ParseExpiry(req.Expires, a.g.now())
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: expires: %w", keys.ErrInvalid, err))
		return
	}
	c, err := a.keys.Create(r.Context(), keys.CreateRequest{
		Owner: req.Owner, Alg: httpsig.Algorithm(req.Alg), PublicKey: []byte(req.PublicKey),
		Scopes: req.Scopes, Expires: expires, Label: req.Label, Actor: actor(r),
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, newCreated(c))
}

func newCreated(c *keys.Created) createdResponse {
	resp := createdResponse{Key: c.Key}
	if c.Secret != nil {
		resp.Secret = base64.StdEncoding.EncodeToString(c.Secret)
	}
	return resp
}

func (a *adminAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ks, err := a.keys.List(r.Context(), keys.ListFilter{Owner: q.Get("owner"), IncludeRevoked: q.Get("all") == "true"})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ks == nil {
		ks = []keys.Key{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": ks})
}

func (a *adminAPI) show(w http.ResponseWriter, r *http.Request) {
	k, err := a.keys.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (a *adminAPI) rotate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Overlap   string `json:"overlap"`
		PublicKey string `json:"public_key"`
	}
	if r.ContentLength != 0 && !a.decode(w, r, &req) {
		return
	}
	overlap := keys.DefaultOverlap
	if req.Overlap != "" {
		d, err := keys.ParseDuration(req.Overlap)
		if err != nil || d < 0 {
			a.fail(w, r, fmt.Errorf("%w: overlap must be a duration such as 24h or 7d", keys.ErrInvalid))
			return
		}
		overlap = d
	}
	var pub []byte
	if req.PublicKey != "" {
		pub = []byte(req.PublicKey)
	}
	c, err := a.keys.Rotate(r.Context(), keys.RotateRequest{ID: r.PathValue("id"), Overlap: overlap, PublicKey: pub, Actor: actor(r)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, newCreated(c))
}

func (a *adminAPI) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.keys.Revoke(r.Context(), id, actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	a.show(w, r)
}

func (a *adminAPI) setScopes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Scopes []string `json:"scopes"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	if err := a.keys.SetScopes(r.Context(), r.PathValue("id"), req.Scopes, actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	a.show(w, r)
}

func (a *adminAPI) audit(w http.ResponseWriter, r *http.Request) {
	events, err := a.keys.Audit(r.Context(), keys.AuditFilter{KeyID: r.URL.Query().Get("key")})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if events == nil {
		events = []keys.AuditEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}

// decode reads a JSON body strictly, answering 400 when it cannot.
func (a *adminAPI) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.fail(w, r, fmt.Errorf("%w: the body must be a JSON object with known fields: %w", keys.ErrInvalid, err))
		return false
	}
	return true
}

// fail maps key store errors to problem responses; unexpected errors are
// logged and answered with 500 without detail.
func (a *adminAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	detail := err.Error()
	switch {
	case errors.Is(err, keys.ErrInvalid):
		a.g.writeProblem(w, http.StatusBadRequest, "invalid-request", "Invalid request", detail)
	case errors.Is(err, keys.ErrNotFound):
		a.g.writeProblem(w, http.StatusNotFound, "not-found", "Not found", detail)
	case errors.Is(err, keys.ErrConflict):
		a.g.writeProblem(w, http.StatusConflict, "conflict", "Conflict", detail)
	case errors.Is(err, keys.ErrUnavailable):
		// Out of disk, the database down or past its deadline: the same
		// call may work later. The cause is for the log only.
		a.g.log.Error("admin API: key store unavailable", "request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		a.g.writeProblem(w, http.StatusServiceUnavailable, string(middleware.ReasonUnavailable), "Service unavailable", "the key store cannot take this change now; retry later")
	default:
		a.g.log.Error("admin API error", "request_id", r.Header.Get(HeaderRequestID), "path", r.URL.Path, "error", err.Error())
		a.g.writeProblem(w, http.StatusInternalServerError, "internal-error", "Internal error", "the request failed; the server log has the details")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (g *Gateway) writeProblem(w http.ResponseWriter, status int, reason, title, detail string) {
	middleware.WriteProblem(w, &middleware.Problem{Type: g.problemBase + reason, Title: title, Status: status, Detail: detail})
}

func (g *Gateway) now() time.Time {
	if now := g.cfg.Verify.Verifier.Now; now != nil {
		return now()
	}
	return time.Now()
}
