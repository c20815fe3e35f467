// Package httpsig implements HTTP Message Signatures as specified in RFC 9421,
// with the Content-Digest field of RFC 9530 for message content.
//
// A [Signer] adds the Signature-Input, Signature and Content-Digest fields to
// a request ([Signer.SignRequest]) or a response; a [Verifier] checks them
// ([Verifier.VerifyRequest], [Verifier.VerifyResponse]) against a [Policy],
// resolving keys by their keyid through a [KeyResolver] (a [KeyMap], a
// [KeyResolverFunc], or a key store) and rejecting replayed nonces through a
// [NonceStore]. Every refusal is a [*VerifyError] carrying a [Reason].
//
// Signet's two profiles on top of RFC 9421 are here too. Presigned URLs
// (docs/presigned-urls.md), the signature carried in the query:
// [Signer.Presign] makes them, [IsPresigned] and [Verifier.VerifyPresigned]
// check them and give back the target to forward. Signed responses
// (docs/signed-responses.md): a [ResponseSigner] signs what a server
// answers, bound to the request; a [ResponseVerifier] checks it, the
// content as it streams ([ResponseVerifier.VerifyStream]); [MarshalJWKS],
// [ParseJWKS] and [JWKThumbprint] publish and pin the server's keys.
//
// Keys are bound to one [Algorithm]: see [NewSigningKey], [NewVerifyingKey]
// and [ParseKey] for PEM, JWK and base64 key files. The lower-level pieces
// are exported too: [ParseSignatures], [SignatureBase], [Component],
// [ContentDigest], [ParseAcceptSignature].
//
// The package uses only the standard library.
package httpsig

import (
	"context"
	"time"
)

// A SigningKey makes signatures with one algorithm. Implementations must be
// safe for concurrent use.
type SigningKey interface {
	Algorithm() Algorithm
	// Sign returns the signature of the signature base.
	Sign(base []byte) ([]byte, error)
}

// A VerifyingKey checks signatures made with one algorithm. Implementations
// must be safe for concurrent use.
type VerifyingKey interface {
	Algorithm() Algorithm
	// Verify returns nil if sig is a valid signature of base, and an error
	// otherwise. MACs are compared in constant time.
	Verify(base, sig []byte) error
}

// A KeyResolver finds the verifying key for a keyid. Implementations must be
// safe for concurrent use.
//
// ResolveKey returns an error wrapping [ErrUnknownKey], [ErrKeyRevoked] or
// [ErrKeyExpired] when the key cannot be used, and any other error when it
// could not find out (a database that is down, say); the verifier then fails
// closed.
type KeyResolver interface {
	ResolveKey(ctx context.Context, keyID string) (VerifyingKey, error)
}

// A NonceStore remembers the nonces of accepted signatures so that a replayed
// message is refused. Implementations must be safe for concurrent use.
//
// Remember atomically records the pair (keyID, nonce) until the given time
// and returns nil, or returns [ErrReplayed] if the pair is already recorded.
// A pair is held through until itself. The [Verifier] passes an until no
// earlier than the last instant at which any message carrying the pair
// can pass its freshness checks. Any other error means the store could not
// answer; the verifier then fails closed. created is the created time of the signature (zero if it has
// none): a store that may have forgotten pairs it once held (a restart, a
// Redis that lost its data) returns an error wrapping [ErrReplayed] for a
// signature created before it can vouch for every pair, since the pair may
// have been used then.
type NonceStore interface {
	Remember(ctx context.Context, keyID, nonce string, created, until time.Time) error
}

// KeyResolverFunc adapts a function to a [KeyResolver].
type KeyResolverFunc func(ctx context.Context, keyID string) (VerifyingKey, error)

// ResolveKey returns f(ctx, keyID).
func (f KeyResolverFunc) ResolveKey(ctx context.Context, keyID string) (VerifyingKey, error) {
	return f(ctx, keyID)
}

// KeyMap is a [KeyResolver] over a fixed set of keys, by keyid.
type KeyMap map[string]VerifyingKey

var (
	_ KeyResolver = KeyResolverFunc(nil)
	_ KeyResolver = KeyMap(nil)
)

// ResolveKey returns the key for keyID, or [ErrUnknownKey].
func (m KeyMap) ResolveKey(_ context.Context, keyID string) (VerifyingKey, error) {
	if k, ok := m[keyID]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}
