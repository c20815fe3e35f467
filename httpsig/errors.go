package httpsig

import (
	"errors"
	"net/http"
)

// Reason is a stable, machine-readable code for why a message was refused.
// Servers put it at the end of the problem type URI of their error response;
// clients and tests branch on it.
type Reason string

// The reason codes of a refused message.
const (
	ReasonMissingSignature   Reason = "missing-signature"
	ReasonMalformedSignature Reason = "malformed-signature"
	ReasonUnknownKey         Reason = "unknown-key"
	ReasonKeyRevoked         Reason = "key-revoked"
	ReasonKeyExpired         Reason = "key-expired"
	ReasonAlgorithmMismatch  Reason = "algorithm-mismatch"
	ReasonMissingComponent   Reason = "missing-component"
	ReasonExpired            Reason = "expired"
	ReasonNotYetValid        Reason = "not-yet-valid"
	ReasonReplayed           Reason = "replayed"
	ReasonDigestMismatch     Reason = "digest-mismatch"
	ReasonBadSignature       Reason = "bad-signature"
	ReasonInsufficientScope  Reason = "insufficient-scope"
)

// Status reports the HTTP status code a server answers with for r:
// 403 for insufficient-scope, 401 for every other reason.
func (r Reason) Status() int {
	if r == ReasonInsufficientScope {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// Sentinel errors. A [KeyResolver] returns (an error wrapping) ErrUnknownKey,
// ErrKeyRevoked or ErrKeyExpired to have the message refused with the matching
// reason; a [NonceStore] returns ErrReplayed for a nonce it has seen. Any
// other error from a resolver or a nonce store means the dependency could not
// answer: verification fails closed with that error, which is not a
// [*VerifyError], so that servers can answer 503 rather than 401.
var (
	ErrUnknownKey = errors.New("httpsig: unknown key")
	ErrKeyRevoked = errors.New("httpsig: key revoked")
	ErrKeyExpired = errors.New("httpsig: key expired")
	ErrReplayed   = errors.New("httpsig: nonce already used")
)

// RefusalReasoner is implemented by a resolver's error that wraps
// [ErrKeyRevoked] but names a more precise reason, such as a key that is
// disabled (and may be enabled again) rather than revoked: the message is
// refused as for a revoked key, with the reason and detail it gives.
type RefusalReasoner interface {
	RefusalReason() (Reason, string)
}

// VerifyError is the error of a message that was refused. Reason says why in
// one stable word; Label and KeyID name the signature concerned, if any, so
// that a server can log a refusal without reading the message again.
type VerifyError struct {
	Reason Reason
	Label  string
	// KeyID is the keyid parameter of the signature concerned, as the
	// message claims it, when it was read.
	KeyID  string
	Detail string // a human-readable sentence; never holds key material
	Err    error  // underlying cause, if any
	// Base is the signature base the verifier built, when its Debug mode
	// is on and the failure came after building it.
	Base string
}

func (e *VerifyError) Error() string {
	msg := "httpsig: " + string(e.Reason)
	if e.Label != "" {
		msg += " (" + e.Label + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *VerifyError) Unwrap() error { return e.Err }

// ReasonOf returns the reason code carried by err, and false if err is not
// (and does not wrap) a [*VerifyError].
func ReasonOf(err error) (Reason, bool) {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason, true
	}
	return "", false
}

func refuse(reason Reason, label, detail string) *VerifyError {
	return &VerifyError{Reason: reason, Label: label, Detail: detail}
}
