package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

func TestSealer(t *testing.T) {
	master := NewMasterKey()
	s, err := newSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	sealed := s.sealSecret("sk_a", secret)
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed secret holds the secret")
	}
	if again := s.sealSecret("sk_a", secret); bytes.Equal(again, sealed) {
		t.Error("sealing twice gave the same bytes: nonces must be fresh")
	}
	if got, err := s.openSecret("sk_a", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("openSecret = %q, %v", got, err)
	}
	if _, err := s.openSecret("sk_b", sealed); err == nil {
		t.Error("a secret sealed for sk_a opens as sk_b")
	}
	other, _ := newSealer(NewMasterKey())
	if _, err := other.openSecret("sk_a", sealed); err == nil {
		t.Error("a secret opens under another master key")
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := s.openSecret("sk_a", bad); err == nil {
			t.Fatalf("a sealed secret with byte %d flipped opens", i)
		}
	}
	for _, bad := range [][]byte{nil, {1}, sealed[:20]} {
		if _, err := s.openSecret("sk_a", bad); err == nil {
			t.Errorf("openSecret(%x) succeeded", bad)
		}
	}
	check := s.check()
	if !s.opensCheck(check) || other.opensCheck(check) {
		t.Error("the check value tells the master keys apart wrongly")
	}
	// A sealed secret is not a check value, nor the reverse.
	if s.opensCheck(sealed) {
		t.Error("a sealed secret passes as a check value")
	}
	if _, err := newSealer(master[:31]); !errors.Is(err, ErrInvalid) {
		t.Errorf("newSealer(31 bytes) = %v", err)
	}
}

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32)
	for _, text := range []string{
		base64.StdEncoding.EncodeToString(key),
		base64.StdEncoding.EncodeToString(key) + "\n",
		"  " + base64.RawStdEncoding.EncodeToString(key) + "\r\n",
		base64.URLEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		string(FormatMasterKey(key)),
	} {
		got, err := ParseMasterKey([]byte(text))
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseMasterKey(%q) = %x, %v", text, got, err)
		}
	}
	for _, text := range []string{"", "\n", "not base64!", base64.StdEncoding.EncodeToString(key[:16]), hex.EncodeToString(key)} {
		_, err := ParseMasterKey([]byte(text))
		if err == nil {
			t.Errorf("ParseMasterKey(%q) succeeded", text)
		} else if text != "" && strings.Contains(err.Error(), text) {
			t.Errorf("the error shows the text: %v", err)
		}
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := newID(rand.Reader, httpsig.AlgHMACSHA256)
		if err != nil || !validID(id) || !strings.HasPrefix(id, "sk_") || seen[id] {
			t.Fatalf("newID = %q, %v", id, err)
		}
		seen[id] = true
	}
	if id, _ := newID(rand.Reader, httpsig.AlgEd25519); !strings.HasPrefix(id, "pk_") || !validID(id) {
		t.Errorf("public key id %q", id)
	}
	for _, id := range []string{"", "sk_", "sk_AAAAAAAAAAAAAAAAAAAAA", "sk_AAAAAAAAAAAAAAAAAAAAAAA", "xk_AAAAAAAAAAAAAAAAAAAAAA", "sk_AAAAAAAAAAAAAAAAAAAAA=", "sk_AAAAAAAAAAAAAAAAAAAA+/", "sk_AAAAAAAAAAAAAAAAAAAAA\n"} {
		if validID(id) {
			t.Errorf("validID(%q) = true", id)
		}
	}
}

func TestScopes(t *testing.T) {
	for _, s := range []string{"admin", "orders:read", "a", "a-b_c.d:e9", "z" + strings.Repeat("0", 63)} {
		if !ValidScope(s) {
			t.Errorf("ValidScope(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Admin", "9a", ":a", "a b", "a,b", "é", "a/b", "z" + strings.Repeat("0", 64)} {
		if ValidScope(s) {
			t.Errorf("ValidScope(%q) = true", s)
		}
	}
	got, err := normalizeScopes([]string{"b", "a", "b"})
	if err != nil || !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("normalizeScopes = %v, %v", got, err)
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("s%d", i)
	}
	if _, err := normalizeScopes(many); !errors.Is(err, ErrInvalid) {
		t.Errorf("65 scopes: %v", err)
	}
}

func TestOwner(t *testing.T) {
	for _, o := range []string{"alice", "alice@example.com", "client-42", "A1", "svc:orders+eu"} {
		if err := checkOwner(o); err != nil {
			t.Errorf("checkOwner(%q) = %v", o, err)
		}
	}
	for _, o := range []string{"", "-x", "a b", "a\nb", "a\x00", "ä", strings.Repeat("a", 129)} {
		if err := checkOwner(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkOwner(%q) = %v", o, err)
		}
	}
}

func TestWeakEd25519(t *testing.T) {
	le := func(hexBE string) ed25519.PublicKey {
		b, _ := hex.DecodeString(hexBE)
		slices.Reverse(b)
		return b
	}
	weak := map[string]ed25519.PublicKey{
		"zero (order 4)":                 make([]byte, 32),
		"identity":                       le("0000000000000000000000000000000000000000000000000000000000000001"),
		"(0, -1), order 2":               le("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"),
		"y = p, not canonical":           le("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"),
		"negative zero x, not canonical": le("8000000000000000000000000000000000000000000000000000000000000001"),
		"y = 2, not on the curve":        le("0000000000000000000000000000000000000000000000000000000000000002"),
		"a point of order 8":             le("05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826"),
	}
	for name, pub := range weak {
		if !weakEd25519(pub) {
			t.Errorf("%s: not found weak", name)
		}
	}
	for range 20 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if weakEd25519(pub) {
			t.Fatalf("a generated key %x is found weak", pub)
		}
	}
}

func TestStatus(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		k    Key
		want Status
	}{
		{Key{}, StatusActive},
		{Key{Expires: now.Add(time.Second)}, StatusActive},
		{Key{Expires: now}, StatusExpired},
		{Key{Successor: "sk_x", Expires: now.Add(time.Hour)}, StatusExpiring},
		{Key{Successor: "sk_x", Expires: now}, StatusExpired},
		{Key{Revoked: now.Add(time.Hour), Expires: now.Add(-time.Hour)}, StatusRevoked},
	} {
		if got := tt.k.Status(now); got != tt.want {
			t.Errorf("Status(%+v) = %s, want %s", tt.k, got, tt.want)
		}
	}
}

func TestKeyJSON(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	k := Key{ID: "pk_x", Owner: "bob", Alg: httpsig.AlgEd25519, Scopes: []string{"a"}, Label: "l", Created: now, Expires: now.Add(time.Hour),
		Predecessor: "pk_w", PublicKey: []byte("-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n")}
	data, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"pk_x","status":"active","owner":"bob","alg":"ed25519","scopes":["a"],"label":"l","created":"2030-01-02T03:04:05.000006Z","expires":"2030-01-02T04:04:05.000006Z","predecessor":"pk_w","version":0,"public_key":"-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n"}`
	if string(data) != want {
		t.Errorf("JSON:\n got %s\nwant %s", data, want)
	}
	var back Key
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if !bytes.Equal(again, data) {
		t.Errorf("round trip: %s", again)
	}
	empty, _ := json.Marshal(Key{ID: "sk_y"})
	if !strings.Contains(string(empty), `"scopes":[]`) || strings.Contains(string(empty), "revoked") || strings.Contains(string(empty), "public_key") {
		t.Errorf("zero fields: %s", empty)
	}
	c, _ := json.Marshal(Created{Key: Key{ID: "sk_z"}, Secret: []byte{0xfb, 0xff}})
	if !strings.Contains(string(c), `"secret":"+/8="`) {
		t.Errorf("Created JSON %s: the secret must be standard padded base64", c)
	}
}

func TestCacheBounds(t *testing.T) {
	for _, size := range []int{1, 7, 100, 10000} {
		c := newCache(size)
		always := func() bool { return true }
		for i := range 3 * size {
			e := &entry{id: fmt.Sprintf("k%d", i), loaded: int64(i)}
			c.put(e, always)
		}
		if n := c.len(); n > size+len(c.shards) || n < size/2 {
			t.Errorf("cache of size %d holds %d entries after %d puts", size, n, 3*size)
		}
	}
	c := newCache(100)
	c.put(&entry{id: "a"}, func() bool { return true })
	if out, added := c.put(&entry{id: "b"}, func() bool { return false }); added || out != nil || c.get("b") != nil {
		t.Error("put added an entry its condition refused")
	}
	old := c.get("a")
	out, _ := c.put(&entry{id: "a"}, func() bool { return true })
	if len(out) != 1 || out[0] != old {
		t.Errorf("replacing an entry returned %v", out)
	}
	if c.remove("a") == nil || c.get("a") != nil || c.remove("a") != nil {
		t.Error("remove")
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := newCache(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				id := fmt.Sprintf("k%d", (g*7+i)%200)
				switch i % 4 {
				case 0:
					c.put(&entry{id: id}, func() bool { return true })
				case 1:
					c.remove(id)
				case 3:
					if i%400 == 3 {
						c.clear()
					}
				default:
					if e := c.get(id); e != nil && e.id != id {
						t.Errorf("get(%s) = entry of %s", id, e.id)
					}
				}
			}
		})
	}
	wg.Wait()
}
