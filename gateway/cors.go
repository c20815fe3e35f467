package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// CORS fields the gateway answers with (see policy.CORS).
const (
	// corsMethods are the methods preflights are told a page may use.
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
	// corsHeaders are the request fields a page may always send: what a
	// signature needs. Preflights add those the page asks for.
	corsHeaders = "Signature, Signature-Input, Content-Digest, Content-Type, Accept-Signature, X-Request-Id"
	// corsExposed are the response fields a page may read: a signed
	// response (with Content-Encoding, without which a page cannot tell
	// content that fetch decoded, whose digest cannot be checked, from
	// content changed on the way), the clock of refusals, rate limits,
	// what to sign.
	corsExposed = "Signature, Signature-Input, Content-Digest, Content-Encoding, Date, RateLimit, RateLimit-Policy, Retry-After, Accept-Signature, WWW-Authenticate, X-Request-Id"
)

// ReasonOriginNotAllowed (403): a CORS preflight from an origin the
// policy does not allow.
const ReasonOriginNotAllowed = "origin-not-allowed"

// corsKey marks the requests of a gateway with CORS on; its value says
// whether the request came from an allowed origin.
var corsKey = &struct{ name string }{"cors"}

// withCORS answers, when the policy in force has a cors key, the CORS
// preflights of the client listener itself, unsigned: those of allowed
// origins with the methods and fields they may use, the others with 403
// and no CORS fields. A preflight never reaches the upstream. Other
// requests from an allowed origin get Access-Control-Allow-Origin and the
// fields a page may read; the upstream's own Access-Control-* fields are
// dropped (see corsResponse), so an origin the policy does not allow never
// gets any.
func (g *Gateway) withCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := g.snap.Load().policy.CORS
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		origins := r.Header["Origin"]
		allowed := len(origins) == 1 && c.Allows(origins[0])
		if r.Method == http.MethodOptions && len(origins) > 0 && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Origin")
			h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			if !allowed {
				g.writeProblem(w, http.StatusForbidden, ReasonOriginNotAllowed, "Origin not allowed", "pages of this origin may not call this gateway")
				return
			}
			h.Set("Access-Control-Allow-Origin", origins[0])
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Values("Access-Control-Request-Headers")))
			h.Set("Access-Control-Max-Age", strconv.FormatInt(int64(c.MaxAge.Seconds()), 10))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		setCORS(h, origins, allowed)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), corsKey, allowed)))
	})
}

// setCORS sets the CORS fields of the response (not to a preflight) to a
// request from origins, with CORS on.
func setCORS(h http.Header, origins []string, allowed bool) {
	h.Add("Vary", "Origin")
	if allowed {
		h.Set("Access-Control-Allow-Origin", origins[0])
		h.Set("Access-Control-Expose-Headers", corsExposed)
	}
}

// allowHeaders returns the fields a preflight allows: corsHeaders and the
// field names the page asked for (a signature may cover any field; the
// X-Signet-* ones the gateway removes on the way anyway).
func allowHeaders(requested []string) string {
	out := corsHeaders
	have := strings.ToLower(corsHeaders)
	for _, line := range requested {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if !isToken(name) || strings.Contains(", "+have+",", ", "+name+",") {
				continue
			}
			out += ", " + name
			have += ", " + name
		}
	}
	return out
}

// browserRequest reports whether r came from a page of an allowed origin
// (with CORS on).
func browserRequest(r *http.Request) bool {
	allowed, _ := r.Context().Value(corsKey).(bool)
	return allowed
}

// corsResponse drops the upstream's CORS fields when the gateway answers
// for CORS, which otherwise would repeat or contradict its own.
func corsResponse(resp *http.Response) {
	if resp.Request == nil || resp.Request.Context().Value(corsKey) == nil {
		return
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(resp.Header, k)
		}
	}
}
