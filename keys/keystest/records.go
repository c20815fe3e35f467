package keystest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
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

// testStoreListQuery lists keys of every status, owner and scope with
// each filter, and in pages.
func testStoreListQuery(t *testing.T, e *env) {
	s := e.store()
	now := start.Add(time.Hour)
	var recs []keys.Record
	add := func(name, owner string, scopes []string, f func(r *keys.Record)) {
		r := record(fmt.Sprintf("sk_lq_%-19s", name), owner, start.Add(time.Duration(len(recs))*time.Second))
		r.ID = strings.ReplaceAll(r.ID, " ", "0")
		r.Scopes = scopes
		if f != nil {
			f(&r)
		}
		recs = append(recs, r)
	}
	add("active", "alice", []string{"orders:read"}, nil)
	add("expiring", "bob", []string{"orders:read", "orders:write"}, func(r *keys.Record) { r.Successor = "sk_next" })
	add("expired", "alice", nil, func(r *keys.Record) { r.Expires = now })
	add("disabled", "alice", []string{"orders"}, func(r *keys.Record) { r.Disabled = start })
	add("revoked", "bob", []string{"orders:read"}, func(r *keys.Record) { r.Revoked = start })
	add("dis_expired", "alice", nil, func(r *keys.Record) { r.Disabled, r.Expires = start, now.Add(-time.Second) })
	add("dis_revoked", "alice", nil, func(r *keys.Record) { r.Disabled, r.Revoked = start, start })
	add("dis_expiring", "carol", nil, func(r *keys.Record) { r.Disabled, r.Successor = start, "sk_next" })
	add("noexpiry", "carol", []string{"admin"}, func(r *keys.Record) { r.Expires = time.Time{} })
	// Two keys created at the same instant are ordered by id.
	add("same_b", "dave", nil, func(r *keys.Record) { r.Created = start.Add(time.Hour) })
	add("same_a", "dave", nil, func(r *keys.Record) { r.Created = start.Add(time.Hour) })
	mustApply(t, s, &keys.Write{Insert: recs})

	list := func(q keys.ListQuery) []string {
		t.Helper()
		q.Now = now
		ks, err := s.List(ctx(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, strings.TrimRight(strings.TrimPrefix(k.ID, "sk_lq_"), "0"))
		}
		return out
	}
	for _, tt := range []struct {
		f    keys.ListFilter
		want []string
	}{
		{keys.ListFilter{}, []string{"active", "expiring", "expired", "disabled", "dis_expired", "dis_expiring", "noexpiry", "same_a", "same_b"}},
		{keys.ListFilter{Status: keys.StatusActive}, []string{"active", "noexpiry", "same_a", "same_b"}},
		{keys.ListFilter{Status: keys.StatusExpiring}, []string{"expiring"}},
		{keys.ListFilter{Status: keys.StatusExpired}, []string{"expired", "dis_expired"}},
		{keys.ListFilter{Status: keys.StatusDisabled}, []string{"disabled", "dis_expiring"}},
		{keys.ListFilter{Status: keys.StatusRevoked}, []string{"revoked", "dis_revoked"}},
		{keys.ListFilter{Owner: "alice", Status: keys.StatusDisabled}, []string{"disabled"}},
		{keys.ListFilter{Owner: "bob", IncludeRevoked: true}, []string{"expiring", "revoked"}},
		{keys.ListFilter{Scope: "orders:read", IncludeRevoked: true}, []string{"active", "expiring", "revoked"}},
		{keys.ListFilter{Scope: "orders"}, []string{"disabled"}},
		{keys.ListFilter{Scope: "admin"}, []string{"noexpiry"}},
		{keys.ListFilter{IDPrefix: "sk_lq_dis"}, []string{"disabled", "dis_expired", "dis_expiring"}},
		{keys.ListFilter{IDPrefix: "sk_lq_dis_e", Status: keys.StatusExpired}, []string{"dis_expired"}},
		{keys.ListFilter{IDPrefix: "sk_lq_%"}, nil},
		{keys.ListFilter{IDPrefix: "sk_lq_dis_"}, []string{"dis_expired", "dis_expiring"}},
		{keys.ListFilter{IDPrefix: "sk_lq_dis%"}, nil},
	} {
		if got := list(keys.ListQuery{ListFilter: tt.f}); !slices.Equal(got, tt.want) {
			t.Errorf("List(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}

	all := list(keys.ListQuery{ListFilter: keys.ListFilter{IncludeRevoked: true}})
	for _, size := range []int{1, 2, 3, 100} {
		var paged []string
		var after keys.KeyPosition
		for {
			q := keys.ListQuery{ListFilter: keys.ListFilter{IncludeRevoked: true}, After: after, Limit: size, Now: now}
			ks, err := s.List(ctx(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(ks) > size {
				t.Fatalf("a page of %d holds %d keys", size, len(ks))
			}
			for _, k := range ks {
				paged = append(paged, strings.TrimRight(strings.TrimPrefix(k.ID, "sk_lq_"), "0"))
			}
			if len(ks) < size {
				break
			}
			last := ks[len(ks)-1]
			after = keys.KeyPosition{Created: last.Created, ID: last.ID}
		}
		if !slices.Equal(paged, all) {
			t.Errorf("pages of %d = %v, want %v", size, paged, all)
		}
	}
}

// testStoreUpdateUses checks that an update writes the remaining uses
// only with a new budget: uses spent between a read and an update stay
// spent.
func testStoreUpdateUses(t *testing.T, e *env) {
	s := e.store()
	k := record("sk_upduses000000000000001", "alice", start)
	k.Uses = &keys.Uses{Remaining: 10, Refilled: start, Set: start}
	mustApply(t, s, &keys.Write{Insert: []keys.Record{k}})
	spend := func(n int64) keys.UsesGrant {
		t.Helper()
		g, err := s.SpendUses(ctx(), k.ID, n, start.Add(time.Minute))
		if err != nil {
			t.Fatalf("SpendUses: %v", err)
		}
		return g
	}
	spend(4)
	read := mustGet(t, s, k.ID)
	if read.Uses.Remaining != 6 || read.Version != 1 {
		t.Fatalf("after spending 4 of 10: %+v, version %d", *read.Uses, read.Version)
	}
	spend(1)
	upd := *read
	upd.Label = "relabelled"
	upd.Uses = &keys.Uses{Remaining: 99, Refilled: start.Add(time.Hour), Set: start} // the budget it read: not a new one
	mustApply(t, s, &keys.Write{Update: []keys.Record{upd}})
	got := mustGet(t, s, k.ID)
	if got.Uses.Remaining != 5 || !got.Uses.Refilled.Equal(start) || got.Label != "relabelled" || got.Version != 2 {
		t.Errorf("an update of the label changed the uses spent meanwhile: %+v, label %q, version %d", *got.Uses, got.Label, got.Version)
	}

	upd = *got
	upd.Uses = &keys.Uses{Remaining: 50, Refill: keys.Rate{N: 50, Per: time.Hour}, Refilled: start.Add(time.Hour), Set: start.Add(time.Hour)}
	mustApply(t, s, &keys.Write{Update: []keys.Record{upd}})
	got = mustGet(t, s, k.ID)
	if want := *upd.Uses; *got.Uses != want || got.Version != 3 {
		t.Errorf("a new budget: stored %+v, version %d; want %+v", *got.Uses, got.Version, want)
	}

	upd = *got
	upd.Uses = nil
	mustApply(t, s, &keys.Write{Update: []keys.Record{upd}})
	if got = mustGet(t, s, k.ID); got.Uses != nil {
		t.Errorf("the budget was removed, and is %+v", *got.Uses)
	}
	if g := spend(1); !g.Unlimited {
		t.Errorf("SpendUses of a key without a budget = %+v", g)
	}
}

func testStoreSpendUses(t *testing.T, e *env) {
	a, b := e.store(), e.store()
	if _, err := a.SpendUses(ctx(), "sk_nosuchkey0000000000001", 1, start); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("SpendUses(unknown) = %v, want ErrNotFound", err)
	}
	free := record("sk_spendfree0000000000001", "alice", start)
	free.Uses = nil
	fixed := record("sk_spendfixed000000000001", "alice", start)
	fixed.Uses = &keys.Uses{Remaining: 5, Refilled: start, Set: start}
	day0 := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	daily := record("sk_spenddaily000000000001", "alice", start)
	daily.Uses = &keys.Uses{Remaining: 2, Refill: keys.Rate{N: 10, Per: 24 * time.Hour}, Refilled: day0, Set: day0}
	mustApply(t, a, &keys.Write{Insert: []keys.Record{free, fixed, daily}})

	if g, err := a.SpendUses(ctx(), free.ID, 7, start); err != nil || g != (keys.UsesGrant{Unlimited: true}) {
		t.Errorf("SpendUses of a key without a budget = %+v, %v", g, err)
	}
	midnight := day0.Truncate(24 * time.Hour)
	for _, step := range []struct {
		id   string
		n    int64
		at   time.Time
		want keys.UsesGrant
	}{
		{fixed.ID, 3, start, keys.UsesGrant{Spent: 3, Remaining: 2, Set: start}},
		{fixed.ID, 3, start, keys.UsesGrant{Spent: 2, Remaining: 0, Set: start}},
		{fixed.ID, 1, start, keys.UsesGrant{Spent: 0, Remaining: 0, Set: start}},
		{fixed.ID, 0, start.Add(1000 * time.Hour), keys.UsesGrant{Spent: 0, Remaining: 0, Set: start}},
		{daily.ID, 5, day0.Add(time.Hour), keys.UsesGrant{Spent: 2, Remaining: 0, Set: day0, Until: midnight.Add(24 * time.Hour)}},
		{daily.ID, 5, midnight.Add(24 * time.Hour), keys.UsesGrant{Spent: 5, Remaining: 5, Set: day0, Until: midnight.Add(48 * time.Hour)}},
		{daily.ID, 9, midnight.Add(48*time.Hour - time.Microsecond), keys.UsesGrant{Spent: 5, Remaining: 0, Set: day0, Until: midnight.Add(48 * time.Hour)}},
		// Unspent uses do not carry over: a day with none spent refills
		// to 10, not 20.
		{daily.ID, 0, midnight.Add(72*time.Hour + time.Hour), keys.UsesGrant{Spent: 0, Remaining: 10, Set: day0, Until: midnight.Add(96 * time.Hour)}},
		{daily.ID, 1, midnight.Add(96*time.Hour + time.Hour), keys.UsesGrant{Spent: 1, Remaining: 9, Set: day0, Until: midnight.Add(120 * time.Hour)}},
	} {
		g, err := b.SpendUses(ctx(), step.id, step.n, step.at)
		if err != nil || g != step.want {
			t.Errorf("SpendUses(%s, %d, %s) = %+v, %v; want %+v", step.id, step.n, step.at.Format(time.RFC3339Nano), g, err, step.want)
		}
	}
	if got := mustGet(t, a, daily.ID); got.Version != 1 || got.Uses.Remaining != 9 || !got.Uses.Refilled.Equal(midnight.Add(96*time.Hour)) {
		t.Errorf("after spending: %+v, version %d; want 9 left, refilled at %s, version 1", *got.Uses, got.Version, midnight.Add(96*time.Hour))
	}

	// Spenders on two handles never take more than there is, nor lose any.
	const budget = 500
	shared := record("sk_spendshared00000000001", "alice", start)
	shared.Uses = &keys.Uses{Remaining: budget, Refilled: start, Set: start}
	mustApply(t, a, &keys.Write{Insert: []keys.Record{shared}})
	var spent atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		s := []keys.Store{a, b}[i%2]
		wg.Go(func() {
			for {
				g, err := s.SpendUses(ctx(), shared.ID, 1+rand.Int64N(7), start)
				if err != nil {
					t.Errorf("SpendUses: %v", err)
					return
				}
				if g.Spent == 0 {
					return
				}
				spent.Add(g.Spent)
			}
		})
	}
	wg.Wait()
	if n := spent.Load(); n != budget {
		t.Errorf("spenders racing on two handles took %d uses of %d", n, budget)
	}
}

func testStoreUsage(t *testing.T, e *env) {
	s := e.store()
	k1, k2, k3 := record("sk_usage00000000000000001", "alice", start), record("sk_usage00000000000000002", "alice", start), record("sk_usage00000000000000003", "bob", start)
	mustApply(t, s, &keys.Write{Insert: []keys.Record{k1, k2, k3}})
	h0 := start.Truncate(time.Hour)
	h1, h2 := h0.Add(time.Hour), h0.Add(2*time.Hour)
	c := func(key string, hour time.Time, route string, outcome httpsig.Reason, n int64) keys.UsageCount {
		return keys.UsageCount{KeyID: key, Hour: hour, Route: route, Outcome: outcome, N: n}
	}
	add := func(b *keys.UsageBatch) {
		t.Helper()
		if err := s.AddUsage(ctx(), b); err != nil {
			t.Fatalf("AddUsage(%s): %v", b.ID, err)
		}
	}
	b1 := &keys.UsageBatch{ID: "batch-1", Time: h0, Counts: []keys.UsageCount{
		c(k1.ID, h0, "", "", 5),
		c(k1.ID, h0, "", httpsig.ReasonBadSignature, 2),
		c(k1.ID, h1, "orders", "", 3),
		c(k2.ID, h0, "", "", 7),
		c(k3.ID, h1, "", httpsig.ReasonReplayed, 9),
		c("", h0, "", httpsig.ReasonUnknownKey, 4),
		c(k1.ID, h0, "", "", 1), // twice in one batch: both count
	}}
	add(b1)
	add(b1) // given again: added once
	add(&keys.UsageBatch{ID: "batch-2", Time: h1, Counts: []keys.UsageCount{c(k1.ID, h0, "", "", 10), c(k1.ID, h2, "", "", 1)}})
	if err := s.AddUsage(ctx(), &keys.UsageBatch{Time: h1, Counts: []keys.UsageCount{c(k1.ID, h0, "", "", 1)}}); err == nil {
		t.Errorf("AddUsage of a batch without an id succeeded")
	}

	query := func(q keys.UsageQuery) []keys.UsageCount {
		t.Helper()
		got, err := s.Usage(ctx(), q)
		if err != nil {
			t.Fatalf("Usage(%+v): %v", q, err)
		}
		for i := range got {
			if got[i].Hour.Location() != time.UTC {
				t.Errorf("hour %v is not in UTC", got[i].Hour)
			}
		}
		return got
	}
	for _, tt := range []struct {
		name string
		q    keys.UsageQuery
		want []keys.UsageCount
	}{
		{"a key", keys.UsageQuery{KeyID: k1.ID, Since: h0, Until: h2.Add(time.Hour)}, []keys.UsageCount{
			c("", h0, "", "", 16), c("", h0, "", httpsig.ReasonBadSignature, 2), c("", h1, "orders", "", 3), c("", h2, "", "", 1)}},
		{"a key by key", keys.UsageQuery{KeyID: k1.ID, Since: h1, Until: h2, ByKey: true}, []keys.UsageCount{
			c(k1.ID, h1, "orders", "", 3)}},
		{"an owner", keys.UsageQuery{Owner: "alice", Since: h0, Until: h2}, []keys.UsageCount{
			c("", h0, "", "", 23), c("", h0, "", httpsig.ReasonBadSignature, 2), c("", h1, "orders", "", 3)}},
		{"an owner by key", keys.UsageQuery{Owner: "alice", Since: h0, Until: h1, ByKey: true}, []keys.UsageCount{
			c(k1.ID, h0, "", "", 16), c(k1.ID, h0, "", httpsig.ReasonBadSignature, 2), c(k2.ID, h0, "", "", 7)}},
		{"another owner", keys.UsageQuery{Owner: "bob", Since: h0}, []keys.UsageCount{c("", h1, "", httpsig.ReasonReplayed, 9)}},
		{"every key", keys.UsageQuery{Since: h0, Until: h1, ByKey: true}, []keys.UsageCount{
			c("", h0, "", httpsig.ReasonUnknownKey, 4), c(k1.ID, h0, "", "", 16), c(k1.ID, h0, "", httpsig.ReasonBadSignature, 2), c(k2.ID, h0, "", "", 7)}},
		{"every key summed", keys.UsageQuery{Since: h0, Until: h1}, []keys.UsageCount{
			c("", h0, "", "", 23), c("", h0, "", httpsig.ReasonBadSignature, 2), c("", h0, "", httpsig.ReasonUnknownKey, 4)}},
		{"nothing", keys.UsageQuery{KeyID: k2.ID, Since: h1}, nil},
	} {
		if got := query(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Usage = %+v\nwant %+v", tt.name, got, tt.want)
		}
	}

	// Batch ids are remembered for a week of batch times.
	add(&keys.UsageBatch{ID: "batch-3", Time: h0.Add(8 * 24 * time.Hour), Counts: []keys.UsageCount{c(k2.ID, h2, "", "", 1)}})
	add(b1)
	if got := query(keys.UsageQuery{KeyID: k2.ID, Since: h0, Until: h1}); !slices.Equal(got, []keys.UsageCount{c("", h0, "", "", 14)}) {
		t.Errorf("a batch given again after its id was forgotten: %+v", got)
	}
}

// testListPages pages through 10,000 keys with the service, with and
// without filters, and finds each selected key once, in order.
func testListPages(t *testing.T, e *env) {
	s := e.store()
	const n = 10000
	var all []keys.Key
	for i := 0; i < n; i += 1000 {
		var recs []keys.Record
		for j := i; j < i+1000; j++ {
			// Three keys to an instant: the order within one is by id.
			r := record(fmt.Sprintf("sk_page%018d", n-j), fmt.Sprintf("owner%d", j%5), start.Add(time.Duration(j/3)*time.Microsecond))
			if j%10 == 9 {
				r.Revoked = start
			}
			if j%7 == 0 {
				r.Disabled = start
			}
			recs = append(recs, r)
			all = append(all, r.Key)
		}
		mustApply(t, s, &keys.Write{Insert: recs})
	}
	slices.SortFunc(all, func(a, b keys.Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	svc := e.serviceOn(s, keys.Options{})
	for _, tt := range []struct {
		f     keys.ListFilter
		limit int
		sel   func(k *keys.Key) bool
	}{
		{keys.ListFilter{}, 0, func(k *keys.Key) bool { return k.Revoked.IsZero() }},
		{keys.ListFilter{IncludeRevoked: true}, 777, func(k *keys.Key) bool { return true }},
		{keys.ListFilter{Owner: "owner2"}, 250, func(k *keys.Key) bool { return k.Owner == "owner2" && k.Revoked.IsZero() }},
		{keys.ListFilter{Status: keys.StatusDisabled}, 999, func(k *keys.Key) bool { return !k.Disabled.IsZero() && k.Revoked.IsZero() }},
		{keys.ListFilter{IDPrefix: "sk_page0000000000000001"}, 7, func(k *keys.Key) bool {
			return strings.HasPrefix(k.ID, "sk_page0000000000000001") && k.Revoked.IsZero()
		}},
	} {
		var want []string
		for i := range all {
			if tt.sel(&all[i]) {
				want = append(want, all[i].ID)
			}
		}
		var got []string
		seen := map[string]bool{}
		pages := 0
		req := keys.ListRequest{ListFilter: tt.f, Limit: tt.limit}
		for {
			p, err := svc.ListPage(ctx(), req)
			if err != nil {
				t.Fatalf("ListPage(%+v): %v", req, err)
			}
			pages++
			limit := orDefault(tt.limit, keys.DefaultPageSize)
			if len(p.Keys) > limit || p.Next != "" && len(p.Keys) != limit {
				t.Fatalf("page %d of %+v holds %d keys, next %q", pages, tt.f, len(p.Keys), p.Next)
			}
			for _, k := range p.Keys {
				if seen[k.ID] {
					t.Fatalf("%s is on two pages", k.ID)
				}
				seen[k.ID] = true
				got = append(got, k.ID)
			}
			if p.Next == "" {
				break
			}
			req.Cursor = p.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %+v: %d keys, want %d (first differences aside, same order required)", tt.f, len(got), len(want))
		}
		t.Logf("%+v: %d keys in %d pages", tt.f, len(got), pages)
	}
	for _, c := range []string{"x", "MS4yLg", "Mi4xLnNrX3BhZ2UwMDAwMDAwMDAwMDAwMDAwMDE"} {
		if _, err := svc.ListPage(ctx(), keys.ListRequest{Cursor: c}); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("ListPage with cursor %q = %v, want ErrInvalid", c, err)
		}
	}
}

func orDefault(a, b int) int {
	if a == 0 {
		return b
	}
	return a
}

// testMetersShareStore counts requests with two meters on two handles of
// one store, across an hour's end and flushes made while counting: the
// store holds every count, once.
func testMetersShareStore(t *testing.T, e *env) {
	svcA := e.service(keys.Options{})
	svcB := e.service(keys.Options{})
	var ids []string
	for range 3 {
		ids = append(ids, mustCreate(t, svcA, keys.CreateRequest{}).Key.ID)
	}
	ids = append(ids, "") // requests whose key was not known
	outcomes := []httpsig.Reason{"", "", "", httpsig.ReasonBadSignature, httpsig.ReasonReplayed}
	meters := []*keys.Meter{
		keys.NewMeter(svcA, keys.MeterOptions{Now: e.clock.Now, Interval: time.Hour}),
		keys.NewMeter(svcB, keys.MeterOptions{Now: e.clock.Now, Interval: time.Hour}),
	}
	type series struct {
		key     string
		hour    time.Time
		outcome httpsig.Reason
	}
	var mu sync.Mutex
	want := map[series]int64{}
	phase := func(per int) {
		hour := e.clock.Now().UTC().Truncate(time.Hour)
		var wg sync.WaitGroup
		for g := range 6 {
			m := meters[g%2]
			wg.Go(func() {
				counted := map[series]int64{}
				for i := range per {
					key, outcome := ids[(g+i)%len(ids)], outcomes[(i/3)%len(outcomes)]
					m.Count(key, "", outcome)
					counted[series{key, hour, outcome}]++
					if i%997 == 0 {
						if err := m.Flush(ctx()); err != nil {
							t.Errorf("Flush: %v", err)
						}
					}
				}
				mu.Lock()
				for k, n := range counted {
					want[k] += n
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	phase(3000)
	e.clock.Advance(time.Hour)
	for _, m := range meters {
		if err := m.Flush(ctx()); err != nil {
			t.Fatal(err)
		}
	}
	phase(2000)
	for _, m := range meters {
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	rep, err := svcA.Usage(ctx(), keys.UsageQuery{Since: start.Add(-time.Hour), Until: start.Add(3 * time.Hour), ByKey: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[series]int64{}
	var total int64
	for _, h := range rep.Hours {
		if h.Accepted > 0 {
			got[series{h.KeyID, h.Hour, ""}] += h.Accepted
		}
		for r, n := range h.Refused {
			got[series{h.KeyID, h.Hour, r}] += n
		}
	}
	for _, n := range want {
		total += n
	}
	if !maps.Equal(got, want) {
		t.Errorf("stored counts differ from those made:\n got %v\nwant %v", got, want)
	}
	if sum := rep.Total.Accepted + sumValues(rep.Total.Refused); sum != total || total != 6*5000 {
		t.Errorf("report total %d, counted %d, want %d", sum, total, 6*5000)
	}
}

func sumValues[K comparable](m map[K]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func testDisablePropagates(t *testing.T, e *env) {
	admin := e.service(keys.Options{})
	st := &CountingStore{Store: e.db.Open(t)}
	gateway := e.serviceOn(st, keys.Options{})
	c := mustCreate(t, admin, keys.CreateRequest{})
	WaitCached(t, gateway, st, c.Key.ID)
	if _, err := admin.Disable(ctx(), c.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	took := testtime.Eventually(t, PropagationLimit, func() error {
		err := resolveErr(gateway, c.Key.ID)
		if errors.Is(err, keys.ErrKeyDisabled) && errors.Is(err, httpsig.ErrKeyRevoked) {
			return nil
		}
		if err != nil {
			t.Fatalf("ResolveKey = %v", err)
		}
		return errors.New("the other service still accepts the disabled key")
	})
	t.Logf("disabling honoured by the other service after %v", took)
	waitRefusalCached := func() {
		testtime.Eventually(t, 5*time.Second, func() error {
			before := st.Gets()
			err := resolveErr(gateway, c.Key.ID)
			if !errors.Is(err, keys.ErrKeyDisabled) {
				t.Fatalf("ResolveKey = %v", err)
			}
			if st.Gets() != before {
				return errors.New("the refusal is not cached yet")
			}
			return nil
		})
	}
	waitRefusalCached()
	if _, err := admin.Enable(ctx(), c.Key.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	took = testtime.Eventually(t, PropagationLimit, func() error { return resolveErr(gateway, c.Key.ID) })
	t.Logf("enabling honoured by the other service after %v", took)
}
