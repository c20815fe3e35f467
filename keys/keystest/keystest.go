// Package keystest checks that an implementation of [keys.Store] behaves as
// a [keys.Service] needs, and that a service over it keeps the promises of
// package keys: [Run] is the behavioural suite that every store in
// [github.com/signet-dev/signet/keys] passes. A store's tests call it as
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
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
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
		{"AuditAppendOnly", testAuditAppendOnly},
		{"CreateHMAC", testCreateHMAC},
		{"CreatePublicKeys", testCreatePublicKeys},
		{"BadInput", testBadInput},
		{"UnknownKey", testUnknownKey},
		{"DuplicateID", testDuplicateID},
		{"Rotate", testRotate},
		{"RotatePublicKey", testRotatePublicKey},
		{"Revoke", testRevoke},
		{"Expiry", testExpiry},
		{"SetScopes", testSetScopes},
		{"LastUsed", testLastUsed},
		{"NegativeCache", testNegativeCache},
		{"SecretsAtRest", testSecretsAtRest},
		{"SwappedCiphertext", testSwappedCiphertext},
		{"WrongMasterKey", testWrongMasterKey},
		{"Rekey", testRekey},
		{"RevokePropagates", testRevokePropagates},
		{"ChangesPropagate", testChangesPropagate},
		{"ConcurrentUse", testConcurrentUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, &env{t: t, db: h.NewDB(t), master: keys.NewMasterKey(), clock: testenv.NewClock(start)})
		})
	}
}

// start is where each test's manual clock begins.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type env struct {
	t      *testing.T
	db     DB
	master []byte
	clock  *testenv.Clock
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

// realTime is Options for a service on the real clock, for tests where
// the store's watch and the service's cache meet.
func realTime() keys.Options { return keys.Options{Now: time.Now} }

func ctx() context.Context { return context.Background() }

// record returns a stored-key record with distinct values in every field.
func record(id, owner string, created time.Time) keys.Record {
	return keys.Record{Key: keys.Key{
		ID: id, Owner: owner, Alg: httpsig.AlgHMACSHA256, Scopes: []string{"orders:read", "admin"},
		Label: "label of " + id, Created: created, Expires: created.Add(90 * 24 * time.Hour),
	}, Secret: []byte("sealed secret of " + id)}
}

func pubRecord(id, owner string, created time.Time) keys.Record {
	r := record(id, owner, created)
	r.Alg, r.Secret, r.PublicKey, r.Expires = httpsig.AlgEd25519, nil, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"), time.Time{}
	r.Predecessor, r.Successor, r.Scopes = "pk_before", "pk_after", []string{}
	return r
}

func event(action, keyID string, at time.Time) keys.AuditEvent {
	return keys.AuditEvent{Time: at, Actor: "tester", Action: action, KeyID: keyID, Detail: action + " " + keyID}
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
	ks, err := s.List(ctx(), keys.ListFilter{IncludeRevoked: true})
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
	upd.Owner, upd.Label = "ignored", "ignored"
	mustApply(t, s, &keys.Write{Update: []keys.Record{upd}, Events: []keys.AuditEvent{event("revoke", a.ID, start)}})
	after := mustGet(t, s, a.ID)
	want := *got
	want.Scopes, want.Revoked, want.Expires, want.Successor, want.Version = upd.Scopes, upd.Revoked, upd.Expires, upd.Successor, got.Version+1
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
		ks, err := s.List(ctx(), f)
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
		mustApply(t, s, &keys.Write{Events: []keys.AuditEvent{event(fmt.Sprintf("act%d", i), id, start.Add(time.Duration(i)*time.Second))}})
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
		if i < 5 && (ev.Action != fmt.Sprintf("act%d", i) || !ev.Time.Equal(start.Add(time.Duration(i)*time.Second)) || ev.Actor != "tester") {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	if last := all[5]; last.KeyID != "" || last.Action != "rekey" || last.Actor != "root" {
		t.Errorf("last event = %+v", last)
	}
	var acts []string
	for _, ev := range audit(t, s, keys.AuditFilter{KeyID: "sk_a"}) {
		acts = append(acts, ev.Action)
	}
	if !slices.Equal(acts, []string{"act0", "act2", "act4"}) {
		t.Errorf("Audit(KeyID sk_a) = %v", acts)
	}
	acts = nil
	for _, ev := range audit(t, s, keys.AuditFilter{Limit: 2}) {
		acts = append(acts, ev.Action)
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
// the first skip, and returns how long it took.
func (w *watcher) waitFor(t *testing.T, skip int, limit time.Duration, what string, ok func(keys.Event) bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		evs := w.snapshot()
		for _, ev := range evs[min(skip, len(evs)):] {
			if ok(ev) {
				return time.Since(begin)
			}
		}
		if time.Since(begin) > limit {
			t.Fatalf("no %s within %v; events: %+v", what, limit, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
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

	// Neither last-used times nor re-sealed secrets are changes.
	time.Sleep(200 * time.Millisecond)
	n = len(w.snapshot())
	if err := b.TouchLastUsed(ctx(), map[string]time.Time{k.ID: start}); err != nil {
		t.Fatal(err)
	}
	if err := b.Reseal(ctx(), func(id string, s []byte) ([]byte, error) { return s, nil }, []byte("c"), event("rekey", "", start)); err != nil {
		t.Fatal(err)
	}
	// A change after them shows the watcher has looked past them.
	marker := record("sk_watch00000000000000002", "a", start)
	mustApply(t, b, &keys.Write{Insert: []keys.Record{marker}})
	w.waitFor(t, n, 5*time.Second, "event for the marker", changed(marker.ID))
	for _, ev := range w.snapshot()[n:] {
		if slices.Contains(ev.Changed, k.ID) {
			t.Errorf("a last-used time or a re-sealed secret was reported as a change: %+v", ev)
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

// signAndVerify signs a request with sk as keyID and verifies it through
// the service, returning the verifier's error.
func signAndVerify(t *testing.T, svc *keys.Service, now func() time.Time, keyID string, sk httpsig.SigningKey) (httpsig.Result, error) {
	t.Helper()
	body := []byte(`{"sku":"B-1","qty":2}`)
	req, err := http.NewRequest("POST", "https://api.example.com/v1/orders?customer=42", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	signer := &httpsig.Signer{Key: sk, KeyID: keyID, Now: now}
	if err := signer.SignRequest(req, body); err != nil {
		t.Fatalf("SignRequest: %v", err)
	}
	v := &httpsig.Verifier{Keys: svc, Now: now}
	return v.VerifyRequest(req, body)
}

// hmacSigner returns the signing key of a created HMAC key, read the way a
// client reads the key file: from the secret's standard base64 text.
func hmacSigner(t *testing.T, c *keys.Created) httpsig.SigningKey {
	t.Helper()
	text, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Secret string }
	if err := json.Unmarshal(text, &out); err != nil {
		t.Fatal(err)
	}
	if out.Secret != base64.StdEncoding.EncodeToString(c.Secret) {
		t.Fatalf("JSON secret %q is not the standard base64 of the secret", out.Secret)
	}
	sk, err := httpsig.LoadSigningKey("", []byte(out.Secret+"\n"))
	if err != nil {
		t.Fatalf("the secret is not a key file: %v", err)
	}
	return sk
}

// identity is what the middleware reads from a resolved key.
type identity interface {
	KeyID() string
	Owner() string
	Scopes() []string
}

func testCreateHMAC(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	expires := e.clock.Now().Add(90 * 24 * time.Hour)
	c, err := svc.Create(ctx(), keys.CreateRequest{Owner: "alice", Scopes: []string{"orders:read", "orders:write", "orders:read"}, Label: "ci runner", Expires: expires, Actor: "tester"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	k := c.Key
	if !strings.HasPrefix(k.ID, "sk_") || len(k.ID) != 25 || strings.ContainsAny(k.ID[3:], "+/=") {
		t.Errorf("id %q is not sk_ and 22 base64url characters", k.ID)
	}
	if len(c.Secret) != 32 {
		t.Errorf("secret is %d bytes, want 32", len(c.Secret))
	}
	if k.Alg != httpsig.AlgHMACSHA256 || k.Owner != "alice" || k.Label != "ci runner" || !k.Expires.Equal(expires) || !k.Created.Equal(e.clock.Now()) ||
		!slices.Equal(k.Scopes, []string{"orders:read", "orders:write"}) || k.PublicKey != nil || k.Status(e.clock.Now()) != keys.StatusActive {
		t.Errorf("created key = %+v", k)
	}
	got, err := svc.Get(ctx(), k.ID)
	if err != nil || !equalJSON(*got, k) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, k)
	}
	res, err := signAndVerify(t, svc, e.clock.Now, k.ID, hmacSigner(t, c))
	if err != nil {
		t.Fatalf("a request signed with the new secret does not verify: %v", err)
	}
	id, ok := res.Key.(identity)
	if !ok {
		t.Fatalf("the resolved key %T has no KeyID, Owner and Scopes methods", res.Key)
	}
	if id.KeyID() != k.ID || id.Owner() != "alice" || !slices.Equal(id.Scopes(), k.Scopes) {
		t.Errorf("resolved identity = %s %s %v", id.KeyID(), id.Owner(), id.Scopes())
	}
	other, _ := httpsig.NewHMACKey(bytes.Repeat([]byte{7}, 32))
	if _, err := signAndVerify(t, svc, e.clock.Now, k.ID, other); !isReason(err, httpsig.ReasonBadSignature) {
		t.Errorf("a request signed with another secret: %v, want bad-signature", err)
	}
	if _, err := svc.Create(ctx(), keys.CreateRequest{Owner: "alice", Alg: httpsig.AlgHMACSHA256}); err != nil {
		t.Errorf("Create with Alg hmac-sha256 named: %v", err)
	}
	evs, _ := svc.Audit(ctx(), keys.AuditFilter{KeyID: k.ID})
	if len(evs) != 1 || evs[0].Action != keys.ActionCreate || evs[0].Actor != "tester" || !evs[0].Time.Equal(e.clock.Now()) {
		t.Errorf("audit of the new key = %+v", evs)
	}
}

func isReason(err error, r httpsig.Reason) bool {
	got, ok := httpsig.ReasonOf(err)
	return ok && got == r
}

// keyPair returns a new key pair for alg, the public key as SPKI PEM.
func keyPair(t *testing.T, alg httpsig.Algorithm) (httpsig.SigningKey, []byte) {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case httpsig.AlgEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case httpsig.AlgECDSAP256SHA256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("keyPair: %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	sk, err := httpsig.NewSigningKey(alg, priv)
	if err != nil {
		t.Fatal(err)
	}
	return sk, publicPEM(t, priv.Public())
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func testCreatePublicKeys(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	edSK, edPEM := keyPair(t, httpsig.AlgEd25519)
	edJWKSK, edJWKPEM := keyPair(t, httpsig.AlgEd25519)
	block, _ := pem.Decode(edJWKPEM)
	pub, _ := x509.ParsePKIXPublicKey(block.Bytes)
	jwk := fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":%q}`, base64.RawURLEncoding.EncodeToString(pub.(ed25519.PublicKey)))
	ecSK, ecPEM := keyPair(t, httpsig.AlgECDSAP256SHA256)
	for _, tt := range []struct {
		name string
		alg  httpsig.Algorithm
		pub  []byte
		sk   httpsig.SigningKey
		want httpsig.Algorithm
		pem  []byte
	}{
		{"ed25519 PEM", httpsig.AlgEd25519, edPEM, edSK, httpsig.AlgEd25519, edPEM},
		{"ed25519 JWK, alg inferred", "", []byte(jwk), edJWKSK, httpsig.AlgEd25519, edJWKPEM},
		{"ecdsa-p256 PEM, alg inferred", "", ecPEM, ecSK, httpsig.AlgECDSAP256SHA256, ecPEM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := svc.Create(ctx(), keys.CreateRequest{Owner: "bob", Alg: tt.alg, PublicKey: tt.pub, Actor: "tester"})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if c.Secret != nil || c.Key.Alg != tt.want || !strings.HasPrefix(c.Key.ID, "pk_") || !bytes.Equal(c.Key.PublicKey, tt.pem) {
				t.Errorf("created %+v, secret %v", c.Key, c.Secret)
			}
			if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, tt.sk); err != nil {
				t.Errorf("a request signed with the private key does not verify: %v", err)
			}
			other, _ := keyPair(t, httpsig.AlgEd25519)
			if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, other); err == nil {
				t.Errorf("a request signed with another key verifies")
			}
		})
	}
}

func testBadInput(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	_, edPEM := keyPair(t, httpsig.AlgEd25519)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	past := e.clock.Now().Add(-time.Second)
	for _, tt := range []struct {
		name string
		req  keys.CreateRequest
		want string
	}{
		{"no owner", keys.CreateRequest{}, "owner is required"},
		{"bad owner", keys.CreateRequest{Owner: "alice\r\nX-Admin: 1"}, "owner"},
		{"bad scope", keys.CreateRequest{Owner: "a", Scopes: []string{"Orders Read"}}, "scope"},
		{"empty scope", keys.CreateRequest{Owner: "a", Scopes: []string{""}}, "scope"},
		{"long scope", keys.CreateRequest{Owner: "a", Scopes: []string{"a" + strings.Repeat("b", 64)}}, "scope"},
		{"bad label", keys.CreateRequest{Owner: "a", Label: "a\x00b"}, "label"},
		{"expiry in the past", keys.CreateRequest{Owner: "a", Expires: past}, "not in the future"},
		{"unknown algorithm", keys.CreateRequest{Owner: "a", Alg: "hmac-md5"}, "unknown algorithm"},
		{"hmac with a public key", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgHMACSHA256, PublicKey: edPEM}, "takes no public key"},
		{"ed25519 without a public key", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgEd25519}, "registered by its public key"},
		{"malformed PEM", keys.CreateRequest{Owner: "a", PublicKey: []byte("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")}, "PEM"},
		{"garbage", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgEd25519, PublicKey: []byte("hello, world")}, "public key"},
		{"private key as public", keys.CreateRequest{Owner: "a", PublicKey: privPEM}, "private key"},
		{"secret as public", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgEd25519, PublicKey: []byte(base64.StdEncoding.EncodeToString(make([]byte, 32)))}, "shared secret"},
		{"wrong algorithm", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgECDSAP256SHA256, PublicKey: edPEM}, "cannot be used with algorithm"},
		{"weak ed25519 key", keys.CreateRequest{Owner: "a", PublicKey: publicPEM(t, ed25519.PublicKey(make([]byte, 32)))}, "weak"},
		{"weak RSA key", keys.CreateRequest{Owner: "a", Alg: httpsig.AlgRSAPSSSHA512, PublicKey: publicPEM(t, &weakRSA.PublicKey)}, "at least 2048"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := svc.Create(ctx(), tt.req)
			if !errors.Is(err, keys.ErrInvalid) {
				t.Fatalf("Create = %+v, %v; want ErrInvalid", c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
	ks, err := svc.List(ctx(), keys.ListFilter{IncludeRevoked: true})
	if err != nil || len(ks) != 0 {
		t.Errorf("refused requests stored keys: %v, %v", ks, err)
	}
	if evs, _ := svc.Audit(ctx(), keys.AuditFilter{}); len(evs) != 0 {
		t.Errorf("refused requests wrote the audit log: %v", evs)
	}
}

func testUnknownKey(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	for _, id := range []string{"sk_AAAAAAAAAAAAAAAAAAAAAA", "pk_AAAAAAAAAAAAAAAAAAAAAA", "nonsense", "", "sk_" + strings.Repeat("é", 11)} {
		if _, err := svc.ResolveKey(ctx(), id); !errors.Is(err, httpsig.ErrUnknownKey) {
			t.Errorf("ResolveKey(%q) = %v, want ErrUnknownKey", id, err)
		}
		if _, err := svc.Get(ctx(), id); !errors.Is(err, keys.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if err := svc.Revoke(ctx(), id, "tester"); !errors.Is(err, keys.ErrNotFound) {
			t.Errorf("Revoke(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := svc.Rotate(ctx(), id, time.Hour, nil, "tester"); !errors.Is(err, keys.ErrNotFound) {
			t.Errorf("Rotate(%q) = %v, want ErrNotFound", id, err)
		}
		if err := svc.SetScopes(ctx(), id, nil, "tester"); !errors.Is(err, keys.ErrNotFound) {
			t.Errorf("SetScopes(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if evs, _ := svc.Audit(ctx(), keys.AuditFilter{}); len(evs) != 0 {
		t.Errorf("failed calls wrote the audit log: %v", evs)
	}
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

func testDuplicateID(t *testing.T, e *env) {
	svc := e.service(keys.Options{Rand: fixedRand{}})
	first, err := svc.Create(ctx(), keys.CreateRequest{Owner: "alice", Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.Create(ctx(), keys.CreateRequest{Owner: "mallory", Actor: "tester"})
	if !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("Create with a taken id = %+v, %v; want ErrConflict", c, err)
	}
	got, err := svc.Get(ctx(), first.Key.ID)
	if err != nil || got.Owner != "alice" {
		t.Errorf("the first key after the clash: %+v, %v", got, err)
	}
	if evs, _ := svc.Audit(ctx(), keys.AuditFilter{}); len(evs) != 1 {
		t.Errorf("audit log = %d events, want 1", len(evs))
	}
	if _, err := svc.Rotate(ctx(), first.Key.ID, time.Hour, nil, "tester"); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("Rotate to a taken id = %v, want ErrConflict", err)
	}
	if got, _ := svc.Get(ctx(), first.Key.ID); got.Successor != "" || !got.Expires.IsZero() {
		t.Errorf("a failed rotation changed the old key: %+v", got)
	}
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

func mustKey(t *testing.T, svc *keys.Service, id string) *keys.Key {
	t.Helper()
	k, err := svc.Get(ctx(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return k
}

func resolveErr(svc *keys.Service, id string) error {
	_, err := svc.ResolveKey(ctx(), id)
	return err
}

func testRotate(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	t0 := e.clock.Now()
	old := mustCreate(t, svc, keys.CreateRequest{Scopes: []string{"orders:read"}, Label: "app", Expires: t0.Add(90 * 24 * time.Hour)})
	oldSK := hmacSigner(t, old)
	e.clock.Advance(24 * time.Hour)
	t1 := e.clock.Now()
	rot, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, nil, "rotator")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	nk := rot.Key
	if len(rot.Secret) != 32 || bytes.Equal(rot.Secret, old.Secret) || nk.ID == old.Key.ID || !strings.HasPrefix(nk.ID, "sk_") {
		t.Errorf("rotation made %+v with a secret of %d bytes", nk, len(rot.Secret))
	}
	if nk.Owner != "alice" || nk.Alg != httpsig.AlgHMACSHA256 || nk.Label != "app" || !slices.Equal(nk.Scopes, []string{"orders:read"}) ||
		nk.Predecessor != old.Key.ID || !nk.Created.Equal(t1) || !nk.Expires.Equal(t1.Add(90*24*time.Hour)) {
		t.Errorf("new key = %+v; want the old one's owner, alg, label, scopes and lifetime", nk)
	}
	ok := mustKey(t, svc, old.Key.ID)
	if ok.Successor != nk.ID || !ok.Expires.Equal(t1.Add(time.Hour)) || ok.Status(t1) != keys.StatusExpiring {
		t.Errorf("old key = %+v, status %s; want successor, expiry after the overlap, expiring", ok, ok.Status(t1))
	}
	if _, err := signAndVerify(t, svc, e.clock.Now, old.Key.ID, oldSK); err != nil {
		t.Errorf("the old key inside its overlap: %v", err)
	}
	if _, err := signAndVerify(t, svc, e.clock.Now, nk.ID, hmacSigner(t, rot)); err != nil {
		t.Errorf("the new key: %v", err)
	}
	e.clock.Advance(time.Hour)
	if _, err := signAndVerify(t, svc, e.clock.Now, old.Key.ID, oldSK); !isReason(err, httpsig.ReasonKeyExpired) {
		t.Errorf("the old key after its overlap: %v, want key-expired", err)
	}
	if err := resolveErr(svc, old.Key.ID); !errors.Is(err, httpsig.ErrKeyExpired) {
		t.Errorf("ResolveKey(old) after the overlap = %v", err)
	}
	if s := mustKey(t, svc, old.Key.ID).Status(e.clock.Now()); s != keys.StatusExpired {
		t.Errorf("old key status after the overlap = %s", s)
	}
	if err := resolveErr(svc, nk.ID); err != nil {
		t.Errorf("ResolveKey(new) = %v", err)
	}
	if _, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, nil, "rotator"); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("rotating a rotated key = %v, want ErrConflict", err)
	}
	if _, err := svc.Rotate(ctx(), nk.ID, -time.Second, nil, "rotator"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("negative overlap = %v, want ErrInvalid", err)
	}
	_, pub := keyPair(t, httpsig.AlgEd25519)
	if _, err := svc.Rotate(ctx(), nk.ID, time.Hour, pub, "rotator"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating an HMAC key with a public key = %v, want ErrInvalid", err)
	}

	// No overlap: the old key stops at once. Its expiry, if sooner than
	// the overlap, stands.
	third, err := svc.Rotate(ctx(), nk.ID, 0, nil, "rotator")
	if err != nil {
		t.Fatal(err)
	}
	if err := resolveErr(svc, nk.ID); !errors.Is(err, httpsig.ErrKeyExpired) {
		t.Errorf("key rotated without overlap = %v, want ErrKeyExpired", err)
	}
	soon := mustCreate(t, svc, keys.CreateRequest{Expires: e.clock.Now().Add(time.Minute)})
	if _, err := svc.Rotate(ctx(), soon.Key.ID, time.Hour, nil, "rotator"); err != nil {
		t.Fatal(err)
	}
	if k := mustKey(t, svc, soon.Key.ID); !k.Expires.Equal(soon.Key.Expires) {
		t.Errorf("rotation pushed an expiry back: %v, was %v", k.Expires, soon.Key.Expires)
	}

	if err := svc.Revoke(ctx(), third.Key.ID, "rotator"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Rotate(ctx(), third.Key.ID, time.Hour, nil, "rotator"); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("rotating a revoked key = %v, want ErrConflict", err)
	}
	var acts []string
	for _, ev := range audit(t, e.store(), keys.AuditFilter{KeyID: old.Key.ID}) {
		acts = append(acts, ev.Action+" by "+ev.Actor)
	}
	if !slices.Equal(acts, []string{"create by tester", "rotate by rotator"}) {
		t.Errorf("audit of the old key = %v", acts)
	}
	if evs := audit(t, e.store(), keys.AuditFilter{KeyID: nk.ID}); len(evs) < 1 || evs[0].Action != keys.ActionCreate || !strings.Contains(evs[0].Detail, old.Key.ID) {
		t.Errorf("audit of the new key = %+v, want its creation naming its predecessor", evs)
	}
}

func testRotatePublicKey(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	sk1, pub1 := keyPair(t, httpsig.AlgEd25519)
	old := mustCreate(t, svc, keys.CreateRequest{PublicKey: pub1})
	if _, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, nil, "tester"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating an ed25519 key without a new public key = %v, want ErrInvalid", err)
	}
	if _, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, pub1, "tester"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating to the same public key = %v, want ErrInvalid", err)
	}
	_, ecPub := keyPair(t, httpsig.AlgECDSAP256SHA256)
	if _, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, ecPub, "tester"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating to a key of another algorithm = %v, want ErrInvalid", err)
	}
	sk2, pub2 := keyPair(t, httpsig.AlgEd25519)
	rot, err := svc.Rotate(ctx(), old.Key.ID, time.Hour, pub2, "tester")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if rot.Secret != nil || !bytes.Equal(rot.Key.PublicKey, pub2) || !strings.HasPrefix(rot.Key.ID, "pk_") {
		t.Errorf("rotated to %+v", rot)
	}
	for id, sk := range map[string]httpsig.SigningKey{old.Key.ID: sk1, rot.Key.ID: sk2} {
		if _, err := signAndVerify(t, svc, e.clock.Now, id, sk); err != nil {
			t.Errorf("%s inside the overlap: %v", id, err)
		}
	}
}

func testRevoke(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{})
	other := mustCreate(t, svc, keys.CreateRequest{})
	sk := hmacSigner(t, c)
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); err != nil {
		t.Fatal(err)
	}
	if err := svc.Revoke(ctx(), c.Key.ID, "admin-1"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); !isReason(err, httpsig.ReasonKeyRevoked) {
		t.Errorf("a revoked key: %v, want key-revoked", err)
	}
	k := mustKey(t, svc, c.Key.ID)
	if k.Status(e.clock.Now()) != keys.StatusRevoked || !k.Revoked.Equal(e.clock.Now()) {
		t.Errorf("revoked key = %+v", k)
	}
	if err := svc.Revoke(ctx(), c.Key.ID, "admin-1"); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("revoking again = %v, want ErrConflict", err)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, []string{"x"}, "admin-1"); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("re-scoping a revoked key = %v, want ErrConflict", err)
	}
	if ks, _ := svc.List(ctx(), keys.ListFilter{}); len(ks) != 1 || ks[0].ID != other.Key.ID {
		t.Errorf("List() = %v, want only the live key", ks)
	}
	if ks, _ := svc.List(ctx(), keys.ListFilter{IncludeRevoked: true}); len(ks) != 2 {
		t.Errorf("List(IncludeRevoked) = %d keys, want 2", len(ks))
	}
	if err := resolveErr(svc, other.Key.ID); err != nil {
		t.Errorf("the other key: %v", err)
	}
	evs, _ := svc.Audit(ctx(), keys.AuditFilter{KeyID: c.Key.ID})
	if len(evs) != 2 || evs[1].Action != keys.ActionRevoke || evs[1].Actor != "admin-1" {
		t.Errorf("audit = %+v", evs)
	}
}

func testExpiry(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{Expires: e.clock.Now().Add(time.Hour)})
	sk := hmacSigner(t, c)
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour - time.Microsecond)
	if err := resolveErr(svc, c.Key.ID); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	e.clock.Advance(time.Microsecond)
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); !isReason(err, httpsig.ReasonKeyExpired) {
		t.Errorf("at expiry: %v, want key-expired", err)
	}
	if s := mustKey(t, svc, c.Key.ID).Status(e.clock.Now()); s != keys.StatusExpired {
		t.Errorf("status = %s", s)
	}
}

func testSetScopes(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{Scopes: []string{"orders:read"}})
	scopesOf := func() []string {
		k, err := svc.ResolveKey(ctx(), c.Key.ID)
		if err != nil {
			t.Fatal(err)
		}
		return k.(identity).Scopes()
	}
	if got := scopesOf(); !slices.Equal(got, []string{"orders:read"}) {
		t.Fatalf("scopes = %v", got)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, []string{"orders:read", "admin"}, "admin-1"); err != nil {
		t.Fatalf("SetScopes: %v", err)
	}
	if got := scopesOf(); !slices.Equal(got, []string{"orders:read", "admin"}) {
		t.Errorf("scopes after SetScopes = %v", got)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, []string{"Admin!"}, "admin-1"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("bad scope = %v, want ErrInvalid", err)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, []string{"admin", "orders:read"}, "admin-1"); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, []string{"admin", "orders:read"}, "admin-1"); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetScopes(ctx(), c.Key.ID, nil, "admin-1"); err != nil {
		t.Fatal(err)
	}
	if got := scopesOf(); len(got) != 0 || got == nil {
		t.Errorf("scopes after clearing = %#v, want empty", got)
	}
	evs, _ := svc.Audit(ctx(), keys.AuditFilter{KeyID: c.Key.ID})
	var acts []string
	for _, ev := range evs {
		acts = append(acts, ev.Action)
	}
	if !slices.Equal(acts, []string{"create", "set-scopes", "set-scopes", "set-scopes"}) {
		t.Errorf("audit = %v; a change that changes nothing is not logged", acts)
	}
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
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		before := st.Gets()
		_, err1 := svc.ResolveKey(context.Background(), id)
		_, err2 := svc.ResolveKey(context.Background(), id)
		if st.Gets() == before && err1 == nil && err2 == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s is never answered from the cache", id)
}

func testLastUsed(t *testing.T, e *env) {
	st := &CountingStore{Store: e.db.Open(t)}
	svc := e.serviceOn(st, keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{})
	unused := mustCreate(t, svc, keys.CreateRequest{})
	for range 100 {
		if err := resolveErr(svc, c.Key.ID); err != nil {
			t.Fatal(err)
		}
	}
	raw := e.store()
	if r := mustGet(t, raw, c.Key.ID); !r.LastUsed.IsZero() {
		t.Errorf("a use was written at once (LastUsed %v): uses must be written in batches", r.LastUsed)
	}
	if k := mustKey(t, svc, c.Key.ID); !k.LastUsed.Equal(e.clock.Now()) {
		t.Errorf("Get shows LastUsed %v, want the unwritten use at %v", k.LastUsed, e.clock.Now())
	}
	if err := svc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := mustGet(t, raw, c.Key.ID); !r.LastUsed.Equal(e.clock.Now()) {
		t.Errorf("after Close, LastUsed = %v, want %v", r.LastUsed, e.clock.Now())
	}
	if r := mustGet(t, raw, unused.Key.ID); !r.LastUsed.IsZero() {
		t.Errorf("an unused key has LastUsed %v", r.LastUsed)
	}

	// A service with a short interval writes by itself, and a later use
	// moves the time on.
	svc2 := e.serviceOn(e.db.Open(t), keys.Options{LastUsedInterval: 20 * time.Millisecond})
	e.clock.Advance(time.Minute)
	if err := resolveErr(svc2, c.Key.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !mustGet(t, raw, c.Key.ID).LastUsed.Equal(e.clock.Now()) {
		if time.Now().After(deadline) {
			t.Fatalf("the use was not written within 5s: LastUsed %v", mustGet(t, raw, c.Key.ID).LastUsed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testNegativeCache(t *testing.T, e *env) {
	st := &CountingStore{Store: e.db.Open(t)}
	svc := e.serviceOn(st, realTime())
	known := mustCreate(t, svc, keys.CreateRequest{})
	WaitCached(t, svc, st, known.Key.ID)
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = "sk_" + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("unknown-%08d", i)))
	}
	before := st.Gets()
	for range 5 {
		for _, id := range ids {
			if err := resolveErr(svc, id); !errors.Is(err, httpsig.ErrUnknownKey) {
				t.Fatalf("ResolveKey(%s) = %v", id, err)
			}
		}
	}
	if n := st.Gets() - before; n != int64(len(ids)) {
		t.Errorf("%d lookups for %d unknown keyids asked 5 times each; want one each", n, len(ids))
	}
	before = st.Gets()
	for range 100 {
		resolveErr(svc, "nonsense")
	}
	if n := st.Gets() - before; n != 0 {
		t.Errorf("malformed keyids cost %d lookups, want none", n)
	}

	// A key created elsewhere under a keyid remembered as unknown is seen
	// at once.
	other := e.serviceOn(e.db.Open(t), keys.Options{Rand: fixedRand{}, Now: time.Now})
	var b [16]byte
	fixedRand{}.Read(b[:])
	id := "sk_" + base64.RawURLEncoding.EncodeToString(b[:])
	warmUnknown := time.Now().Add(5 * time.Second)
	for {
		before := st.Gets()
		resolveErr(svc, id)
		if st.Gets() == before {
			break
		}
		if time.Now().After(warmUnknown) {
			t.Fatal("the unknown keyid is never remembered")
		}
	}
	c := mustCreate(t, other, keys.CreateRequest{})
	if c.Key.ID != id {
		t.Fatalf("fixed randomness made %s, want %s", c.Key.ID, id)
	}
	begin := time.Now()
	for resolveErr(svc, id) != nil {
		if time.Since(begin) > PropagationLimit {
			t.Fatalf("a key created elsewhere is still unknown after %v", PropagationLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("a new key was seen after %v", time.Since(begin))
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
	rot, err := svc.Rotate(ctx(), ids[0], time.Hour, nil, "tester")
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
	if _, err := signAndVerify(t, fresh, e.clock.Now, a.Key.ID, hmacSigner(t, b)); err == nil {
		t.Errorf("a request signed with b's secret verifies as a")
	}
	if err := resolveErr(fresh, b.Key.ID); err != nil {
		t.Errorf("the key whose secret was copied: %v", err)
	}
}

func testWrongMasterKey(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	mustCreate(t, svc, keys.CreateRequest{})
	st := e.db.Open(t)
	defer st.Close()
	_, err := keys.New(ctx(), st, keys.Options{MasterKey: keys.NewMasterKey()})
	if !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Fatalf("New with another master key = %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "master key") {
		t.Errorf("error %q does not name the master key", err)
	}
	if _, err := keys.New(ctx(), st, keys.Options{MasterKey: e.master[:16]}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("New with a short master key = %v, want ErrInvalid", err)
	}
	if _, err := keys.New(ctx(), st, keys.Options{}); err == nil {
		t.Errorf("New without a master key succeeded")
	}
}

func testRekey(t *testing.T, e *env) {
	svc := e.service(keys.Options{})
	stale := e.service(keys.Options{CacheSize: -1}) // started before the rekey
	type signed struct {
		id string
		sk httpsig.SigningKey
	}
	var all []signed
	for range 3 {
		c := mustCreate(t, svc, keys.CreateRequest{})
		all = append(all, signed{c.Key.ID, hmacSigner(t, c)})
	}
	edSK, edPub := keyPair(t, httpsig.AlgEd25519)
	ed := mustCreate(t, svc, keys.CreateRequest{PublicKey: edPub})
	all = append(all, signed{ed.Key.ID, edSK})

	if err := svc.Rekey(ctx(), e.master, "tester"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("Rekey to the same key = %v, want ErrInvalid", err)
	}
	if err := svc.Rekey(ctx(), []byte("short"), "tester"); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("Rekey to a short key = %v, want ErrInvalid", err)
	}
	newMaster := keys.NewMasterKey()
	if err := svc.Rekey(ctx(), newMaster, "tester"); err != nil {
		t.Fatalf("Rekey: %v", err)
	}
	fresh := e.service(keys.Options{MasterKey: newMaster})
	for _, s := range []*keys.Service{svc, fresh} {
		for _, k := range all {
			if _, err := signAndVerify(t, s, e.clock.Now, k.id, k.sk); err != nil {
				t.Errorf("%s after rekey: %v", k.id, err)
			}
		}
	}
	c := mustCreate(t, svc, keys.CreateRequest{})
	if _, err := signAndVerify(t, fresh, e.clock.Now, c.Key.ID, hmacSigner(t, c)); err != nil {
		t.Errorf("a key made after rekey: %v", err)
	}

	st := e.db.Open(t)
	defer st.Close()
	if _, err := keys.New(ctx(), st, keys.Options{MasterKey: e.master}); !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Errorf("New with the old master key after rekey = %v, want ErrWrongMasterKey", err)
	}
	// A service that still holds the old key opens nothing and seals
	// nothing: it fails closed.
	if err := resolveErr(stale, all[0].id); err == nil || !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Errorf("ResolveKey through a service with the old master key = %v, want ErrWrongMasterKey", err)
	}
	if _, err := stale.Create(ctx(), keys.CreateRequest{Owner: "a"}); !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Errorf("Create through a service with the old master key = %v, want ErrWrongMasterKey", err)
	}
	if err := resolveErr(stale, ed.Key.ID); err != nil {
		t.Errorf("a public key through that service: %v", err)
	}
	evs, _ := svc.Audit(ctx(), keys.AuditFilter{})
	if len(evs) == 0 || !slices.ContainsFunc(evs, func(ev keys.AuditEvent) bool { return ev.Action == keys.ActionRekey && ev.Actor == "tester" }) {
		t.Errorf("no rekey in the audit log: %+v", evs)
	}
}

func testRevokePropagates(t *testing.T, e *env) {
	admin := e.service(realTime())
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, realTime())
	c := mustCreate(t, admin, keys.CreateRequest{})
	WaitCached(t, gateway, st, c.Key.ID)
	if err := admin.Revoke(ctx(), c.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	for {
		err := resolveErr(gateway, c.Key.ID)
		if errors.Is(err, httpsig.ErrKeyRevoked) {
			break
		}
		if err != nil {
			t.Fatalf("ResolveKey = %v", err)
		}
		if time.Since(begin) > PropagationLimit {
			t.Fatalf("the other service still accepts the revoked key after %v", PropagationLimit)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("revocation honoured by the other service after %v", time.Since(begin))
}

func testChangesPropagate(t *testing.T, e *env) {
	admin := e.service(realTime())
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, realTime())
	c := mustCreate(t, admin, keys.CreateRequest{Scopes: []string{"a"}})
	d := mustCreate(t, admin, keys.CreateRequest{})
	WaitCached(t, gateway, st, c.Key.ID)
	WaitCached(t, gateway, st, d.Key.ID)
	if err := admin.SetScopes(ctx(), c.Key.ID, []string{"b"}, "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Rotate(ctx(), d.Key.ID, 0, nil, "tester"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	for {
		k, err := gateway.ResolveKey(ctx(), c.Key.ID)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(k.(identity).Scopes(), []string{"b"}) && errors.Is(resolveErr(gateway, d.Key.ID), httpsig.ErrKeyExpired) {
			break
		}
		if time.Since(begin) > PropagationLimit {
			t.Fatalf("after %v the other service has scopes %v and the rotated key gives %v", PropagationLimit, k.(identity).Scopes(), resolveErr(gateway, d.Key.ID))
		}
		time.Sleep(time.Millisecond)
	}
}

func testConcurrentUse(t *testing.T, e *env) {
	svc := e.service(realTime())
	var ids []string
	for range 4 {
		ids = append(ids, mustCreate(t, svc, keys.CreateRequest{}).Key.ID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := svc.ResolveKey(ctx(), ids[(g+i)%len(ids)])
				if err != nil && !errors.Is(err, httpsig.ErrKeyRevoked) && !errors.Is(err, httpsig.ErrKeyExpired) {
					failures.Add(1)
				}
			}
		}()
	}
	if err := svc.Revoke(ctx(), ids[0], "tester"); err != nil {
		t.Error(err)
	}
	if _, err := svc.Rotate(ctx(), ids[1], 0, nil, "tester"); err != nil {
		t.Error(err)
	}
	if err := svc.SetScopes(ctx(), ids[2], []string{"x"}, "tester"); err != nil {
		t.Error(err)
	}
	if _, err := svc.List(ctx(), keys.ListFilter{}); err != nil {
		t.Error(err)
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d resolutions failed", n)
	}
	if err := resolveErr(svc, ids[0]); !errors.Is(err, httpsig.ErrKeyRevoked) {
		t.Errorf("revoked key = %v", err)
	}
	if err := svc.Ping(ctx()); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

// Bench runs the benchmarks of cold lookups against a store: every
// resolution misses the cache (which is off) and asks the store.
func Bench(b *testing.B, open func(b *testing.B) keys.Store) {
	svc, err := keys.New(context.Background(), open(b), keys.Options{MasterKey: keys.NewMasterKey(), CacheSize: -1})
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
