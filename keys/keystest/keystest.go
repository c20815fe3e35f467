// Package keystest checks that an implementation of [keys.Store] keeps the
// contract a [keys.Service] relies on: [Run] is the behavioural suite that
// every store in [github.com/signet-dev/signet/keys] passes. It tests what
// differs from one back end to another: the store's own methods, changes
// reported by Watch and honoured by a service on another handle, the
// append-only audit log, secrets at rest, and writers racing on two
// handles. What a service does over any store is tested in package keys.
// A store's tests call it as
//
//	func TestConformance(t *testing.T) {
//		keystest.Run(t, keystest.Harness{NewDB: newTestDB})
//	}
//
// where newTestDB makes an empty database for one test.
package keystest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
)

// A Harness tells [Run] how to make databases for the store under test.
type Harness struct {
	// NewDB makes an empty database for one test, and registers its
	// removal with t.Cleanup.
	NewDB func(t *testing.T) DB
}

// A DB is one test's database.
type DB interface {
	// Open returns a new handle on the database, as another process
	// would have. Run closes it (through the service it gives it to, or
	// itself).
	Open(t *testing.T) keys.Store
	// Exec runs one SQL statement on the database, outside any store.
	Exec(t *testing.T, sql string) error
	// Dump returns every byte of the database as it is kept at rest (its
	// files, or a dump of it), for searching for secrets.
	Dump(t *testing.T) []byte
}

// PropagationLimit is how soon a change made through one service must be
// honoured by another on the same database.
const PropagationLimit = time.Second

// Run runs the suite against the databases h makes, one subtest per
// behaviour.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"StoreRoundTrip", testStoreRoundTrip},
		{"StoreInsertConflict", testStoreInsertConflict},
		{"StoreUpdateVersion", testStoreUpdateVersion},
		{"StoreList", testStoreList},
		{"StoreAudit", testStoreAudit},
		{"StoreTouchLastUsed", testStoreTouchLastUsed},
		{"StoreMasterCheck", testStoreMasterCheck},
		{"StoreReseal", testStoreReseal},
		{"StoreCheckGuard", testStoreCheckGuard},
		{"StoreWatch", testStoreWatch},
		{"ConcurrentWriters", testConcurrentWriters},
		{"AuditAppendOnly", testAuditAppendOnly},
		{"SecretsAtRest", testSecretsAtRest},
		{"SwappedCiphertext", testSwappedCiphertext},
		{"StoreListQuery", testStoreListQuery},
		{"StoreUpdateUses", testStoreUpdateUses},
		{"StoreSpendUses", testStoreSpendUses},
		{"StoreUsage", testStoreUsage},
		{"ListPages", testListPages},
		{"MetersShareStore", testMetersShareStore},
		{"RevokePropagates", testRevokePropagates},
		{"DisablePropagates", testDisablePropagates},
		{"ChangesPropagate", testChangesPropagate},
		{"CreatePropagates", testCreatePropagates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, &env{t: t, db: h.NewDB(t), master: keys.NewMasterKey(), clock: testtime.NewClock(start)})
		})
	}
}

// start is where each test's manual clock begins.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type env struct {
	t      *testing.T
	db     DB
	master []byte
	clock  *testtime.Clock
}

// store opens a raw handle, closed at the end of the test.
func (e *env) store() keys.Store {
	s := e.db.Open(e.t)
	e.t.Cleanup(func() { s.Close() })
	return s
}

// service opens a handle and a service over it, on the manual clock unless
// opts says otherwise, closed at the end of the test.
func (e *env) service(opts keys.Options) *keys.Service {
	e.t.Helper()
	return e.serviceOn(e.db.Open(e.t), opts)
}

func (e *env) serviceOn(st keys.Store, opts keys.Options) *keys.Service {
	e.t.Helper()
	if opts.MasterKey == nil {
		opts.MasterKey = e.master
	}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	svc, err := keys.New(context.Background(), st, opts)
	if err != nil {
		st.Close()
		e.t.Fatalf("keys.New: %v", err)
	}
	e.t.Cleanup(func() { svc.Close() })
	return svc
}

func ctx() context.Context { return context.Background() }

// record returns a stored-key record with distinct values in every field.
func record(id, owner string, created time.Time) keys.Record {
	return keys.Record{Key: keys.Key{
		ID: id, Owner: owner, Alg: httpsig.AlgHMACSHA256, Scopes: []string{"orders:read", "admin"},
		Label: "label of " + id, Created: created, Expires: created.Add(90 * 24 * time.Hour),
		Metadata:  json.RawMessage(`{"plan":"gold","n":[1,2.5e3]}`),
		RateLimit: &keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}, Burst: 250},
		Uses: &keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 5000, Per: 24 * time.Hour},
			Refilled: created.Add(time.Microsecond), Set: created.Add(2 * time.Microsecond)},
	}, Secret: []byte("sealed secret of " + id)}
}

func pubRecord(id, owner string, created time.Time) keys.Record {
	r := record(id, owner, created)
	r.Alg, r.Secret, r.PublicKey, r.Expires = httpsig.AlgEd25519, nil, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"), time.Time{}
	r.Predecessor, r.Successor, r.Scopes = "pk_before", "pk_after", []string{}
	r.Disabled, r.Metadata, r.RateLimit, r.Uses = created.Add(time.Minute), nil, nil, nil
	return r
}

func event(action keys.Action, keyID string, at time.Time) keys.AuditEvent {
	return keys.AuditEvent{Time: at, Actor: "tester", Action: action, KeyID: keyID, Detail: string(action) + " " + keyID}
}

func mustApply(t *testing.T, s keys.Store, w *keys.Write) {
	t.Helper()
	if err := s.Apply(ctx(), w); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustGet(t *testing.T, s keys.Store, id string) *keys.Record {
	t.Helper()
	r, err := s.Get(ctx(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func audit(t *testing.T, s keys.Store, f keys.AuditFilter) []keys.AuditEvent {
	t.Helper()
	evs, err := s.Audit(ctx(), f)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return evs
}

func allKeys(t *testing.T, s keys.Store) []keys.Key {
	t.Helper()
	ks, err := s.List(ctx(), keys.ListQuery{ListFilter: keys.ListFilter{IncludeRevoked: true}})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ks
}

// equalRecords compares records field by field, times as instants.
func equalRecords(t *testing.T, got, want *keys.Record) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []*time.Time{&g.Created, &g.Expires, &g.Revoked, &g.LastUsed, &w.Created, &w.Expires, &w.Revoked, &w.LastUsed} {
		if !p.IsZero() {
			if p.Location() != time.UTC {
				t.Errorf("time %v is not in UTC", *p)
			}
			*p = p.UTC()
		}
	}
	if w.Scopes == nil {
		w.Scopes = []string{}
	}
	// A Record marshals as its Key, without the secret.
	if !equalJSON(g, w) || !bytes.Equal(g.Secret, w.Secret) || g.Version != w.Version {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Errorf("record differs:\n got %s, secret %q, version %d\nwant %s, secret %q, version %d", gj, g.Secret, g.Version, wj, w.Secret, w.Version)
	}
}

func equalJSON(a, b any) bool {
	aj, err1 := json.Marshal(a)
	bj, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(aj, bj)
}

func testStoreRoundTrip(t *testing.T, e *env) {
	s := e.store()
	now := start.Add(time.Microsecond * 123456)
	hm := record("sk_roundtrip00000000000001", "alice@example.com", now)
	hm.Revoked, hm.LastUsed = now.Add(time.Hour), now.Add(time.Minute)
	pk := pubRecord("pk_roundtrip00000000000001", "bob", now.Add(time.Second))
	mustApply(t, s, &keys.Write{Insert: []keys.Record{hm, pk}, Events: []keys.AuditEvent{event("create", hm.ID, now)}})
	hm.Version, pk.Version = 1, 1
	equalRecords(t, mustGet(t, s, hm.ID), &hm)
	equalRecords(t, mustGet(t, s, pk.ID), &pk)
	if got := mustGet(t, s, pk.ID); got.Secret != nil || got.PublicKey == nil {
		t.Errorf("public key record: Secret %v, PublicKey %q", got.Secret, got.PublicKey)
	}

	if _, err := s.Get(ctx(), "sk_nosuchkey0000000000001"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	ks := allKeys(t, s)
	if len(ks) != 2 || ks[0].ID != hm.ID || ks[1].ID != pk.ID {
		t.Fatalf("List = %v, want both keys, oldest first", ks)
	}
	if !equalJSON(ks[0], hm.Key) {
		t.Errorf("List()[0] = %+v, want %+v", ks[0], hm.Key)
	}
	if err := s.Ping(ctx()); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

func testStoreInsertConflict(t *testing.T, e *env) {
	s := e.store()
	a := record("sk_conflict0000000000000a", "alice", start)
	mustApply(t, s, &keys.Write{Insert: []keys.Record{a}, Events: []keys.AuditEvent{event("create", a.ID, start)}})
	b := record("sk_conflict0000000000000b", "bob", start)
	dup := record(a.ID, "mallory", start.Add(time.Second))
	err := s.Apply(ctx(), &keys.Write{Insert: []keys.Record{b, dup}, Events: []keys.AuditEvent{event("create", b.ID, start)}})
	if !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("Apply(duplicate id) = %v, want ErrConflict", err)
	}
	if _, err := s.Get(ctx(), b.ID); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a key of the failed write was stored: Get = %v", err)
	}
	if got := mustGet(t, s, a.ID); got.Owner != "alice" {
		t.Errorf("the existing key was overwritten: owner %q", got.Owner)
	}
	if evs := audit(t, s, keys.AuditFilter{}); len(evs) != 1 {
		t.Errorf("the failed write left audit events: %v", evs)
	}
}

func testStoreUpdateVersion(t *testing.T, e *env) {
	s := e.store()
	a := record("sk_version0000000000000a", "alice", start)
	mustApply(t, s, &keys.Write{Insert: []keys.Record{a}})
	got := mustGet(t, s, a.ID)
	upd := *got
	upd.Scopes, upd.Revoked, upd.Expires, upd.Successor = []string{"x"}, start.Add(time.Hour), start.Add(2*time.Hour), "sk_next"
	upd.Label, upd.Disabled, upd.Metadata = "new label", start.Add(time.Minute), json.RawMessage(`{"a":1}`)
	upd.RateLimit = &keys.RateLimit{Rate: keys.Rate{N: 5, Per: time.Second}, Burst: 7}
	upd.Owner, upd.Created, upd.Predecessor, upd.LastUsed, upd.Secret = "ignored", start.Add(time.Hour), "ignored", start, []byte("ignored")
	mustApply(t, s, &keys.Write{Update: []keys.Record{upd}, Events: []keys.AuditEvent{event("revoke", a.ID, start)}})
	after := mustGet(t, s, a.ID)
	want := *got
	want.Scopes, want.Revoked, want.Expires, want.Successor, want.Version = upd.Scopes, upd.Revoked, upd.Expires, upd.Successor, got.Version+1
	want.Label, want.Disabled, want.Metadata, want.RateLimit = upd.Label, upd.Disabled, upd.Metadata, upd.RateLimit
	equalRecords(t, after, &want)

	stale := upd // still at the old version
	stale.Scopes = []string{"stale"}
	if err := s.Apply(ctx(), &keys.Write{Update: []keys.Record{stale}, Events: []keys.AuditEvent{event("x", a.ID, start)}}); !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("Apply(stale version) = %v, want ErrConflict", err)
	}
	equalRecords(t, mustGet(t, s, a.ID), &want)

	b := record("sk_version0000000000000b", "bob", start)
	missing := record("sk_version0000000000000c", "carol", start)
	missing.Version = 1
	err := s.Apply(ctx(), &keys.Write{Insert: []keys.Record{b}, Update: []keys.Record{missing}, Events: []keys.AuditEvent{event("x", b.ID, start)}})
	if !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("Apply(update of a missing key) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx(), b.ID); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("the insert of a failed write was kept: Get = %v", err)
	}
	if evs := audit(t, s, keys.AuditFilter{}); len(evs) != 1 {
		t.Errorf("audit log = %d events, want 1 (failed writes leave none)", len(evs))
	}
}

func testStoreList(t *testing.T, e *env) {
	s := e.store()
	var recs []keys.Record
	for i, owner := range []string{"alice", "bob", "alice", "alice"} {
		r := record(fmt.Sprintf("sk_list00000000000000000%d", i), owner, start.Add(time.Duration(3-i)*time.Minute))
		if i == 2 {
			r.Revoked = start
		}
		recs = append(recs, r)
	}
	mustApply(t, s, &keys.Write{Insert: recs})
	ids := func(f keys.ListFilter) []string {
		ks, err := s.List(ctx(), keys.ListQuery{ListFilter: f})
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, k.ID[len(k.ID)-1:])
		}
		return out
	}
	for _, tt := range []struct {
		f    keys.ListFilter
		want []string
	}{
		{keys.ListFilter{}, []string{"3", "1", "0"}},
		{keys.ListFilter{IncludeRevoked: true}, []string{"3", "2", "1", "0"}},
		{keys.ListFilter{Owner: "alice"}, []string{"3", "0"}},
		{keys.ListFilter{Owner: "alice", IncludeRevoked: true}, []string{"3", "2", "0"}},
		{keys.ListFilter{Owner: "nobody"}, nil},
	} {
		if got := ids(tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("List(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}

func testStoreAudit(t *testing.T, e *env) {
	s := e.store()
	for i := range 5 {
		id := "sk_a"
		if i%2 == 1 {
			id = "sk_b"
		}
		mustApply(t, s, &keys.Write{Events: []keys.AuditEvent{event(keys.Action(fmt.Sprintf("act%d", i)), id, start.Add(time.Duration(i)*time.Second))}})
	}
	mustApply(t, s, &keys.Write{Events: []keys.AuditEvent{{Time: start.Add(time.Minute), Actor: "root", Action: "rekey"}}})
	all := audit(t, s, keys.AuditFilter{})
	if len(all) != 6 {
		t.Fatalf("Audit() = %d events, want 6", len(all))
	}
	for i, ev := range all {
		if i > 0 && ev.ID <= all[i-1].ID {
			t.Errorf("event ids do not increase: %d after %d", ev.ID, all[i-1].ID)
		}
		if i < 5 && (string(ev.Action) != fmt.Sprintf("act%d", i) || !ev.Time.Equal(start.Add(time.Duration(i)*time.Second)) || ev.Actor != "tester") {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	if last := all[5]; last.KeyID != "" || last.Action != "rekey" || last.Actor != "root" {
		t.Errorf("last event = %+v", last)
	}
	var acts []string
	for _, ev := range audit(t, s, keys.AuditFilter{KeyID: "sk_a"}) {
		acts = append(acts, string(ev.Action))
	}
	if !slices.Equal(acts, []string{"act0", "act2", "act4"}) {
		t.Errorf("Audit(KeyID sk_a) = %v", acts)
	}
	acts = nil
	for _, ev := range audit(t, s, keys.AuditFilter{Limit: 2}) {
		acts = append(acts, string(ev.Action))
	}
	if !slices.Equal(acts, []string{"act4", "rekey"}) {
		t.Errorf("Audit(Limit 2) = %v, want the last two, oldest first", acts)
	}
}

func testStoreTouchLastUsed(t *testing.T, e *env) {
	s := e.store()
	a := record("sk_touch00000000000000000", "alice", start)
	mustApply(t, s, &keys.Write{Insert: []keys.Record{a}})
	t1 := start.Add(time.Hour + 123*time.Microsecond)
	if err := s.TouchLastUsed(ctx(), map[string]time.Time{a.ID: t1, "sk_unknown000000000000000": t1}); err != nil {
		t.Fatalf("TouchLastUsed: %v", err)
	}
	got := mustGet(t, s, a.ID)
	if !got.LastUsed.Equal(t1) || got.Version != 1 {
		t.Errorf("after touch: LastUsed %v (want %v), version %d (want 1)", got.LastUsed, t1, got.Version)
	}
	if err := s.TouchLastUsed(ctx(), map[string]time.Time{a.ID: start}); err != nil {
		t.Fatalf("TouchLastUsed: %v", err)
	}
	if got := mustGet(t, s, a.ID); !got.LastUsed.Equal(t1) {
		t.Errorf("an earlier time replaced a later one: %v", got.LastUsed)
	}
}

func testStoreMasterCheck(t *testing.T, e *env) {
	s1, s2 := e.store(), e.store()
	if c, err := s1.MasterCheck(ctx(), nil); err != nil || c != nil {
		t.Fatalf("MasterCheck(nil) on a new store = %q, %v; want nil, nil", c, err)
	}
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	for i, s := range []keys.Store{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.MasterCheck(ctx(), []byte(fmt.Sprintf("check %d", i)))
			if err != nil {
				t.Errorf("MasterCheck: %v", err)
			}
			got[i] = c
		}()
	}
	wg.Wait()
	if !bytes.Equal(got[0], got[1]) || got[0] == nil {
		t.Fatalf("racing MasterCheck calls got %q and %q, want one value", got[0], got[1])
	}
	if c, _ := s1.MasterCheck(ctx(), []byte("later")); !bytes.Equal(c, got[0]) {
		t.Errorf("MasterCheck replaced the stored value: %q", c)
	}
}

func testStoreReseal(t *testing.T, e *env) {
	s := e.store()
	mustApply(t, s, &keys.Write{Insert: []keys.Record{
		record("sk_reseal0000000000000001", "a", start), record("sk_reseal0000000000000002", "b", start), pubRecord("pk_reseal0000000000000003", "c", start),
	}})
	if _, err := s.MasterCheck(ctx(), []byte("old check")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	calls := 0
	err := s.Reseal(ctx(), func(id string, sealed []byte) ([]byte, error) {
		if calls++; calls == 2 {
			return nil, boom
		}
		return []byte("new " + id), nil
	}, []byte("new check"), event("rekey", "", start))
	if !errors.Is(err, boom) {
		t.Fatalf("Reseal with a failing function = %v, want its error", err)
	}
	if got := mustGet(t, s, "sk_reseal0000000000000001"); string(got.Secret) != "sealed secret of sk_reseal0000000000000001" {
		t.Errorf("a failed Reseal changed a secret: %q", got.Secret)
	}
	if c, _ := s.MasterCheck(ctx(), nil); string(c) != "old check" {
		t.Errorf("a failed Reseal changed the check value: %q", c)
	}
	var seen []string
	err = s.Reseal(ctx(), func(id string, sealed []byte) ([]byte, error) {
		if string(sealed) != "sealed secret of "+id {
			t.Errorf("Reseal gave %q for %s", sealed, id)
		}
		seen = append(seen, id)
		return []byte("new " + id), nil
	}, []byte("new check"), event("rekey", "", start))
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"sk_reseal0000000000000001", "sk_reseal0000000000000002"}) {
		t.Errorf("Reseal visited %v, want the two keys with secrets", seen)
	}
	for _, id := range seen {
		if got := mustGet(t, s, id); string(got.Secret) != "new "+id || got.Version != 1 {
			t.Errorf("%s after Reseal: secret %q, version %d", id, got.Secret, got.Version)
		}
	}
	if c, _ := s.MasterCheck(ctx(), nil); string(c) != "new check" {
		t.Errorf("check value after Reseal = %q", c)
	}
	if evs := audit(t, s, keys.AuditFilter{}); len(evs) != 1 || evs[0].Action != "rekey" {
		t.Errorf("audit log after Reseal = %+v, want one rekey event", evs)
	}
}

func testStoreCheckGuard(t *testing.T, e *env) {
	s := e.store()
	check, err := s.MasterCheck(ctx(), []byte("the check"))
	if err != nil {
		t.Fatal(err)
	}
	a := record("sk_guard00000000000000001", "a", start)
	err = s.Apply(ctx(), &keys.Write{Insert: []keys.Record{a}, Events: []keys.AuditEvent{event("create", a.ID, start)}, Check: []byte("another check")})
	if !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Fatalf("Apply with a stale check value = %v, want ErrWrongMasterKey", err)
	}
	if len(allKeys(t, s)) != 0 || len(audit(t, s, keys.AuditFilter{})) != 0 {
		t.Errorf("the refused write was stored")
	}
	mustApply(t, s, &keys.Write{Insert: []keys.Record{a}, Check: check})
}

// watcher collects the events of a store's Watch.
type watcher struct {
	mu     sync.Mutex
	events []keys.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func watch(t *testing.T, s keys.Store) *watcher {
	c, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s.Watch(c, func(ev keys.Event) {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		})
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) snapshot() []keys.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

// waitFor waits up to limit for an event that ok accepts among those after
// the first skip.
func (w *watcher) waitFor(t *testing.T, skip int, limit time.Duration, what string, ok func(keys.Event) bool) {
	t.Helper()
	testtime.Eventually(t, limit, func() error {
		evs := w.snapshot()
		if slices.ContainsFunc(evs[min(skip, len(evs)):], ok) {
			return nil
		}
		return fmt.Errorf("no %s; events: %+v", what, evs)
	})
}

func changed(id string) func(keys.Event) bool {
	return func(ev keys.Event) bool { return slices.Contains(ev.Changed, id) || ev.Reset }
}

func testStoreWatch(t *testing.T, e *env) {
	a, b := e.store(), e.store()
	w := watch(t, a)
	w.waitFor(t, 0, 5*time.Second, "first Reset", func(ev keys.Event) bool { return ev.Reset })
	n := len(w.snapshot())
	k := record("sk_watch00000000000000001", "a", start)
	mustApply(t, b, &keys.Write{Insert: []keys.Record{k}})
	// How soon is the business of the service tests (RevokePropagates);
	// here, that it is reported at all.
	w.waitFor(t, n, 5*time.Second, "event for an insert through another handle", changed(k.ID))

	n = len(w.snapshot())
	got := mustGet(t, b, k.ID)
	got.Revoked = start
	mustApply(t, b, &keys.Write{Update: []keys.Record{*got}})
	w.waitFor(t, n, 5*time.Second, "event for an update through another handle", changed(k.ID))

	// Neither last-used times, nor re-sealed secrets, nor spent uses (a
	// refill among them) are changes: a change after them shows the
	// watcher has looked past them.
	n = len(w.snapshot())
	if err := b.TouchLastUsed(ctx(), map[string]time.Time{k.ID: start}); err != nil {
		t.Fatal(err)
	}
	if err := b.Reseal(ctx(), func(id string, s []byte) ([]byte, error) { return s, nil }, []byte("c"), event("rekey", "", start)); err != nil {
		t.Fatal(err)
	}
	if g, err := b.SpendUses(ctx(), k.ID, 3, start.Add(48*time.Hour)); err != nil || g.Spent != 3 {
		t.Fatalf("SpendUses = %+v, %v", g, err)
	}
	marker := record("sk_watch00000000000000002", "a", start)
	mustApply(t, b, &keys.Write{Insert: []keys.Record{marker}})
	w.waitFor(t, n, 5*time.Second, "event for the marker", changed(marker.ID))
	for _, ev := range w.snapshot()[n:] {
		if slices.Contains(ev.Changed, k.ID) {
			t.Errorf("a last-used time, a re-sealed secret or spent uses were reported as a change: %+v", ev)
		}
	}
}

func testAuditAppendOnly(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	c, err := svc.Create(ctx(), keys.CreateRequest{Owner: "alice", Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE signet_audit SET actor = 'mallory'`,
		`DELETE FROM signet_audit`,
	} {
		if err := e.db.Exec(t, q); err == nil {
			t.Errorf("%s succeeded; the audit log must be append-only", q)
		}
	}
	evs, err := svc.Audit(ctx(), keys.AuditFilter{})
	if err != nil || len(evs) != 1 || evs[0].Actor != "tester" || evs[0].KeyID != c.Key.ID {
		t.Errorf("audit log after tampering = %+v, %v", evs, err)
	}
}

// identity is what the middleware reads from a resolved key.
type identity interface {
	KeyID() string
	Owner() string
	Scopes() []string
}

// fixedRand reads the same bytes over and over: every id it makes is the
// same.
type fixedRand struct{}

func (fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func mustCreate(t *testing.T, svc *keys.Service, req keys.CreateRequest) *keys.Created {
	t.Helper()
	if req.Owner == "" {
		req.Owner = "alice"
	}
	if req.Actor == "" {
		req.Actor = "tester"
	}
	c, err := svc.Create(ctx(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func resolveErr(svc *keys.Service, id string) error {
	_, err := svc.ResolveKey(ctx(), id)
	return err
}

// A CountingStore counts the lookups that reach a store, so that tests can
// tell cache hits from misses.
type CountingStore struct {
	keys.Store
	gets atomic.Int64
}

// Get counts the call and passes it on.
func (c *CountingStore) Get(ctx context.Context, id string) (*keys.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// Gets returns how many lookups reached the store.
func (c *CountingStore) Gets() int64 { return c.gets.Load() }

// WaitCached resolves id through svc, whose store is st, until the
// service answers from its cache twice running: its watch is up and the
// key is cached. It fails the test after 5 s.
func WaitCached(t testing.TB, svc *keys.Service, st *CountingStore, id string) {
	t.Helper()
	testtime.Eventually(t, 5*time.Second, func() error {
		before := st.Gets()
		_, err1 := svc.ResolveKey(context.Background(), id)
		_, err2 := svc.ResolveKey(context.Background(), id)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if st.Gets() != before {
			return fmt.Errorf("%s is not answered from the cache", id)
		}
		return nil
	})
}

// secretForms returns the encodings a secret could leak in.
func secretForms(secret []byte) map[string][]byte {
	return map[string][]byte{
		"raw":                secret,
		"base64":             []byte(base64.StdEncoding.EncodeToString(secret)),
		"unpadded base64":    []byte(base64.RawStdEncoding.EncodeToString(secret)),
		"base64url":          []byte(base64.URLEncoding.EncodeToString(secret)),
		"unpadded base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
		"hex":                []byte(hex.EncodeToString(secret)),
		"upper-case hex":     []byte(strings.ToUpper(hex.EncodeToString(secret))),
	}
}

func checkNoSecrets(t *testing.T, dump []byte, what string, secrets map[string][]byte, ids []string) {
	t.Helper()
	for _, id := range ids {
		if !bytes.Contains(dump, []byte(id)) {
			t.Fatalf("%s does not hold key id %s: it is not a dump of the keys", what, id)
		}
	}
	for name, secret := range secrets {
		for form, b := range secretForms(secret) {
			if bytes.Contains(dump, b) {
				t.Errorf("%s holds %s as %s", what, name, form)
			}
		}
	}
}

func testSecretsAtRest(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	secrets := map[string][]byte{"the master key": e.master}
	var ids []string
	for i := range 3 {
		c := mustCreate(t, svc, keys.CreateRequest{Label: fmt.Sprintf("key %d", i)})
		secrets["secret of "+c.Key.ID] = c.Secret
		ids = append(ids, c.Key.ID)
	}
	rot, err := svc.Rotate(ctx(), keys.RotateRequest{ID: ids[0], Overlap: time.Hour, Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	secrets["secret of "+rot.Key.ID] = rot.Secret
	ids = append(ids, rot.Key.ID)
	checkNoSecrets(t, e.db.Dump(t), "the database", secrets, ids)

	newMaster := keys.NewMasterKey()
	secrets["the new master key"] = newMaster
	if err := svc.Rekey(ctx(), newMaster, "tester"); err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, e.db.Dump(t), "the database after rekey", secrets, ids)
	svc.Close()
	checkNoSecrets(t, e.db.Dump(t), "the database after close", secrets, ids)
}

func testSwappedCiphertext(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	a := mustCreate(t, svc, keys.CreateRequest{})
	b := mustCreate(t, svc, keys.CreateRequest{})
	svc.Close()
	q := fmt.Sprintf(`UPDATE signet_keys SET secret = (SELECT secret FROM signet_keys WHERE id = '%s') WHERE id = '%s'`, b.Key.ID, a.Key.ID)
	if err := e.db.Exec(t, q); err != nil {
		t.Fatalf("copying a sealed secret: %v", err)
	}
	fresh := e.service(keys.Options{})
	_, err := fresh.ResolveKey(ctx(), a.Key.ID)
	if err == nil || errors.Is(err, httpsig.ErrUnknownKey) || errors.Is(err, httpsig.ErrKeyRevoked) || errors.Is(err, httpsig.ErrKeyExpired) {
		t.Fatalf("ResolveKey of a key holding another key's sealed secret = %v; want a failure that is not a refusal (fail closed)", err)
	}
	if !strings.Contains(err.Error(), "does not open") {
		t.Errorf("error %q does not say the secret does not open", err)
	}
	if err := resolveErr(fresh, b.Key.ID); err != nil {
		t.Errorf("the key whose secret was copied: %v", err)
	}
}

func testRevokePropagates(t *testing.T, e *env) {
	admin := e.service(keys.Options{})
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, keys.Options{})
	c := mustCreate(t, admin, keys.CreateRequest{})
	WaitCached(t, gateway, st, c.Key.ID)
	if err := admin.Revoke(ctx(), c.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	took := testtime.Eventually(t, PropagationLimit, func() error {
		err := resolveErr(gateway, c.Key.ID)
		if errors.Is(err, httpsig.ErrKeyRevoked) {
			return nil
		}
		if err != nil {
			t.Fatalf("ResolveKey = %v", err)
		}
		return errors.New("the other service still accepts the revoked key")
	})
	t.Logf("revocation honoured by the other service after %v", took)
}

func testChangesPropagate(t *testing.T, e *env) {
	admin := e.service(keys.Options{})
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, keys.Options{})
	c := mustCreate(t, admin, keys.CreateRequest{Scopes: []string{"a"}})
	d := mustCreate(t, admin, keys.CreateRequest{})
	WaitCached(t, gateway, st, c.Key.ID)
	WaitCached(t, gateway, st, d.Key.ID)
	if err := admin.SetScopes(ctx(), c.Key.ID, []string{"b"}, "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Rotate(ctx(), keys.RotateRequest{ID: d.Key.ID, Actor: "tester"}); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, PropagationLimit, func() error {
		k, err := gateway.ResolveKey(ctx(), c.Key.ID)
		if err != nil {
			t.Fatal(err)
		}
		scopes, rotated := k.(identity).Scopes(), resolveErr(gateway, d.Key.ID)
		if slices.Equal(scopes, []string{"b"}) && errors.Is(rotated, httpsig.ErrKeyExpired) {
			return nil
		}
		return fmt.Errorf("the other service has scopes %v and the rotated key gives %v", scopes, rotated)
	})
}

// testCreatePropagates creates a key through one service under a keyid
// that another remembers as naming no key: the other sees it at once, not
// when its negative cache expires (it never does here: the clock stands
// still).
func testCreatePropagates(t *testing.T, e *env) {
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, keys.Options{})
	known := mustCreate(t, gateway, keys.CreateRequest{})
	WaitCached(t, gateway, st, known.Key.ID)
	var b [16]byte
	fixedRand{}.Read(b[:])
	id := "sk_" + base64.RawURLEncoding.EncodeToString(b[:])
	testtime.Eventually(t, 5*time.Second, func() error {
		before := st.Gets()
		if err := resolveErr(gateway, id); !errors.Is(err, httpsig.ErrUnknownKey) {
			t.Fatalf("ResolveKey(%s) = %v, want ErrUnknownKey", id, err)
		}
		if st.Gets() != before {
			return errors.New("the unknown keyid is not remembered")
		}
		return nil
	})
	admin := e.service(keys.Options{Rand: fixedRand{}})
	if c := mustCreate(t, admin, keys.CreateRequest{}); c.Key.ID != id {
		t.Fatalf("fixed randomness made %s, want %s", c.Key.ID, id)
	}
	took := testtime.Eventually(t, PropagationLimit, func() error { return resolveErr(gateway, id) })
	t.Logf("a new key was seen after %v", took)
}

// testConcurrentWriters updates one key through two handles at once, each
// write naming the version it read: exactly one write succeeds per
// version, the others conflict, and none is lost.
func testConcurrentWriters(t *testing.T, e *env) {
	a, b := e.store(), e.store()
	k := record("sk_concurrent000000000001", "alice", start)
	mustApply(t, a, &keys.Write{Insert: []keys.Record{k}})
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i, s := range []keys.Store{a, b, a, b} {
		wg.Go(func() {
			for j := range 20 {
				r, err := s.Get(ctx(), k.ID)
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				r.Scopes = []string{fmt.Sprintf("w%d-%d", i, j)}
				err = s.Apply(ctx(), &keys.Write{Update: []keys.Record{*r}, Events: []keys.AuditEvent{event(keys.ActionSetScopes, k.ID, start)}})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, keys.ErrConflict):
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := mustGet(t, a, k.ID)
	if n := wins.Load(); got.Version != 1+n || n == 0 {
		t.Errorf("%d writes succeeded, and the version is %d: an update was lost or counted twice", n, got.Version)
	}
	if evs := audit(t, b, keys.AuditFilter{KeyID: k.ID}); int64(len(evs)) != wins.Load() {
		t.Errorf("%d audit events for %d successful writes", len(evs), wins.Load())
	}
}

// Bench runs the benchmarks of cold lookups against a store: every
// resolution misses the cache (which is off) and asks the store.
func Bench(b *testing.B, open func(b *testing.B) keys.Store) {
	// The lookup deadline is for a store that hangs; a busy machine must
	// not fail the benchmark.
	svc, err := keys.New(context.Background(), open(b), keys.Options{MasterKey: keys.NewMasterKey(), CacheSize: -1, LookupTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	var ids []string
	for range 100 {
		c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "bench", Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, c.Key.ID)
	}
	b.Run("ResolveCold", func(b *testing.B) {
		var i atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.ResolveKey(context.Background(), ids[int(i.Add(1))%len(ids)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	})
	b.Run("ResolveUnknown", func(b *testing.B) {
		var i atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var raw [16]byte
				n := i.Add(1)
				for j := range 8 {
					raw[j] = byte(n >> (8 * j))
				}
				if _, err := svc.ResolveKey(context.Background(), "sk_"+base64.RawURLEncoding.EncodeToString(raw[:])); !errors.Is(err, httpsig.ErrUnknownKey) {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	})
}
