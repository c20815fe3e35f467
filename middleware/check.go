package middleware

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/signet-dev/signet/httpsig"
)

// A Refusal is how [Verify] answers a request it refuses.
type Refusal struct {
	// Status is the status of the answer: 401, 403, 400, or 503 when a
	// store could not answer.
	Status int
	// Reason is the reason code, which Problem.Type ends in.
	Reason httpsig.Reason
	// KeyID is the keyid of the signature concerned, when one was read.
	KeyID string
	// Problem is the problem+json body.
	Problem Problem
	// AcceptSignature is the Accept-Signature field of a 401.
	AcceptSignature string
	// Header holds other fields the answer carries, such as the RateLimit
	// fields of a request a limit refused; nil for most refusals.
	Header http.Header
	// Err is the error behind the refusal, for logs; it may name a store
	// failure and is never for the client.
	Err error
}

// CheckHeader makes on r the checks [Verify] makes before it reads any of
// the body, in the same order and with the same refusals: the framing of
// the target and the Host field, the signatures (with the key resolver,
// and the nonce, which is spent), the covered fields a proxy would drop or
// could not pass on as verified, and opts.Authorize. r.ContentLength says
// whether the request has content (0: none; -1: unknown). It returns the
// caller's identity and the verifier's result, or how Verify would refuse
// r. The body is never read: when the result's ContentDigest is set, the
// caller must check the content against it before acting on the request.
//
// It is for servers that verify requests on behalf of others (Signet's
// verify API); opts.Observe is not called.
func CheckHeader(opts Options, r *http.Request) (*Identity, httpsig.Result, *Refusal) {
	if opts.Verifier.Keys == nil {
		panic("middleware: Options.Verifier.Keys is nil")
	}
	opts = opts.withDefaults()
	mw := &verifier{opts: opts}
	if ref := checkRequest(r); ref != nil {
		return nil, httpsig.Result{}, mw.export(r, ref)
	}
	res, err := mw.verifyHeader(r)
	if err != nil {
		return nil, res, mw.export(r, verifyRefusal(err))
	}
	if name := coveredHopByHop(r.Header, res.Covered); name != "" {
		return nil, res, mw.export(r, &refusal{
			status: http.StatusBadRequest, reason: ReasonHopByHop, keyID: res.KeyID,
			detail: "the signature covers " + strconv.Quote(name) + ", which the Connection field (or HTTP itself) makes hop-by-hop: a proxy would remove it",
		})
	}
	if name := combineCovered(r.Header, res.Covered); name != "" {
		return nil, res, mw.export(r, &refusal{
			status: http.StatusBadRequest, reason: ReasonInvalidField, keyID: res.KeyID,
			detail: "the covered field " + strconv.Quote(name) + " has several lines, the last one empty: the value they make cannot be passed on as one line",
		})
	}
	id := &Identity{KeyID: res.KeyID, Alg: res.Key.Algorithm(), Label: res.Label, Created: res.Created}
	if o, ok := res.Key.(OwnedKey); ok {
		id.Owner, id.Scopes = o.Owner(), o.Scopes()
	}
	if opts.Authorize != nil {
		if detail := opts.Authorize(r, id); detail != "" {
			return nil, res, mw.export(r, &refusal{
				status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, keyID: res.KeyID, label: res.Label,
				detail: detail, err: errors.New("middleware: " + detail),
			})
		}
	}
	return id, res, nil
}

// export turns a refusal into what CheckHeader returns: the problem and
// the fields refuse would write.
func (mw *verifier) export(r *http.Request, ref *refusal) *Refusal {
	out := &Refusal{
		Status: ref.status, Reason: ref.reason, KeyID: ref.keyID, Err: ref.errOrDetail(),
		Problem: Problem{Type: mw.opts.ProblemBase + string(ref.reason), Title: titles[ref.reason], Status: ref.status, Detail: ref.detail, Signature: ref.label, SignatureBase: ref.base},
	}
	if ref.status == http.StatusUnauthorized {
		out.AcceptSignature = mw.opts.Verifier.Policy.AcceptSignatureFor(r, r.ContentLength != 0)
	}
	return out
}

// Title returns the title of the problem of a refusal with reason, or ""
// for a reason Verify does not give.
func Title(reason httpsig.Reason) string { return titles[reason] }
