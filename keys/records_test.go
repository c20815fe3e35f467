package keys_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
)

// actions returns the actions and details of a key's audit events from
// the n-th on.
func actions(t *testing.T, svc *keys.Service, id string, n int) []string {
	t.Helper()
	evs, err := svc.Audit(ctx(), keys.AuditFilter{KeyID: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs[min(n, len(evs)):] {
		if ev.Actor != "tester" {
			t.Errorf("event %s by %q, want tester", ev.Action, ev.Actor)
		}
		out = append(out, string(ev.Action)+": "+ev.Detail)
	}
	return out
}

func statusJSON(t *testing.T, k any) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Status string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Status
}

func TestDisableEnable(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{})
	sk := hmacSigner(t, c)
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	k, err := svc.Disable(ctx(), c.Key.ID, "tester")
	if err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if !k.Disabled.Equal(e.clock.Now()) || k.Status(e.clock.Now()) != keys.StatusDisabled || k.Version != 2 || statusJSON(t, k) != "disabled" {
		t.Errorf("Disable returned %+v", k)
	}
	// The service that disabled it refuses it at once, cached or not, with
	// an error a verifier that knows nothing of disabled keys refuses as
	// key-revoked.
	_, err = signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk)
	if !isReason(err, keys.ReasonKeyDisabled) || !errors.Is(err, keys.ErrKeyDisabled) || !errors.Is(err, httpsig.ErrKeyRevoked) {
		t.Errorf("a request signed with a disabled key: %v; want key-disabled wrapping ErrKeyDisabled and ErrKeyRevoked", err)
	}
	if err := resolveErr(svc, c.Key.ID); !strings.Contains(err.Error(), "is disabled (since ") {
		t.Errorf("ResolveKey of a disabled key = %q", err)
	}
	if k, err := svc.Disable(ctx(), c.Key.ID, "tester"); err != nil || k.Version != 2 {
		t.Errorf("disabling a disabled key = %+v, %v; want no change", k, err)
	}
	if got := mustKey(t, svc, c.Key.ID); got.Status(e.clock.Now()) != keys.StatusDisabled || statusJSON(t, got) != "disabled" {
		t.Errorf("Get of a disabled key = %+v", got)
	}

	e.clock.Advance(time.Minute)
	k, err = svc.Enable(ctx(), c.Key.ID, "tester")
	if err != nil || !k.Disabled.IsZero() || k.Status(e.clock.Now()) != keys.StatusActive || k.Version != 3 {
		t.Fatalf("Enable = %+v, %v", k, err)
	}
	if _, err := signAndVerify(t, svc, e.clock.Now, c.Key.ID, sk); err != nil {
		t.Errorf("a request signed with the enabled key: %v", err)
	}
	if k, err := svc.Enable(ctx(), c.Key.ID, "tester"); err != nil || k.Version != 3 {
		t.Errorf("enabling an enabled key = %+v, %v; want no change", k, err)
	}
	want := []string{"create: ", "disable: ", "enable: disabled since " + start.Add(time.Minute).Format(time.RFC3339)}
	if got := actions(t, svc, c.Key.ID, 0); len(got) != 3 || !strings.HasPrefix(got[0], want[0]) || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("audit = %q, want %q", got, want)
	}

	if err := svc.Revoke(ctx(), c.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(string) (*keys.Key, error){
		"Disable": func(id string) (*keys.Key, error) { return svc.Disable(ctx(), id, "tester") },
		"Enable":  func(id string) (*keys.Key, error) { return svc.Enable(ctx(), id, "tester") },
	} {
		if _, err := f(c.Key.ID); !errors.Is(err, keys.ErrConflict) {
			t.Errorf("%s of a revoked key = %v, want ErrConflict", name, err)
		}
		if _, err := f("sk_nosuchkey0000000000001"); !errors.Is(err, keys.ErrNotFound) {
			t.Errorf("%s of an unknown key = %v, want ErrNotFound", name, err)
		}
	}
	// A disabled key that expired is expired, as far as anyone can tell.
	d := mustCreate(t, svc, keys.CreateRequest{Expires: e.clock.Now().Add(time.Hour)})
	if _, err := svc.Disable(ctx(), d.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if err := resolveErr(svc, d.Key.ID); !errors.Is(err, httpsig.ErrKeyExpired) {
		t.Errorf("ResolveKey of a disabled key past its expiry = %v, want ErrKeyExpired", err)
	}
	if s := mustKey(t, svc, d.Key.ID).Status(e.clock.Now()); s != keys.StatusExpired {
		t.Errorf("status of a disabled key past its expiry = %s", s)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{Label: "old", Scopes: []string{"a"}})
	id := c.Key.ID
	str := func(s string) *string { return &s }
	at := func(t time.Time) *time.Time { return &t }
	scopes := func(s ...string) *[]string { return &s }
	exp := e.clock.Now().Add(48 * time.Hour)

	k, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Actor: "tester", Label: str("new"), Expires: at(exp),
		Metadata: json.RawMessage(`{"tier": "gold", "seats": 5}`), Scopes: scopes("b", "a", "b")})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if k.Label != "new" || !k.Expires.Equal(exp) || string(k.Metadata) != `{"seats":5,"tier":"gold"}` || !slices.Equal(k.Scopes, []string{"b", "a"}) || k.Version != 2 {
		t.Errorf("updated key = %+v", k)
	}
	if got := mustKey(t, svc, id); !equalJSON(got, k) {
		t.Errorf("Get after Update = %+v, want %+v", got, k)
	}
	rk, err := svc.ResolveKey(ctx(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r := rk.(*keys.ResolvedKey); !slices.Equal(r.Scopes(), []string{"b", "a"}) || string(r.Metadata()) != `{"seats":5,"tier":"gold"}` {
		t.Errorf("resolved after Update: scopes %v, metadata %s", r.Scopes(), r.Metadata())
	}
	got := actions(t, svc, id, 1)
	want := []string{
		`update: label="new" (was "old") expires=` + exp.Format(time.RFC3339) + ` (was never) metadata=25B (was 0B)`,
		`set-scopes: scopes=b,a (were a)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit = %q\nwant %q", got, want)
	}

	// The same values again: no change, no event.
	if k2, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Actor: "tester", Label: str("new"), Expires: at(exp),
		Metadata: json.RawMessage(`{"tier":"gold","seats":5}`), Scopes: scopes("b", "a")}); err != nil || k2.Version != 2 {
		t.Errorf("an update to the same values = %+v, %v", k2, err)
	}
	if n := len(actions(t, svc, id, 0)); n != 3 {
		t.Errorf("%d audit events after a no-op update, want 3", n)
	}

	// Limits.
	k, err = svc.Update(ctx(), keys.UpdateRequest{ID: id, Actor: "tester",
		RateLimit: &keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}},
		Uses:      &keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 1000, Per: 24 * time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if *k.RateLimit != (keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}, Burst: 100}) ||
		*k.Uses != (keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 1000, Per: 24 * time.Hour}, Refilled: now, Set: now}) {
		t.Errorf("limits = %+v, %+v", *k.RateLimit, *k.Uses)
	}
	if got := actions(t, svc, id, 3); !slices.Equal(got, []string{"set-limits: rate=100/s burst 100 (was none) uses=1000 refill 1000/day (were none)"}) {
		t.Errorf("audit = %q", got)
	}
	rk, _ = svc.ResolveKey(ctx(), id)
	if l, ok := rk.(*keys.ResolvedKey).RateLimit(); !ok || l.Burst != 100 {
		t.Errorf("resolved rate limit = %v, %v", l, ok)
	}
	if u, ok := rk.(*keys.ResolvedKey).Uses(); !ok || !u.Set.Equal(now) {
		t.Errorf("resolved uses = %v, %v", u, ok)
	}
	k, err = svc.Update(ctx(), keys.UpdateRequest{ID: id, Actor: "tester", RateLimit: &keys.RateLimit{}, Uses: &keys.Uses{},
		Metadata: json.RawMessage(`null`), Expires: at(time.Time{})})
	if err != nil || k.RateLimit != nil || k.Uses != nil || k.Metadata != nil || !k.Expires.IsZero() {
		t.Errorf("removing limits, metadata and expiry = %+v, %v", k, err)
	}
	rk, _ = svc.ResolveKey(ctx(), id)
	if _, ok := rk.(*keys.ResolvedKey).Uses(); ok {
		t.Error("the resolved key still has a budget")
	}

	// Versions: an update that names an old one is refused.
	if _, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Version: 2, Label: str("stale"), Actor: "tester"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("Update at a stale version = %v, want ErrConflict", err)
	}
	if k, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Version: k.Version, Label: str("fresh"), Actor: "tester"}); err != nil || k.Label != "fresh" {
		t.Errorf("Update at the current version = %+v, %v", k, err)
	}

	for _, tt := range []struct {
		name string
		req  keys.UpdateRequest
		want error
	}{
		{"bad label", keys.UpdateRequest{Label: str("a\nb")}, keys.ErrInvalid},
		{"past expiry", keys.UpdateRequest{Expires: at(e.clock.Now())}, keys.ErrInvalid},
		{"bad scope", keys.UpdateRequest{Scopes: scopes("A")}, keys.ErrInvalid},
		{"metadata not an object", keys.UpdateRequest{Metadata: json.RawMessage(`[1]`)}, keys.ErrInvalid},
		{"metadata too big", keys.UpdateRequest{Metadata: json.RawMessage(`{"a":"` + strings.Repeat("x", keys.MaxMetadataSize) + `"}`)}, keys.ErrInvalid},
		{"bad rate", keys.UpdateRequest{RateLimit: &keys.RateLimit{Rate: keys.Rate{N: 0, Per: time.Second}}}, keys.ErrInvalid},
		{"bad burst", keys.UpdateRequest{RateLimit: &keys.RateLimit{Rate: keys.Rate{N: 1, Per: time.Second}, Burst: -1}}, keys.ErrInvalid},
		{"burst a limiter cannot count", keys.UpdateRequest{RateLimit: &keys.RateLimit{Rate: keys.Rate{N: 1, Per: 366 * 24 * time.Hour}, Burst: 36}}, keys.ErrInvalid},
		{"negative uses", keys.UpdateRequest{Uses: &keys.Uses{Remaining: -1}}, keys.ErrInvalid},
		{"refill too often", keys.UpdateRequest{Uses: &keys.Uses{Remaining: 1, Refill: keys.Rate{N: 1, Per: time.Second}}}, keys.ErrInvalid},
		{"unknown key", keys.UpdateRequest{ID: "sk_nosuchkey0000000000001", Label: str("x")}, keys.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.ID == "" {
				tt.req.ID = id
			}
			before := mustKey(t, svc, id)
			if _, err := svc.Update(ctx(), tt.req); !errors.Is(err, tt.want) {
				t.Errorf("Update = %v, want %v", err, tt.want)
			}
			if after := mustKey(t, svc, id); after.Version != before.Version {
				t.Errorf("a refused update changed the key")
			}
		})
	}

	// A rotated key's end can be moved, not removed.
	rot, err := svc.Rotate(ctx(), keys.RotateRequest{ID: id, Overlap: time.Hour, Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Expires: at(time.Time{}), Actor: "tester"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("removing the end of a rotated key's overlap = %v, want ErrConflict", err)
	}
	if k, err := svc.Update(ctx(), keys.UpdateRequest{ID: id, Expires: at(e.clock.Now().Add(2 * time.Hour)), Actor: "tester"}); err != nil || k.Status(e.clock.Now()) != keys.StatusExpiring {
		t.Errorf("moving the end of a rotated key's overlap = %+v, %v", k, err)
	}
	if err := svc.Revoke(ctx(), rot.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx(), keys.UpdateRequest{ID: rot.Key.ID, Label: str("x"), Actor: "tester"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("Update of a revoked key = %v, want ErrConflict", err)
	}
}

func TestCreateWithLimits(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{
		Metadata:  json.RawMessage(`{"plan":"pro"}`),
		RateLimit: keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}, Burst: 200},
		Uses:      keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 1000, Per: 24 * time.Hour}},
	})
	now := e.clock.Now()
	k := c.Key
	if string(k.Metadata) != `{"plan":"pro"}` || *k.RateLimit != (keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}, Burst: 200}) ||
		*k.Uses != (keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 1000, Per: 24 * time.Hour}, Refilled: now, Set: now}) || k.Version != 1 {
		t.Errorf("created %+v", k)
	}
	b, _ := json.Marshal(k)
	for _, want := range []string{`"status":"active"`, `"metadata":{"plan":"pro"}`, `"rate_limit":{"rate":"100/s","burst":200}`,
		`"uses":{"remaining":1000,"refill":"1000/day","refilled":"2030-01-02T03:04:05Z","set":"2030-01-02T03:04:05Z"}`, `"version":1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back keys.Key
	if err := json.Unmarshal(b, &back); err != nil || !equalJSON(back, k) {
		t.Errorf("JSON round trip = %+v, %v", back, err)
	}
	evs, _ := svc.Audit(ctx(), keys.AuditFilter{KeyID: k.ID})
	if d := evs[0].Detail; !strings.Contains(d, "metadata=14B rate=100/s burst 200 uses=1000 refill 1000/day") {
		t.Errorf("audit of the creation: %q", d)
	}
	if _, err := svc.SpendUses(ctx(), k.ID, 400); err != nil {
		t.Fatal(err)
	}
	// A successor keeps the metadata, the rate limit and what is left of
	// the budget.
	e.clock.Advance(time.Minute)
	rot, err := svc.Rotate(ctx(), keys.RotateRequest{ID: k.ID, Overlap: time.Hour, Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	nk := rot.Key
	if string(nk.Metadata) != `{"plan":"pro"}` || nk.RateLimit == nil || *nk.RateLimit != *k.RateLimit || nk.Uses == nil || nk.Uses.Remaining != 600 || nk.Uses.Refill != k.Uses.Refill {
		t.Errorf("successor = %+v", nk)
	}
	for _, req := range []keys.CreateRequest{
		{Metadata: json.RawMessage(`"x"`)},
		{RateLimit: keys.RateLimit{Burst: 5}},
		// A burst a limiter cannot count (over limit.MaxTolerance).
		{RateLimit: keys.RateLimit{Rate: keys.Rate{N: 1, Per: 7 * 24 * time.Hour}, Burst: 2000}},
		{Uses: keys.Uses{Remaining: keys.MaxRateN + 1}},
	} {
		req.Owner, req.Actor = "alice", "tester"
		if _, err := svc.Create(ctx(), req); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("Create(%+v) = %v, want ErrInvalid", req, err)
		}
	}
}

func TestSpendUses(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	free := mustCreate(t, svc, keys.CreateRequest{})
	c := mustCreate(t, svc, keys.CreateRequest{Uses: keys.Uses{Remaining: 10, Refill: keys.Rate{N: 10, Per: time.Hour}}})
	set := e.clock.Now()
	nextHour := set.Truncate(time.Hour).Add(time.Hour)
	if g, err := svc.SpendUses(ctx(), free.Key.ID, 5); err != nil || !g.Unlimited {
		t.Errorf("SpendUses of a key without a budget = %+v, %v", g, err)
	}
	if g, err := svc.SpendUses(ctx(), c.Key.ID, 4); err != nil || g != (keys.UsesGrant{Spent: 4, Remaining: 6, Set: set, Until: nextHour}) {
		t.Errorf("SpendUses = %+v, %v", g, err)
	}
	if k := mustKey(t, svc, c.Key.ID); k.Uses.Remaining != 6 || k.Version != 1 {
		t.Errorf("after spending: %+v", k)
	}
	e.clock.Advance(nextHour.Sub(e.clock.Now()))
	if g, err := svc.SpendUses(ctx(), c.Key.ID, 0); err != nil || g.Remaining != 10 || !g.Until.Equal(nextHour.Add(time.Hour)) {
		t.Errorf("SpendUses after the refill = %+v, %v", g, err)
	}
	// A new budget has a new Set: uses spent ahead from the old one are
	// to be dropped.
	e.clock.Advance(time.Minute)
	if _, err := svc.Update(ctx(), keys.UpdateRequest{ID: c.Key.ID, Uses: &keys.Uses{Remaining: 3}, Actor: "tester"}); err != nil {
		t.Fatal(err)
	}
	if g, err := svc.SpendUses(ctx(), c.Key.ID, 5); err != nil || g != (keys.UsesGrant{Spent: 3, Remaining: 0, Set: e.clock.Now()}) {
		t.Errorf("SpendUses of the new budget = %+v, %v", g, err)
	}
	// Another budget set at the same instant (or with a clock that went
	// back) is new all the same.
	k, err := svc.Update(ctx(), keys.UpdateRequest{ID: c.Key.ID, Uses: &keys.Uses{Remaining: 4}, Actor: "tester"})
	if err != nil || !k.Uses.Set.Equal(e.clock.Now().Add(time.Microsecond)) {
		t.Fatalf("a budget set again at the same instant: %+v, %v", k.Uses, err)
	}
	if g, err := svc.SpendUses(ctx(), c.Key.ID, 5); err != nil || g.Spent != 4 || !g.Set.Equal(k.Uses.Set) {
		t.Errorf("SpendUses of the budget set again = %+v, %v", g, err)
	}
	for _, tt := range []struct {
		id   string
		n    int64
		want error
	}{
		{c.Key.ID, -1, keys.ErrInvalid},
		{"sk_nosuchkey0000000000001", 1, keys.ErrNotFound},
		{"not a key id", 1, keys.ErrNotFound},
	} {
		if _, err := svc.SpendUses(ctx(), tt.id, tt.n); !errors.Is(err, tt.want) {
			t.Errorf("SpendUses(%q, %d) = %v, want %v", tt.id, tt.n, err, tt.want)
		}
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	a := mustCreate(t, svc, keys.CreateRequest{Owner: "alice", Scopes: []string{"orders:read"}})
	e.clock.Advance(time.Second)
	b := mustCreate(t, svc, keys.CreateRequest{Owner: "bob", Expires: e.clock.Now().Add(time.Hour)})
	e.clock.Advance(time.Second)
	d := mustCreate(t, svc, keys.CreateRequest{Owner: "alice"})
	if _, err := svc.Disable(ctx(), d.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	ids := func(f keys.ListFilter) []string {
		t.Helper()
		ks, err := svc.List(ctx(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, k.ID)
			if s := statusJSON(t, k); s != string(k.Status(e.clock.Now())) {
				t.Errorf("JSON status %s, status %s", s, k.Status(e.clock.Now()))
			}
		}
		return out
	}
	if got := ids(keys.ListFilter{Status: keys.StatusActive}); !slices.Equal(got, []string{a.Key.ID, b.Key.ID}) {
		t.Errorf("active keys = %v", got)
	}
	// Statuses are judged by the service's clock.
	e.clock.Advance(time.Hour)
	if got := ids(keys.ListFilter{Status: keys.StatusExpired}); !slices.Equal(got, []string{b.Key.ID}) {
		t.Errorf("expired keys = %v", got)
	}
	if got := ids(keys.ListFilter{Owner: "alice", Scope: "orders:read"}); !slices.Equal(got, []string{a.Key.ID}) {
		t.Errorf("alice's orders:read keys = %v", got)
	}
	if got := ids(keys.ListFilter{IDPrefix: d.Key.ID[:10]}); !slices.Contains(got, d.Key.ID) {
		t.Errorf("keys with the prefix %s = %v", d.Key.ID[:10], got)
	}
	for _, f := range []keys.ListFilter{{Status: "sleeping"}, {Scope: "Not A Scope"}} {
		if _, err := svc.List(ctx(), f); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("List(%+v) = %v, want ErrInvalid", f, err)
		}
	}
	for _, limit := range []int{-1, keys.MaxPageSize + 1} {
		if _, err := svc.ListPage(ctx(), keys.ListRequest{Limit: limit}); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("ListPage(limit %d) = %v, want ErrInvalid", limit, err)
		}
	}
	p, err := svc.ListPage(ctx(), keys.ListRequest{Limit: 2, ListFilter: keys.ListFilter{IncludeRevoked: true}})
	if err != nil || len(p.Keys) != 2 || p.Next == "" {
		t.Fatalf("first page = %+v, %v", p, err)
	}
	p2, err := svc.ListPage(ctx(), keys.ListRequest{Limit: 2, Cursor: p.Next, ListFilter: keys.ListFilter{IncludeRevoked: true}})
	if err != nil || len(p2.Keys) != 1 || p2.Keys[0].ID != d.Key.ID || p2.Next != "" {
		t.Errorf("second page = %+v, %v", p2, err)
	}
	if b, _ := json.Marshal(p2); !strings.HasPrefix(string(b), `{"keys":[{"id":"`+d.Key.ID+`","status":"disabled"`) || strings.Contains(string(b), "next") {
		t.Errorf("page JSON %s", b)
	}
}

func TestUsageReport(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	a := mustCreate(t, svc, keys.CreateRequest{Owner: "alice"})
	b := mustCreate(t, svc, keys.CreateRequest{Owner: "alice"})
	m := keys.NewMeter(svc, keys.MeterOptions{Now: e.clock.Now, Interval: time.Hour})
	h0 := e.clock.Now().Truncate(time.Hour)
	for range 5 {
		m.Count(a.Key.ID, "orders", "")
	}
	m.Count(a.Key.ID, "orders", httpsig.ReasonBadSignature)
	m.Count(b.Key.ID, "", httpsig.ReasonReplayed)
	m.Count("", "", httpsig.ReasonUnknownKey)
	e.clock.Advance(time.Hour)
	if err := m.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	m.Count(a.Key.ID, "orders", "")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := svc.Usage(ctx(), keys.UsageQuery{KeyID: a.Key.ID, Since: h0})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r)
	want := fmt.Sprintf(`{"key_id":%q,"since":"%s","until":"%s","total":{"accepted":6,"refused":{"bad-signature":1}},"hours":[`+
		`{"hour":"%[2]s","route":"orders","accepted":5,"refused":{"bad-signature":1}},`+
		`{"hour":"%[4]s","route":"orders","accepted":1,"refused":{}}]}`,
		a.Key.ID, h0.Format(time.RFC3339), h0.Add(2*time.Hour).Format(time.RFC3339), h0.Add(time.Hour).Format(time.RFC3339))
	if string(got) != want {
		t.Errorf("usage of a key:\n got %s\nwant %s", got, want)
	}
	r, err = svc.Usage(ctx(), keys.UsageQuery{Owner: "alice", Since: h0, Until: h0.Add(time.Hour), ByKey: true})
	if err != nil || len(r.Hours) != 2 || r.Total.Accepted != 5 || r.Total.Refused[httpsig.ReasonReplayed] != 1 || r.Total.Refused[httpsig.ReasonUnknownKey] != 0 {
		t.Errorf("usage of an owner = %+v, %v", r, err)
	}
	r, err = svc.Usage(ctx(), keys.UsageQuery{})
	if err != nil || r.Total.Refused[httpsig.ReasonUnknownKey] != 1 || !r.Since.Equal(e.clock.Now().Add(-24*time.Hour).Truncate(time.Hour)) || r.Total.Accepted != 6 {
		t.Errorf("usage of every key over the last day = %+v, %v", r, err)
	}
	for _, q := range []keys.UsageQuery{
		{Since: h0, Until: h0},
		{Since: h0.Add(-keys.MaxUsageRange - time.Hour), Until: h0},
	} {
		if _, err := svc.Usage(ctx(), q); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("Usage(%+v) = %v, want ErrInvalid", q, err)
		}
	}
	if _, err := svc.Usage(ctx(), keys.UsageQuery{KeyID: "sk_nosuchkey0000000000001"}); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("Usage of an unknown key = %v, want ErrNotFound", err)
	}
}

func TestParseUpdate(t *testing.T) {
	now := start
	req, err := keys.ParseUpdate([]byte(`{"label":"ci","expires":"90d","metadata":{"plan":"pro"},"scopes":["orders:read"],
		"rate_limit":{"rate":"100/s","burst":200},"uses":{"remaining":1000,"refill":"1000/day"},"version":3}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if *req.Label != "ci" || !req.Expires.Equal(now.Add(90*24*time.Hour)) || string(req.Metadata) != `{"plan":"pro"}` ||
		!slices.Equal(*req.Scopes, []string{"orders:read"}) || *req.RateLimit != (keys.RateLimit{Rate: keys.Rate{N: 100, Per: time.Second}, Burst: 200}) ||
		*req.Uses != (keys.Uses{Remaining: 1000, Refill: keys.Rate{N: 1000, Per: 24 * time.Hour}}) || req.Version != 3 {
		t.Errorf("ParseUpdate = %+v", req)
	}
	req, err = keys.ParseUpdate([]byte(`{"label":null,"expires":null,"metadata":null,"rate_limit":null,"uses":null}`), now)
	if err != nil || *req.Label != "" || !req.Expires.IsZero() || string(req.Metadata) != "null" || !req.RateLimit.IsZero() || !req.Uses.IsZero() || req.Scopes != nil {
		t.Errorf("ParseUpdate of nulls = %+v, %v", req, err)
	}
	req, err = keys.ParseUpdate([]byte(`{"expires":"2031-01-01T00:00:00Z"}`), now)
	if err != nil || req.Label != nil || req.Metadata != nil || req.RateLimit != nil || req.Uses != nil || !req.Expires.Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseUpdate of an expiry alone = %+v, %v", req, err)
	}
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `{"owner":"bob"}`, `{"label":3}`, `{"expires":"soon"}`, `{"expires":"2001-01-01T00:00:00Z"}`, `{"expires":""}`,
		`{"metadata":[1]}`, `{"metadata":"x"}`, `{"scopes":null}`, `{"scopes":"a"}`, `{"rate_limit":{}}`, `{"rate_limit":{"rate":"fast"}}`,
		`{"rate_limit":{"rate":"1/s","extra":1}}`, `{"uses":{}}`, `{"uses":{"remaining":0}}`, `{"uses":{"refill":"1/day"}}`, `{"version":0}`, `{"version":"3"}`,
	} {
		if req, err := keys.ParseUpdate([]byte(body), now); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("ParseUpdate(%s) = %+v, %v; want ErrInvalid", body, req, err)
		}
	}

	// What it reads, a service applies.
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{Uses: keys.Uses{Remaining: 5}})
	req, err = keys.ParseUpdate([]byte(`{"label":"patched","uses":null,"version":1}`), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.ID, req.Actor = c.Key.ID, "tester"
	if k, err := svc.Update(ctx(), req); err != nil || k.Label != "patched" || k.Uses != nil || k.Version != 2 {
		t.Errorf("Update of a parsed change = %+v, %v", k, err)
	}
	if _, err := svc.Update(ctx(), req); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("the same change again, at version 1 = %v, want ErrConflict", err)
	}
}

// FuzzParseUpdate checks that ParseUpdate refuses what it cannot read with
// ErrInvalid, and with no other error, and lets through only metadata that
// is JSON.
func FuzzParseUpdate(f *testing.F) {
	for _, s := range []string{
		`{"label":"ci","expires":"90d","metadata":{"plan":"pro"},"scopes":["orders:read"]}`,
		`{"rate_limit":{"rate":"100/s","burst":200},"uses":{"remaining":1000,"refill":"1000/day"},"version":1}`,
		`{"label":null,"expires":null,"metadata":null,"rate_limit":null,"uses":null}`,
		`{"metadata":{"a":{"b":[1,2,{"c":null}]}}}`, `{"uses":{"remaining":-1}}`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := keys.ParseUpdate(body, start)
		if err != nil {
			if !errors.Is(err, keys.ErrInvalid) {
				t.Fatalf("ParseUpdate(%q) = %v, not ErrInvalid", body, err)
			}
			return
		}
		if req.Metadata != nil {
			if _, err := json.Marshal(json.RawMessage(req.Metadata)); err != nil && string(req.Metadata) != "null" {
				t.Fatalf("ParseUpdate(%q) let through metadata that is not JSON: %q", body, req.Metadata)
			}
		}
	})
}
