package keyring

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

var t0 = time.Unix(1_800_000_000, 0)

// RFC 8037 Appendix A.3: the thumbprint of the Ed25519 key of A.1.
func TestThumbprintRFC8037(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := Thumbprint(ed25519.PublicKey(x)); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestRotation(t *testing.T) {
	r, err := New(t0)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.Signer(t0)
	if _, ok := r.Signer(t0.Add(-time.Second)); ok {
		t.Fatal("a key signs before its time")
	}
	// Published 10 minutes before it signs; the old key published for an
	// hour after.
	next, err := r.Rotate(t0.Add(24*time.Hour), 10*time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return t0.Add(24*time.Hour + d) }
	steps := []struct {
		at        time.Time
		signer    string
		published []string
	}{
		{at(0), first.ID, []string{first.ID, next.ID}},
		{at(10*time.Minute - time.Second), first.ID, []string{first.ID, next.ID}},
		{at(10 * time.Minute), next.ID, []string{first.ID, next.ID}},
		{at(70*time.Minute - time.Second), next.ID, []string{first.ID, next.ID}},
		{at(70 * time.Minute), next.ID, []string{next.ID}},
	}
	for i, s := range steps {
		k, ok := r.Signer(s.at)
		if !ok || k.ID != s.signer {
			t.Errorf("step %d: signer %s", i, k.ID)
		}
		var ids []string
		for _, p := range r.Published(s.at) {
			ids = append(ids, p.ID)
		}
		if strings.Join(ids, ",") != strings.Join(s.published, ",") {
			t.Errorf("step %d: published %v, want %v", i, ids, s.published)
		}
	}
	// The next rotation drops the expired key.
	third, _ := r.Rotate(at(48*time.Hour), 0, time.Hour)
	if len(r.Keys) != 2 || r.Keys[0].ID != next.ID || r.Keys[1].ID != third.ID {
		t.Fatalf("keys %v", r.Keys)
	}
	if k, _ := r.Signer(at(48 * time.Hour)); k.ID != third.ID {
		t.Fatal("a successor with no publication delay signs at once")
	}
}

func TestSaveLoad(t *testing.T) {
	r, _ := New(t0)
	r.Rotate(t0.Add(time.Hour), time.Minute, time.Hour)
	path := filepath.Join(t.TempDir(), "gateway-keys.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 {
		t.Fatalf("%d keys", len(got.Keys))
	}
	for i := range r.Keys {
		a, b := r.Keys[i], got.Keys[i]
		if a.ID != b.ID || !a.Private.Equal(b.Private) || !a.NotBefore.Equal(b.NotBefore) || !a.Expires.Equal(b.Expires) {
			t.Fatalf("key %d: %+v, want %+v", i, b, a)
		}
	}
	os.Chmod(path, 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable ring: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// What the gateway publishes, a service reads, and verifies the gateway's
// signatures with.
func TestJWKSRoundTrip(t *testing.T) {
	r, _ := New(t0)
	next, _ := r.Rotate(t0.Add(time.Hour), time.Minute, time.Hour)
	data, err := r.JWKS(t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"d"`) {
		t.Fatalf("a private part published: %s", data)
	}
	keys, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[next.ID].Key.Equal(next.Public()) || keys[next.ID].NotBefore.Unix() != next.NotBefore.Unix() {
		t.Fatalf("keys %v", keys)
	}
	resolver, err := Resolver(keys)
	if err != nil {
		t.Fatal(err)
	}
	signing, _ := r.Signer(t0.Add(time.Hour))
	sk, _ := signing.Signer()
	req, _ := http.NewRequest("GET", "https://api.example.com/v1/orders", nil)
	now := func() time.Time { return t0.Add(time.Hour) }
	if err := (&httpsig.Signer{Key: sk, KeyID: signing.ID, Tag: "signet-gateway", NoNonce: true, Now: now}).SignRequest(req, nil); err != nil {
		t.Fatal(err)
	}
	v := &httpsig.Verifier{Keys: resolver, Now: now, Policy: httpsig.Policy{Tag: "signet-gateway", RequiredParams: []string{"created", "keyid"}}}
	if _, err := v.VerifyRequest(req, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefuses(t *testing.T) {
	r, _ := New(t0)
	priv, _ := marshalSet(r.Keys, true)
	pub, _ := r.JWKS(t0)
	x := b64(r.Keys[0].Public())
	for name, c := range map[string]struct {
		data    string
		private bool
	}{
		"not json":        {"nope", true},
		"no keys":         {`{}`, true},
		"public in ring":  {string(pub), true},
		"private in set":  {string(priv), false},
		"wrong kid":       {`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"other"}]}`, false},
		"twice":           {`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`, false},
		"short x":         {`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`, false},
		"rsa in the ring": {`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, true},
	} {
		_, err := parseSet([]byte(c.data), c.private)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A published set may carry keys of other kinds, which are skipped.
	keys, err := ParseJWKS([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`))
	if err != nil || len(keys) != 1 {
		t.Fatalf("%v %v", keys, err)
	}
}

func FuzzParseJWKS(f *testing.F) {
	r, _ := New(t0)
	pub, _ := r.JWKS(t0)
	f.Add(pub)
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		for id, k := range keys {
			if Thumbprint(k.Key) != id || len(k.Key) != ed25519.PublicKeySize {
				t.Fatalf("key %s: %x", id, k.Key)
			}
		}
	})
}
