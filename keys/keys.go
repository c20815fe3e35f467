// Package keys manages the keys that clients sign requests with: it issues,
// stores, rotates, expires and revokes them, and resolves a signature's
// keyid to a verifying key for [httpsig.Verifier].
//
// A [Service] is the entry point: [Service.Create], [Service.Rotate],
// [Service.Revoke], [Service.SetScopes] and [Service.Rekey] change keys and
// write the audit log; [Service.ResolveKey] implements [httpsig.KeyResolver]
// over an in-memory cache that learns of changes made anywhere. Keys live in
// a [Store]; there is one package per back end:
//
//   - [github.com/signet-dev/signet/keys/sqlite], an embedded file, the
//     default for a single instance;
//   - [github.com/signet-dev/signet/keys/postgres], shared by many instances.
//
// [github.com/signet-dev/signet/keys/keystest] is the behavioural suite that
// every store passes.
//
// # Key kinds
//
// An hmac-sha256 key is 256 random bits made by the service and shown to the
// caller once; the store holds it sealed with AES-256-GCM under a master key
// that is never stored (see [Options.MasterKey]), with the key id as
// additional data, so a sealed secret copied to another key's row does not
// open. An ed25519 key (or another asymmetric algorithm of [httpsig]) is
// registered by its public key; the private key never reaches the server.
// A key is bound to its one algorithm.
//
// # Resolving keys
//
// [Service.ResolveKey] answers from a bounded in-memory cache, which hears
// of every change made to a key through any service on the store by
// [Store.Watch] (PostgreSQL LISTEN/NOTIFY; SQLite polling PRAGMA
// data_version), so that a revoked key is refused everywhere within a
// second. While a store cannot report changes, the cache is bypassed:
// every resolution asks the store, and fails closed if it cannot answer.
// A read of the store has a deadline ([Options.LookupTimeout]), so that a
// store that hangs makes resolutions fail at once with [ErrUnavailable].
// Unknown keyids are remembered for a short while, so that a flood of
// requests naming one costs one lookup. Last-used times are kept in memory
// and written in batches, at most once per key per [Options.LastUsedInterval].
package keys

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Errors of the kinds callers branch on. Errors returned by a [Service] wrap
// one of them when they fit: an admin API answers 404, 400, 409 and 503.
var (
	ErrNotFound = errors.New("keys: no such key")
	ErrInvalid  = errors.New("keys: invalid request")
	ErrConflict = errors.New("keys: conflict")
	// ErrUnavailable means the store could not answer or write now (down,
	// slow past its deadline, out of disk, being reopened); the same call
	// may succeed later.
	ErrUnavailable = errors.New("keys: key store unavailable")
)

// ErrWrongMasterKey is wrapped by the error of [New] when the master key it
// is given is not the one the store's secrets are sealed with, and by writes
// of a service whose master key was replaced by a [Service.Rekey] elsewhere.
var ErrWrongMasterKey = errors.New("keys: wrong master key")

// A Status is where a key is in its life: see [Key.Status].
type Status string

// The statuses of [Key.Status].
const (
	StatusActive   Status = "active"
	StatusExpiring Status = "expiring" // rotated, and still inside its overlap
	StatusExpired  Status = "expired"
	StatusRevoked  Status = "revoked"
)

// A Key is what the service knows of a key, without its secret.
type Key struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner"`
	Alg         httpsig.Algorithm `json:"alg"`
	Scopes      []string          `json:"scopes"`
	Label       string            `json:"label,omitempty"`
	Created     time.Time         `json:"created"`
	Expires     time.Time         `json:"expires,omitzero"`      // zero: never
	Revoked     time.Time         `json:"revoked,omitzero"`      // zero: not revoked
	LastUsed    time.Time         `json:"last_used,omitzero"`    // zero: never
	Predecessor string            `json:"predecessor,omitempty"` // the key this one replaced by rotation
	Successor   string            `json:"successor,omitempty"`   // the key that replaced this one by rotation
	PublicKey   []byte            `json:"public_key,omitempty"`  // PEM (SPKI) for asymmetric keys; nil for HMAC
}

// Status returns the key's status at now: "revoked" once revoked, whenever
// that was; "expired" from its expiry time on (for a rotated key, the end
// of its overlap); "expiring" if it was rotated and its overlap has not
// ended; "active" otherwise.
func (k *Key) Status(now time.Time) Status {
	switch {
	case !k.Revoked.IsZero():
		return StatusRevoked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return StatusExpired
	case k.Successor != "":
		return StatusExpiring
	}
	return StatusActive
}

// keyJSON is the JSON form of a Key: the public key is PEM text, which
// shadows the base64 of the embedded field.
type keyJSON struct {
	plainKey
	PublicKey string `json:"public_key,omitempty"`
}

type plainKey Key // without the methods, so that encoding/json does not recurse

// MarshalJSON encodes the key with the members its tags name, leaving out
// those that are zero, but with public_key as PEM text rather than base64,
// and scopes always an array.
func (k Key) MarshalJSON() ([]byte, error) {
	j := keyJSON{plainKey: plainKey(k), PublicKey: string(k.PublicKey)}
	if j.Scopes == nil {
		j.Scopes = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (k *Key) UnmarshalJSON(data []byte) error {
	var j keyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*k = Key(j.plainKey)
	k.PublicKey = nil
	if j.PublicKey != "" {
		k.PublicKey = []byte(j.PublicKey)
	}
	return nil
}

// A CreateRequest describes a key to make.
type CreateRequest struct {
	Owner string            // the client or user the key belongs to; required
	Alg   httpsig.Algorithm // empty: hmac-sha256, or the public key's algorithm if one is given
	// PublicKey is PEM (SPKI) or JWK text: required for asymmetric
	// algorithms, refused for HMAC. A private key is refused.
	PublicKey []byte
	Scopes    []string
	Expires   time.Time // zero: never; must be in the future
	Label     string
	Actor     string // who asks, for the audit log
}

// A RotateRequest describes a rotation: see [Service.Rotate].
type RotateRequest struct {
	ID string // the key to replace; required
	// Overlap is how long the old key keeps working beside the new one;
	// zero stops it at once. Callers that offer a default offer
	// DefaultOverlap.
	Overlap time.Duration
	// PublicKey is the new public key (PEM or JWK) of an asymmetric key:
	// required for those, refused for HMAC, whose new secret the service
	// makes.
	PublicKey []byte
	Actor     string // who asks, for the audit log
}

// Created is a key just made, with its secret.
type Created struct {
	Key Key `json:"key"`
	// Secret is the HMAC secret, shown this once: the service keeps it only
	// sealed. Nil for asymmetric keys. Its JSON form is standard padded
	// base64, the key file format of [httpsig.ParseKey].
	Secret []byte `json:"secret,omitempty"`
}

// ListFilter selects keys for [Service.List]. The zero value selects every
// key that is not revoked.
type ListFilter struct {
	Owner          string // only this owner's keys, if not empty
	IncludeRevoked bool
}

// An Action is what an [AuditEvent] records.
type Action string

// The actions of the audit log.
const (
	ActionCreate    Action = "create"
	ActionRotate    Action = "rotate"
	ActionRevoke    Action = "revoke"
	ActionSetScopes Action = "set-scopes"
	ActionRekey     Action = "rekey"
)

// An AuditEvent is one entry of the audit log, which is append-only.
type AuditEvent struct {
	ID     int64     `json:"id"` // assigned by the store, increasing
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action Action    `json:"action"`
	KeyID  string    `json:"key_id,omitempty"` // empty for rekey
	Detail string    `json:"detail,omitempty"` // never holds key material
}

// AuditFilter selects audit events. The zero value selects them all.
type AuditFilter struct {
	KeyID string // only events about this key, if not empty
	Limit int    // only the last Limit events, if positive
}
