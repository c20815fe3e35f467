// Package keys manages the keys that clients sign requests with: it issues,
// stores, rotates, expires and revokes them, and resolves a signature's
// keyid to a verifying key for [httpsig.Verifier].
//
// A [Service] is the entry point: [Service.Create], [Service.Rotate],
// [Service.Revoke], [Service.Disable], [Service.Enable], [Service.Update]
// and [Service.Rekey] change keys and write the audit log;
// [Service.ResolveKey] implements [httpsig.KeyResolver] over an in-memory
// cache that learns of changes made anywhere; [Service.ListPage] pages
// through keys for an admin API. A key may carry a [RateLimit] and a budget
// of [Uses], which gateways enforce ([Service.SpendUses] spends the budget
// for them), and metadata. A [Meter] counts requests per key and hour and
// writes them to the store in batches; [Service.Usage] reads them back.
// Keys live in a [Store]; there is one package per back end:
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
	"fmt"
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

// ErrKeyDisabled is wrapped by the error [Service.ResolveKey] returns for a
// disabled key. That error wraps [httpsig.ErrKeyRevoked] too, so that a
// verifier that knows nothing of disabled keys refuses the request as
// key-revoked, never lets it through nor takes it for a store failure;
// httpsig's verifier answers [ReasonKeyDisabled], which the error gives as
// its [httpsig.RefusalReasoner].
var ErrKeyDisabled = errors.New("keys: key disabled")

// ReasonKeyDisabled is the reason code of a request refused because its key
// is disabled ([ErrKeyDisabled]): a 401, as for a revoked key.
const ReasonKeyDisabled httpsig.Reason = "key-disabled"

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
	StatusDisabled Status = "disabled" // disabled until enabled again
)

// ParseStatus parses the name of a status.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case StatusActive, StatusExpiring, StatusExpired, StatusRevoked, StatusDisabled:
		return st, nil
	}
	return "", fmt.Errorf("%w: status %q is none of active, expiring, expired, disabled, revoked", ErrInvalid, s)
}

// A Key is what the service knows of a key, without its secret.
//
// Its JSON form has a "status" member: the key's status when the service
// read it, for keys a [Service] returns, else when it is marshalled.
type Key struct {
	ID     string            `json:"id"`
	Owner  string            `json:"owner"`
	Alg    httpsig.Algorithm `json:"alg"`
	Scopes []string          `json:"scopes"`
	Label  string            `json:"label,omitempty"`
	// Metadata is a JSON object of the operator's (at most
	// [MaxMetadataSize] bytes), kept in a canonical form: members sorted,
	// no white space. Nil: none.
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Created     time.Time       `json:"created"`
	Expires     time.Time       `json:"expires,omitzero"`      // zero: never
	Disabled    time.Time       `json:"disabled,omitzero"`     // zero: not disabled
	Revoked     time.Time       `json:"revoked,omitzero"`      // zero: not revoked
	LastUsed    time.Time       `json:"last_used,omitzero"`    // zero: never
	Predecessor string          `json:"predecessor,omitempty"` // the key this one replaced by rotation
	Successor   string          `json:"successor,omitempty"`   // the key that replaced this one by rotation
	RateLimit   *RateLimit      `json:"rate_limit,omitempty"`  // nil: the gateway's default
	Uses        *Uses           `json:"uses,omitempty"`        // nil: no budget
	PublicKey   []byte          `json:"public_key,omitempty"`  // PEM (SPKI) for asymmetric keys; nil for HMAC
	// Version counts the changes to the key; a new key has version 1.
	// [UpdateRequest.Version] names it to make a change only if no other
	// came first.
	Version int64 `json:"version"`

	asOf time.Time // when a service read it; zero: not by a service
}

// Status returns the key's status at now: "revoked" once revoked, whenever
// that was; "expired" from its expiry time on (for a rotated key, the end
// of its overlap); "disabled" while disabled; "expiring" if it was rotated
// and its overlap has not ended; "active" otherwise.
func (k *Key) Status(now time.Time) Status {
	switch {
	case !k.Revoked.IsZero():
		return StatusRevoked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return StatusExpired
	case !k.Disabled.IsZero():
		return StatusDisabled
	case k.Successor != "":
		return StatusExpiring
	}
	return StatusActive
}

// keyJSON is the JSON form of a Key: its id and status come first, and
// the public key is PEM text; these fields shadow those of the embedded
// Key.
type keyJSON struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	plainKey
	PublicKey string `json:"public_key,omitempty"`
}

type plainKey Key // without the methods, so that encoding/json does not recurse

// MarshalJSON encodes the key with the members its tags name, leaving out
// those that are zero, but with public_key as PEM text rather than base64,
// scopes always an array, and its status.
func (k Key) MarshalJSON() ([]byte, error) {
	at := k.asOf
	if at.IsZero() {
		at = time.Now()
	}
	j := keyJSON{ID: k.ID, Status: k.Status(at), plainKey: plainKey(k), PublicKey: string(k.PublicKey)}
	if j.Scopes == nil {
		j.Scopes = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes; the status is worked out
// again from the other members when needed.
func (k *Key) UnmarshalJSON(data []byte) error {
	var j keyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*k = Key(j.plainKey)
	k.ID = j.ID
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
	// Metadata is a JSON object, at most MaxMetadataSize bytes in its
	// canonical form; nil, null or {} for none.
	Metadata  json.RawMessage
	RateLimit RateLimit // zero: none; a zero Burst is Rate.N
	Uses      Uses      // zero: no budget; only Remaining and Refill are read
	Actor     string    // who asks, for the audit log
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

// An UpdateRequest changes a key: see [Service.Update]. Nil fields are
// left as they are.
type UpdateRequest struct {
	ID string // the key to change; required
	// Version, if not zero, must be the key's version, or the update
	// fails with an error wrapping ErrConflict: someone changed the key
	// since the caller read it.
	Version  int64
	Label    *string
	Expires  *time.Time // the zero time: never
	Scopes   *[]string
	Metadata json.RawMessage // nil: unchanged; null or {}: none
	// RateLimit replaces the rate limit; the zero RateLimit removes it.
	RateLimit *RateLimit
	// Uses sets a new budget (Remaining and Refill), counted from now;
	// the zero Uses removes it.
	Uses  *Uses
	Actor string // who asks, for the audit log
}

// ListFilter selects keys for [Service.List] and [Service.ListPage]. The
// zero value selects every key that is not revoked.
type ListFilter struct {
	Owner    string // only this owner's keys, if not empty
	IDPrefix string // only keys whose id starts with this, if not empty
	Scope    string // only keys with this scope, if not empty
	// Status, if not empty, selects the keys of this status (at the
	// time of the call); revoked keys are selected by StatusRevoked
	// alone.
	Status         Status
	IncludeRevoked bool
}

// A ListRequest asks [Service.ListPage] for one page of keys.
type ListRequest struct {
	ListFilter
	// Cursor is the Next of the page before; empty for the first.
	Cursor string
	// Limit is the most keys on the page: 1 to MaxPageSize; zero means
	// DefaultPageSize.
	Limit int
}

// Sizes of a page of [Service.ListPage].
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// A KeyPage is one page of keys, oldest first.
type KeyPage struct {
	Keys []Key `json:"keys"`
	// Next is the cursor of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
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
	ActionDisable   Action = "disable"
	ActionEnable    Action = "enable"
	ActionUpdate    Action = "update"     // label, expiry, metadata or scopes
	ActionSetLimits Action = "set-limits" // rate limit or uses
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
