package keys

import (
	"context"
	"time"
)

// A Store keeps keys, their sealed secrets and the audit log. A [Service]
// is the only caller; it validates what it writes, so a store checks only
// what it must to stay consistent when several services write at once.
//
// Implementations must be safe for concurrent use. Errors wrap
// [ErrNotFound] or [ErrConflict] where the method says so, and
// [ErrUnavailable] when the store cannot answer or write now (unreachable,
// out of disk, locked, shutting down, its file replaced) and the same call
// may succeed later. Any other error also means the store could not do
// what was asked, and the service fails closed. Methods that take a
// context should give up when it is done.
// Timestamps are kept to the microsecond at least and returned in UTC.
type Store interface {
	// Get returns the key with the given id and its sealed secret, or an
	// error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)

	// List returns the keys q selects, oldest first (by creation time,
	// then id), without their secrets: those after q.After, at most
	// q.Limit of them if it is positive.
	List(ctx context.Context, q ListQuery) ([]Key, error)

	// Apply makes the changes of w in one transaction: all of them, or
	// none. A write that returned nil is durable.
	Apply(ctx context.Context, w *Write) error

	// Reseal replaces, in one transaction, the sealed secret of every key
	// that has one with reseal's result for it, sets the master key check
	// value to check, and appends ev to the audit log. If reseal returns
	// an error, nothing changes and Reseal returns that error.
	Reseal(ctx context.Context, reseal func(id string, sealed []byte) ([]byte, error), check []byte, ev AuditEvent) error

	// MasterCheck returns the master key check value held by the store. If
	// it holds none and init is not nil, it stores init and returns it; if
	// two callers race to do so, one wins and both get its value. It
	// returns nil if the store holds none and init is nil.
	MasterCheck(ctx context.Context, init []byte) ([]byte, error)

	// Audit returns the audit events f selects, oldest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// TouchLastUsed sets the last-used time of each key in used to the
	// time given for it, unless the stored one is later. Unknown ids are
	// ignored. It is not a change: it neither bumps versions nor is
	// reported by Watch.
	TouchLastUsed(ctx context.Context, used map[string]time.Time) error

	// SpendUses spends up to n (n >= 0) of the remaining uses of the key
	// id, in one transaction: it reads the key's Uses, calls their Spend
	// method with n and now, and writes them back. It returns what it
	// spent, or a grant with Unlimited set if the key has no budget, or
	// an error wrapping ErrNotFound. Like TouchLastUsed, it is not a
	// change: it neither bumps versions nor is reported by Watch.
	SpendUses(ctx context.Context, id string, n int64, now time.Time) (UsesGrant, error)

	// AddUsage adds the counts of b to those stored, in one transaction:
	// a count of a key, hour, route and outcome already stored grows by
	// N. A batch whose ID the store has added before (within a week of
	// b.Time) is not added again, so that a batch whose write failed
	// without saying whether it was done can be given again. Counts for
	// keys the store does not hold are kept all the same.
	AddUsage(ctx context.Context, b *UsageBatch) error

	// Usage returns the stored counts q selects, summed per hour, route,
	// outcome and (if q.ByKey) key, ordered by hour, route, key and
	// outcome.
	Usage(ctx context.Context, q UsageQuery) ([]UsageCount, error)

	// Watch reports changes made to keys through any handle on the store,
	// in this process or another, by calling fn, one call at a time,
	// until ctx is done; then it returns. It first calls fn with an
	// Event whose Reset is set once it can report changes. If it loses
	// track (a dropped connection), it calls fn with Lost set at once, and
	// with Reset set again when it is back; it keeps trying meanwhile. A
	// key whose change is reported must already read as changed through
	// Get.
	Watch(ctx context.Context, fn func(Event))

	// Ping reports whether the store can be reached and used; while it
	// cannot, the error wraps ErrUnavailable.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// A Record is a key as a [Store] keeps it.
type Record struct {
	Key
	// Secret is the HMAC secret sealed under the master key; nil for an
	// asymmetric key.
	Secret []byte
}

// A Write is a change to a [Store], made by [Store.Apply] as one
// transaction.
type Write struct {
	// Insert adds keys. Apply fails with an error wrapping ErrConflict if
	// one of their ids is taken. Their versions are set to 1.
	Insert []Record

	// Update replaces the label, scopes, metadata, expiry, disabled and
	// revocation times, successor, rate limit and uses of stored keys
	// with those of these records, and bumps their version (Version
	// counts the updates by Apply); other fields are ignored. Of the
	// uses, Remaining and Refilled are written only if the record's
	// Uses.Set is not the stored one (a new budget was set): otherwise
	// they are SpendUses's to change. Apply fails with an error wrapping
	// ErrNotFound if a key does not exist, and ErrConflict if its stored
	// version is not the record's: someone changed it since it was read.
	Update []Record

	// Events are appended to the audit log; their IDs are ignored.
	Events []AuditEvent

	// Check, if not nil, must be the store's master key check value, or
	// Apply fails with an error wrapping ErrWrongMasterKey: so a service
	// does not seal secrets under a master key the store was rekeyed away
	// from.
	Check []byte
}

// An Event is what [Store.Watch] reports.
type Event struct {
	// Changed lists keys that were added or changed.
	Changed []string
	// Reset means changes made before the event may have gone unreported,
	// and are reported from now on: whatever a cache holds may be stale.
	Reset bool
	// Lost means changes may go unreported from now on, until an event
	// with Reset: a cache must not be trusted meanwhile.
	Lost bool
	// Err says why, with Lost.
	Err error
}

// A ListQuery is what [Store.List] reads: a filter, the time at which
// statuses are judged, and a page.
type ListQuery struct {
	ListFilter
	// Now is the time at which Status is judged.
	Now time.Time
	// After, if its ID is not empty, selects only the keys that come
	// after the key it describes in the order of List: created later,
	// or at the same time with a greater id.
	After KeyPosition
	// Limit is the most keys to return, if positive.
	Limit int
}

// A KeyPosition is the place of a key in the order of [Store.List].
type KeyPosition struct {
	Created time.Time
	ID      string
}
