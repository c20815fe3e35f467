package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	ListPage(ctx context.Context, req keys.ListRequest) (*keys.KeyPage, error)
	Rotate(ctx context.Context, req keys.RotateRequest) (*keys.Created, error)
	Revoke(ctx context.Context, id, actor string) error
	SetScopes(ctx context.Context, id string, scopes []string, actor string) error
	Update(ctx context.Context, req keys.UpdateRequest) (*keys.Key, error)
	Disable(ctx context.Context, id, actor string) (*keys.Key, error)
	Enable(ctx context.Context, id, actor string) (*keys.Key, error)
	Usage(ctx context.Context, q keys.UsageQuery) (*keys.UsageReport, error)
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
	mux.Handle("PATCH /v1/keys/{id}", admin(a.update))
	mux.Handle("POST /v1/keys/{id}/disable", admin(a.disable))
	mux.Handle("POST /v1/keys/{id}/enable", admin(a.enable))
	mux.Handle("GET /v1/keys/{id}/usage", admin(a.keyUsage))
	mux.Handle("GET /v1/usage", admin(a.usage))
	mux.Handle("POST /v1/keys/{id}/rotate", admin(a.rotate))
	mux.Handle("POST /v1/keys/{id}/revoke", admin(a.revoke))
	mux.Handle("DELETE /v1/keys/{id}", admin(a.revoke))
	mux.Handle("PUT /v1/keys/{id}/scopes", admin(a.setScopes))
	mux.Handle("GET /v1/audit", admin(a.audit))
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	mux.HandleFunc("GET /{$}", serveConsole)
	mux.HandleFunc("GET /ui/{file}", serveConsole)
	mux.HandleFunc("GET /ui/signet/{file}", serveConsole)
	mux.HandleFunc("GET /ui/signet/lib/{file}", serveConsole)
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
	// Metadata is a JSON object of the operator's, at most
	// keys.MaxMetadataSize bytes.
	Metadata json.RawMessage `json:"metadata"`
	// RateLimit and Uses have the shape they have in a key's JSON and in
	// PATCH: what an operator reads is what it writes.
	RateLimit *keys.RateLimit `json:"rate_limit"`
	Uses      *usesRequest    `json:"uses"`
}

// usesRequest is a budget of uses as a caller sets it: how many, and the
// refill if any; the rest of keys.Uses is the store's.
type usesRequest struct {
	Remaining int64     `json:"remaining"`
	Refill    keys.Rate `json:"refill"`
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
	cr := keys.CreateRequest{
		Owner: req.Owner, Alg: httpsig.Algorithm(req.Alg), PublicKey: []byte(req.PublicKey),
		Scopes: req.Scopes, Expires: expires, Label: req.Label, Metadata: req.Metadata, Actor: actor(r),
	}
	if req.RateLimit != nil {
		cr.RateLimit = *req.RateLimit
	}
	if req.Uses != nil {
		cr.Uses = keys.Uses{Remaining: req.Uses.Remaining, Refill: req.Uses.Refill}
	}
	c, err := a.keys.Create(r.Context(), cr)
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

// list answers a page of keys, oldest first, and the cursor of the next.
func (a *adminAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := keys.ListRequest{
		ListFilter: keys.ListFilter{
			Owner: q.Get("owner"), IDPrefix: q.Get("prefix"), Scope: q.Get("scope"),
			IncludeRevoked: q.Get("all") == "true",
		},
		Cursor: q.Get("cursor"),
	}
	if v := q.Get("status"); v != "" {
		st, err := keys.ParseStatus(v)
		if err != nil {
			a.fail(w, r, fmt.Errorf("%w: status must be active, expiring, expired, disabled or revoked", keys.ErrInvalid))
			return
		}
		req.Status = st
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > keys.MaxPageSize {
			a.fail(w, r, fmt.Errorf("%w: limit must be 1 to %d", keys.ErrInvalid, keys.MaxPageSize))
			return
		}
		req.Limit = n
	}
	p, err := a.keys.ListPage(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if p.Keys == nil {
		p.Keys = []keys.Key{}
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *adminAPI) show(w http.ResponseWriter, r *http.Request) {
	k, err := a.keys.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeKey(w, k)
}

// writeKey answers a key with its version as entity tag, which PATCH takes
// in If-Match.
func writeKey(w http.ResponseWriter, k *keys.Key) {
	w.Header().Set("ETag", keyETag(k.Version))
	writeJSON(w, http.StatusOK, k)
}

func keyETag(version int64) string { return `"v` + strconv.FormatInt(version, 10) + `"` }

// update applies a JSON merge patch (RFC 7396, see keys.ParseUpdate) to a
// key. With If-Match, the change is made only to the version it names
// (412 otherwise), so that two operators editing one key do not undo each
// other's changes unknowingly.
func (a *adminAPI) update(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: the body could not be read", keys.ErrInvalid))
		return
	}
	req, err := keys.ParseUpdate(body, a.g.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req.ID, req.Actor = r.PathValue("id"), actor(r)
	matched := false
	if im := r.Header.Get("If-Match"); im != "" {
		v, ok, err := a.ifMatch(r, req.ID, im)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !ok || (req.Version != 0 && v != 0 && req.Version != v) {
			a.preconditionFailed(w, r)
			return
		}
		if v != 0 {
			req.Version, matched = v, true
		}
	}
	k, err := a.keys.Update(r.Context(), req)
	if err != nil {
		// A conflict is a version that moved on, or a revoked key: with
		// If-Match the former is a failed precondition.
		if matched && errors.Is(err, keys.ErrConflict) {
			if cur, gerr := a.keys.Get(r.Context(), req.ID); gerr == nil && cur.Version != req.Version {
				a.preconditionFailed(w, r)
				return
			}
		}
		a.fail(w, r, err)
		return
	}
	writeKey(w, k)
}

// ifMatch reads an If-Match field: the version it requires (0 for "*"),
// and false if no entity tag of it can match the key. Only strong tags
// match (RFC 9110 section 13.1.1). Of several tags, the key's current
// version is taken if it is one of them.
func (a *adminAPI) ifMatch(r *http.Request, id, field string) (int64, bool, error) {
	var versions []int64
	for _, tag := range strings.Split(field, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return 0, true, nil
		}
		if v, ok := strings.CutPrefix(tag, `"v`); ok {
			if v, ok := strings.CutSuffix(v, `"`); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && v == strconv.FormatInt(n, 10) {
					versions = append(versions, n)
				}
			}
		}
	}
	switch len(versions) {
	case 0:
		return 0, false, nil
	case 1:
		return versions[0], true, nil
	}
	k, err := a.keys.Get(r.Context(), id)
	if err != nil {
		return 0, false, err
	}
	for _, v := range versions {
		if v == k.Version {
			return v, true, nil
		}
	}
	return 0, false, nil
}

func (a *adminAPI) preconditionFailed(w http.ResponseWriter, r *http.Request) {
	a.g.writeProblem(w, http.StatusPreconditionFailed, "precondition-failed", "Precondition failed",
		"the key has changed since the version If-Match names; read it again")
}

func (a *adminAPI) disable(w http.ResponseWriter, r *http.Request) {
	k, err := a.keys.Disable(r.Context(), r.PathValue("id"), actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeKey(w, k)
}

func (a *adminAPI) enable(w http.ResponseWriter, r *http.Request) {
	k, err := a.keys.Enable(r.Context(), r.PathValue("id"), actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeKey(w, k)
}

// keyUsage answers the requests counted for one key, by hour.
func (a *adminAPI) keyUsage(w http.ResponseWriter, r *http.Request) {
	q, err := a.usageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q.KeyID = r.PathValue("id")
	a.report(w, r, q)
}

// usage answers the requests counted for an owner's keys, or for every
// key (unknown keyids included), by hour; by_key=true keeps keys apart.
func (a *adminAPI) usage(w http.ResponseWriter, r *http.Request) {
	q, err := a.usageQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q.Owner, q.ByKey = r.URL.Query().Get("owner"), r.URL.Query().Get("by_key") == "true"
	a.report(w, r, q)
}

func (a *adminAPI) report(w http.ResponseWriter, r *http.Request, q keys.UsageQuery) {
	rep, err := a.keys.Usage(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// usageQuery reads since and until: RFC 3339 times, or durations back
// from now ("7d", "1h"). Since defaults to a day ago, until to now.
func (a *adminAPI) usageQuery(r *http.Request) (keys.UsageQuery, error) {
	var q keys.UsageQuery
	now := a.g.now()
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		v := r.URL.Query().Get(p.name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*p.t = t
			continue
		}
		d, err := keys.ParseDuration(v)
		if err != nil || d < 0 {
			return q, fmt.Errorf("%w: %s must be an RFC 3339 time or a duration back from now such as 7d or 1h", keys.ErrInvalid, p.name)
		}
		*p.t = now.Add(-d)
	}
	if !q.Until.IsZero() {
		// The hour under way is counted up to now.
		q.Until = q.Until.Add(time.Hour - time.Nanosecond)
	}
	return q, nil
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
	f := keys.AuditFilter{KeyID: r.URL.Query().Get("key")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			a.fail(w, r, fmt.Errorf("%w: limit must be a positive number of events", keys.ErrInvalid))
			return
		}
		f.Limit = n
	}
	events, err := a.keys.Audit(r.Context(), f)
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
