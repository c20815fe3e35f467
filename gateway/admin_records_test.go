package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
)

// TestAdminPages pages through 10,000 keys over the admin API, with and
// without filters, and finds every selected key once, in order. The keys
// are written to the SQLite store in bulk, as a migration would, so that
// the test spends its time on the pages.
func TestAdminPages(t *testing.T) {
	const n = 10000
	pub := []byte(publicKeyPEM(t))
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var all []keys.Key
	e := newAdminEnvOn(t, func(s keys.Store) {
		recs := make([]keys.Record, 0, n)
		for j := range n {
			k := keys.Key{
				// Three keys to a microsecond: within one, the order is by id.
				ID: fmt.Sprintf("pk_bulk%018d", n-j), Owner: fmt.Sprintf("owner%d", j%4), Alg: httpsig.AlgEd25519,
				Scopes: []string{"orders:read"}, Created: start.Add(time.Duration(j/3) * time.Microsecond), PublicKey: pub,
			}
			if j%3 == 0 {
				k.Scopes = append(k.Scopes, "orders:write")
			}
			if j%10 == 9 {
				k.Revoked = start
			}
			if j%7 == 0 {
				k.Disabled = start
			}
			recs = append(recs, keys.Record{Key: k})
			all = append(all, k)
		}
		if err := s.Apply(context.Background(), &keys.Write{Insert: recs}); err != nil {
			t.Fatal(err)
		}
	})
	slices.SortFunc(all, func(a, b keys.Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	bulk := func(k *keys.Key) bool { return strings.HasPrefix(k.ID, "pk_bulk") }
	live := func(k *keys.Key) bool { return bulk(k) && k.Revoked.IsZero() }
	for _, tt := range []struct {
		query string
		sel   func(k *keys.Key) bool
	}{
		{"prefix=pk_bulk", live},
		{"prefix=pk_bulk&all=true&limit=1000", bulk},
		{"owner=owner2&limit=250", func(k *keys.Key) bool { return live(k) && k.Owner == "owner2" }},
		{"status=disabled&limit=333", func(k *keys.Key) bool { return live(k) && !k.Disabled.IsZero() }},
		{"status=active&scope=orders:write&limit=500", func(k *keys.Key) bool {
			return live(k) && k.Disabled.IsZero() && slices.Contains(k.Scopes, "orders:write")
		}},
		{"status=revoked&limit=1000", func(k *keys.Key) bool { return bulk(k) && !k.Revoked.IsZero() }},
		{"prefix=pk_bulk00000000000000001&limit=7", func(k *keys.Key) bool {
			return live(k) && strings.HasPrefix(k.ID, "pk_bulk00000000000000001")
		}},
	} {
		t.Run(tt.query, func(t *testing.T) {
			var want []string
			for i := range all {
				if tt.sel(&all[i]) {
					want = append(want, all[i].ID)
				}
			}
			q, _ := url.ParseQuery(tt.query)
			limit := keys.DefaultPageSize
			if l := q.Get("limit"); l != "" {
				fmt.Sscan(l, &limit)
			}
			var got []string
			seen := map[string]bool{}
			cursor, pages := "", 0
			for {
				path := "/v1/keys?" + tt.query
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				var page struct {
					Keys []map[string]any `json:"keys"`
					Next string           `json:"next"`
				}
				if code := e.call(t, e.root, "GET", path, nil, &page); code != 200 {
					t.Fatalf("GET %s: %d", path, code)
				}
				pages++
				if len(page.Keys) > limit || page.Next != "" && len(page.Keys) != limit {
					t.Fatalf("page %d holds %d keys, next %q", pages, len(page.Keys), page.Next)
				}
				for _, k := range page.Keys {
					id, _ := k["id"].(string)
					if seen[id] {
						t.Fatalf("%s is on two pages", id)
					}
					if k["status"] == nil {
						t.Fatalf("%s has no status: %v", id, k)
					}
					seen[id] = true
					got = append(got, id)
				}
				if page.Next == "" {
					break
				}
				cursor = page.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("%d keys in %d pages, want %d in order", len(got), pages, len(want))
			}
			t.Logf("%d keys in %d pages", len(got), pages)
		})
	}
	var p problem
	for _, bad := range []string{"cursor=x", "limit=0", "limit=1001", "status=lost"} {
		if code := e.call(t, e.root, "GET", "/v1/keys?"+bad, nil, &p); code != 400 || p.reason() != "invalid-request" {
			t.Errorf("GET /v1/keys?%s: %d %+v", bad, code, p)
		}
	}
}

// TestAdminRecords creates a key with limits and metadata, changes it with
// PATCH (If-Match included), disables and enables it through the gateway,
// reads its usage, and finds every change in the audit log with its actor.
func TestAdminRecords(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	gw := &env{up: e.up, gw: e.gw}

	var c struct {
		Key    map[string]any `json:"key"`
		Secret string         `json:"secret"`
	}
	if code := e.call(t, e.root, "POST", "/v1/keys", map[string]any{
		"owner": "acme", "scopes": []string{"orders:read"}, "label": "ci", "metadata": map[string]any{"plan": "pro", "seats": 5},
		"rate_limit": map[string]any{"rate": "100/s", "burst": 200}, "uses": map[string]any{"remaining": 1000, "refill": "1000/day"},
	}, &c); code != 201 {
		t.Fatalf("create: %d %+v", code, c)
	}
	id := c.Key["id"].(string)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	if c.Key["status"] != "active" || js(c.Key["rate_limit"]) != `{"burst":200,"rate":"100/s"}` ||
		js(c.Key["metadata"]) != `{"plan":"pro","seats":5}` || c.Key["uses"].(map[string]any)["remaining"] != 1000.0 ||
		c.Key["uses"].(map[string]any)["refill"] != "1000/day" {
		t.Fatalf("created key %s", js(c.Key))
	}
	client := hmacSignerB64(t, id, c.Secret)

	// PATCH with the ETag of a read; a second with the same tag is refused.
	get := func() (map[string]any, string) {
		t.Helper()
		r, _ := http.NewRequest("GET", e.admin.URL+"/v1/keys/"+id, http.NoBody)
		r.ContentLength = 0
		if err := e.root.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var k map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&k); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET: %d %v", resp.StatusCode, err)
		}
		return k, resp.Header.Get("ETag")
	}
	patch := func(etag string, body any) (int, map[string]any, string) {
		t.Helper()
		b, _ := json.Marshal(body)
		r, _ := http.NewRequest("PATCH", e.admin.URL+"/v1/keys/"+id, bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/merge-patch+json")
		if etag != "" {
			r.Header.Set("If-Match", etag)
		}
		if err := e.root.SignRequest(r, b); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, resp.Header.Get("ETag")
	}
	k, etag := get()
	if etag != fmt.Sprintf(`"v%v"`, k["version"]) {
		t.Fatalf("ETag %s of version %v", etag, k["version"])
	}
	code, k, etag2 := patch(etag, map[string]any{"label": "renamed", "metadata": map[string]any{"plan": "team"}, "scopes": []string{"orders:read", "orders:write"},
		"rate_limit": map[string]any{"rate": "2/min", "burst": 2}, "uses": nil})
	if code != 200 || k["label"] != "renamed" || js(k["metadata"]) != `{"plan":"team"}` || k["uses"] != nil || k["status"] != "active" || etag2 == etag {
		t.Fatalf("PATCH: %d %s (ETag %s after %s)", code, js(k), etag2, etag)
	}
	if code, p, _ := patch(etag, map[string]any{"label": "lost update"}); code != 412 || !strings.HasSuffix(p["type"].(string), "/precondition-failed") {
		t.Fatalf("PATCH with a stale If-Match: %d %s", code, js(p))
	}
	if code, _, _ := patch(`W/"v9", `+etag2, map[string]any{"label": "either"}); code != 200 {
		t.Fatalf("PATCH with a list holding the current tag: %d", code)
	}
	big := map[string]any{"blob": strings.Repeat("x", keys.MaxMetadataSize)}
	for _, bad := range []any{map[string]any{"metadata": big}, map[string]any{"scopes": nil}, map[string]any{"expires": "last week"}, map[string]any{"owner": "evil"}} {
		if code, p, _ := patch("", bad); code != 400 || !strings.HasSuffix(p["type"].(string), "/invalid-request") {
			t.Errorf("PATCH %s: %d %s", js(bad), code, js(p))
		}
	}
	// The gateway sees the new scopes.
	if resp, body := gw.send(t, client, "GET", "/orders", "", nil); resp.StatusCode != 200 {
		t.Fatalf("client key: %d %s", resp.StatusCode, body)
	}
	if got, _ := e.up.last(); got.Header.Get("X-Signet-Scopes") != "orders:read,orders:write" {
		t.Fatalf("upstream scopes %q", got.Header.Get("X-Signet-Scopes"))
	}

	// Disable: refused through the gateway; enable: accepted again.
	var dk map[string]any
	if code := e.call(t, e.root, "POST", "/v1/keys/"+id+"/disable", nil, &dk); code != 200 || dk["status"] != "disabled" || dk["disabled"] == nil {
		t.Fatalf("disable: %d %s", code, js(dk))
	}
	resp, body := gw.send(t, client, "GET", "/orders", "", nil)
	if r := reasonOf(t, resp, body); resp.StatusCode != 401 || r != "key-disabled" {
		t.Fatalf("disabled key through the gateway: %d %s", resp.StatusCode, body)
	}
	dk = nil // Unmarshal would merge into the map of the last answer
	if code := e.call(t, e.root, "POST", "/v1/keys/"+id+"/enable", nil, &dk); code != 200 || dk["status"] != "active" || dk["disabled"] != nil {
		t.Fatalf("enable: %d %s", code, js(dk))
	}
	if resp, body := gw.send(t, client, "GET", "/orders", "", nil); resp.StatusCode != 200 {
		t.Fatalf("enabled key: %d %s", resp.StatusCode, body)
	}

	// Usage, as a Meter writes it.
	m := keys.NewMeter(e.keys, keys.MeterOptions{Interval: time.Hour})
	defer m.Close()
	for range 5 {
		m.Count(id, "", "")
	}
	m.Count(id, "", httpsig.ReasonBadSignature)
	m.Count(id, "", httpsig.ReasonReplayed)
	m.Count("", "", httpsig.ReasonUnknownKey)
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var rep keys.UsageReport
	if code := e.call(t, e.root, "GET", "/v1/keys/"+id+"/usage?since=1h", nil, &rep); code != 200 || rep.Total.Accepted != 5 ||
		rep.Total.Refused[httpsig.ReasonBadSignature] != 1 || rep.Total.Refused[httpsig.ReasonReplayed] != 1 || len(rep.Hours) != 1 || rep.KeyID != id {
		t.Fatalf("key usage: %d %+v", code, rep)
	}
	rep = keys.UsageReport{}
	if code := e.call(t, e.root, "GET", "/v1/usage", nil, &rep); code != 200 || rep.Total.Accepted != 5 || rep.Total.Refused[httpsig.ReasonUnknownKey] != 1 {
		t.Fatalf("usage of every key: %d %+v", code, rep)
	}
	rep = keys.UsageReport{}
	if code := e.call(t, e.root, "GET", "/v1/usage?owner=acme&by_key=true", nil, &rep); code != 200 || len(rep.Hours) != 1 || rep.Hours[0].KeyID != id || rep.Total.Refused[httpsig.ReasonUnknownKey] != 0 {
		t.Fatalf("usage of acme by key: %d %+v", code, rep)
	}
	rep = keys.UsageReport{}
	if code := e.call(t, e.root, "GET", "/v1/usage?owner=nobody", nil, &rep); code != 200 || rep.Total.Accepted != 0 || len(rep.Hours) != 0 {
		t.Fatalf("usage of an owner without keys: %d %+v", code, rep)
	}
	var p problem
	if code := e.call(t, e.root, "GET", "/v1/keys/sk_nope/usage", nil, &p); code != 404 {
		t.Fatalf("usage of no key: %d %+v", code, p)
	}

	// Revoked: no more changes, and the audit log has them all, by the
	// admin key that made them.
	dk = nil
	if code := e.call(t, e.root, "DELETE", "/v1/keys/"+id, nil, &dk); code != 200 || dk["status"] != "revoked" {
		t.Fatalf("revoke: %d %s", code, js(dk))
	}
	if code, _, _ := patch("", map[string]any{"label": "too late"}); code != 409 {
		t.Fatalf("PATCH of a revoked key: %d", code)
	}
	if code := e.call(t, e.root, "POST", "/v1/keys/"+id+"/enable", nil, &p); code != 409 {
		t.Fatalf("enable a revoked key: %d", code)
	}
	var audit struct{ Events []keys.AuditEvent }
	if code := e.call(t, e.root, "GET", "/v1/audit?key="+id, nil, &audit); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var actions []string
	for _, ev := range audit.Events {
		if ev.Actor != "key:"+e.root.KeyID {
			t.Errorf("event %+v: actor %q", ev, ev.Actor)
		}
		actions = append(actions, string(ev.Action))
	}
	for _, want := range []keys.Action{keys.ActionCreate, keys.ActionUpdate, keys.ActionSetScopes, keys.ActionSetLimits, keys.ActionDisable, keys.ActionEnable, keys.ActionRevoke} {
		if !slices.Contains(actions, string(want)) {
			t.Errorf("audit log of %s lacks %s: %v", id, want, actions)
		}
	}
	if code := e.call(t, e.root, "GET", "/v1/audit?key="+id+"&limit=2", nil, &audit); code != 200 || len(audit.Events) != 2 || audit.Events[1].Action != keys.ActionRevoke {
		t.Fatalf("the last 2 events: %d %+v", code, audit.Events)
	}
}

// hmacSignerB64 is hmacSigner for a secret as the admin API shows it.
func hmacSignerB64(t *testing.T, id, secret string) *httpsig.Signer {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return hmacSigner(t, id, b)
}
