package keys_test

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
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
	"github.com/signet-dev/signet/keys/sqlite"
)

// The tests of the service run over a real SQLite file, on a manual clock.
// What differs between stores is tested by keys/keystest.

// start is where each test's manual clock begins.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is one test's database file, master key and clock.
type env struct {
	t      *testing.T
	path   string
	master []byte
	clock  *testtime.Clock
}

func newEnv(t *testing.T) *env {
	return &env{t: t, path: filepath.Join(t.TempDir(), "signet.db"), master: keys.NewMasterKey(), clock: testtime.NewClock(start)}
}

// open returns a new handle on the file, as another process would have.
func (e *env) open() keys.Store {
	e.t.Helper()
	s, err := sqlite.Open(context.Background(), e.path, sqlite.Options{Create: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// store opens a raw handle, closed at the end of the test.
func (e *env) store() keys.Store {
	s := e.open()
	e.t.Cleanup(func() { s.Close() })
	return s
}

// service opens a handle and a service over it, on the manual clock unless
// opts says otherwise, closed at the end of the test.
func (e *env) service(opts keys.Options) *keys.Service {
	e.t.Helper()
	return e.serviceOn(e.open(), opts)
}

func (e *env) serviceOn(st keys.Store, opts keys.Options) *keys.Service {
	e.t.Helper()
	if opts.MasterKey == nil {
		opts.MasterKey = e.master
	}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.LookupTimeout == 0 {
		// The deadline is for a store that hangs; these tests are about
		// other things, and run on machines that may be busy.
		opts.LookupTimeout = 10 * time.Second
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

func audit(t *testing.T, s keys.Store, f keys.AuditFilter) []keys.AuditEvent {
	t.Helper()
	evs, err := s.Audit(ctx(), f)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return evs
}

func mustGet(t *testing.T, s keys.Store, id string) *keys.Record {
	t.Helper()
	r, err := s.Get(ctx(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func equalJSON(a, b any) bool {
	aj, err1 := json.Marshal(a)
	bj, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(aj, bj)
}

func TestCreateHMAC(t *testing.T) {
	e := newEnv(t)
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

func TestCreatePublicKeys(t *testing.T) {
	e := newEnv(t)
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

func TestBadInput(t *testing.T) {
	e := newEnv(t)
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

func TestUnknownKey(t *testing.T) {
	e := newEnv(t)
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
		if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: id, Overlap: time.Hour, Actor: "tester"}); !errors.Is(err, keys.ErrNotFound) {
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

func TestDuplicateID(t *testing.T) {
	e := newEnv(t)
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
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: first.Key.ID, Overlap: time.Hour, Actor: "tester"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("Rotate to a taken id = %v, want ErrConflict", err)
	}
	if got, _ := svc.Get(ctx(), first.Key.ID); got.Successor != "" || !got.Expires.IsZero() {
		t.Errorf("a failed rotation changed the old key: %+v", got)
	}
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	t0 := e.clock.Now()
	old := mustCreate(t, svc, keys.CreateRequest{Scopes: []string{"orders:read"}, Label: "app", Expires: t0.Add(90 * 24 * time.Hour)})
	oldSK := hmacSigner(t, old)
	e.clock.Advance(24 * time.Hour)
	t1 := e.clock.Now()
	rot, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, Actor: "rotator"})
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
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, Actor: "rotator"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("rotating a rotated key = %v, want ErrConflict", err)
	}
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: nk.ID, Overlap: -time.Second, Actor: "rotator"}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("negative overlap = %v, want ErrInvalid", err)
	}
	_, pub := keyPair(t, httpsig.AlgEd25519)
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: nk.ID, Overlap: time.Hour, PublicKey: pub, Actor: "rotator"}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating an HMAC key with a public key = %v, want ErrInvalid", err)
	}

	// No overlap: the old key stops at once. Its expiry, if sooner than
	// the overlap, stands.
	third, err := svc.Rotate(ctx(), keys.RotateRequest{ID: nk.ID, Actor: "rotator"})
	if err != nil {
		t.Fatal(err)
	}
	if err := resolveErr(svc, nk.ID); !errors.Is(err, httpsig.ErrKeyExpired) {
		t.Errorf("key rotated without overlap = %v, want ErrKeyExpired", err)
	}
	soon := mustCreate(t, svc, keys.CreateRequest{Expires: e.clock.Now().Add(time.Minute)})
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: soon.Key.ID, Overlap: time.Hour, Actor: "rotator"}); err != nil {
		t.Fatal(err)
	}
	if k := mustKey(t, svc, soon.Key.ID); !k.Expires.Equal(soon.Key.Expires) {
		t.Errorf("rotation pushed an expiry back: %v, was %v", k.Expires, soon.Key.Expires)
	}

	if err := svc.Revoke(ctx(), third.Key.ID, "rotator"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: third.Key.ID, Overlap: time.Hour, Actor: "rotator"}); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("rotating a revoked key = %v, want ErrConflict", err)
	}
	var acts []string
	for _, ev := range audit(t, e.store(), keys.AuditFilter{KeyID: old.Key.ID}) {
		acts = append(acts, string(ev.Action)+" by "+ev.Actor)
	}
	if !slices.Equal(acts, []string{"create by tester", "rotate by rotator"}) {
		t.Errorf("audit of the old key = %v", acts)
	}
	if evs := audit(t, e.store(), keys.AuditFilter{KeyID: nk.ID}); len(evs) < 1 || evs[0].Action != keys.ActionCreate || !strings.Contains(evs[0].Detail, old.Key.ID) {
		t.Errorf("audit of the new key = %+v, want its creation naming its predecessor", evs)
	}
}

func TestRotatePublicKey(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	sk1, pub1 := keyPair(t, httpsig.AlgEd25519)
	old := mustCreate(t, svc, keys.CreateRequest{PublicKey: pub1})
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, Actor: "tester"}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating an ed25519 key without a new public key = %v, want ErrInvalid", err)
	}
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, PublicKey: pub1, Actor: "tester"}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating to the same public key = %v, want ErrInvalid", err)
	}
	_, ecPub := keyPair(t, httpsig.AlgECDSAP256SHA256)
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, PublicKey: ecPub, Actor: "tester"}); !errors.Is(err, keys.ErrInvalid) {
		t.Errorf("rotating to a key of another algorithm = %v, want ErrInvalid", err)
	}
	sk2, pub2 := keyPair(t, httpsig.AlgEd25519)
	rot, err := svc.Rotate(ctx(), keys.RotateRequest{ID: old.Key.ID, Overlap: time.Hour, PublicKey: pub2, Actor: "tester"})
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

func TestRevoke(t *testing.T) {
	e := newEnv(t)
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

func TestExpiry(t *testing.T) {
	e := newEnv(t)
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

func TestSetScopes(t *testing.T) {
	e := newEnv(t)
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
		acts = append(acts, string(ev.Action))
	}
	if !slices.Equal(acts, []string{"create", "set-scopes", "set-scopes", "set-scopes"}) {
		t.Errorf("audit = %v; a change that changes nothing is not logged", acts)
	}
}

func TestLastUsed(t *testing.T) {
	e := newEnv(t)
	st := &keystest.CountingStore{Store: e.open()}
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

	// A running service writes by itself once the interval has passed by
	// its clock, and a later use moves the time on.
	svc2 := e.serviceOn(e.open(), keys.Options{LastUsedInterval: time.Minute})
	e.clock.Advance(time.Minute)
	used := e.clock.Now()
	if err := resolveErr(svc2, c.Key.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	testtime.Eventually(t, 5*time.Second, func() error {
		if got := mustGet(t, raw, c.Key.ID).LastUsed; !got.Equal(used) {
			return fmt.Errorf("LastUsed %v, want %v", got, used)
		}
		return nil
	})
}

func TestNegativeCache(t *testing.T) {
	e := newEnv(t)
	st := &keystest.CountingStore{Store: e.open()}
	svc := e.serviceOn(st, keys.Options{})
	known := mustCreate(t, svc, keys.CreateRequest{})
	keystest.WaitCached(t, svc, st, known.Key.ID)
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
}

func TestWrongMasterKey(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	mustCreate(t, svc, keys.CreateRequest{})
	st := e.open()
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

func TestRekey(t *testing.T) {
	e := newEnv(t)
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

	st := e.open()
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

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	var ids []string
	for range 4 {
		ids = append(ids, mustCreate(t, svc, keys.CreateRequest{}).Key.ID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstFailure atomic.Pointer[error]
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
					firstFailure.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	if err := svc.Revoke(ctx(), ids[0], "tester"); err != nil {
		t.Error(err)
	}
	if _, err := svc.Rotate(ctx(), keys.RotateRequest{ID: ids[1], Actor: "tester"}); err != nil {
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
		t.Errorf("%d resolutions failed, the first with: %v", n, *firstFailure.Load())
	}
	if err := resolveErr(svc, ids[0]); !errors.Is(err, httpsig.ErrKeyRevoked) {
		t.Errorf("revoked key = %v", err)
	}
	if err := svc.Ping(ctx()); err != nil {
		t.Errorf("Ping = %v", err)
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

// hangingStore is a store whose Get waits until released, whatever its
// context says: a store that does not honour deadlines.
type hangingStore struct {
	keys.Store
	release chan struct{}
}

func (h *hangingStore) Get(ctx context.Context, id string) (*keys.Record, error) {
	<-h.release
	return h.Store.Get(ctx, id)
}

// TestLookupDeadline checks that a lookup the store does not answer fails
// within the deadline with ErrUnavailable, even from a store that ignores
// its context, and that every resolution waiting on it fails the same way.
func TestLookupDeadline(t *testing.T) {
	e := newEnv(t)
	c := mustCreate(t, e.service(keys.Options{}), keys.CreateRequest{})
	h := &hangingStore{Store: e.open(), release: make(chan struct{})}
	svc := e.serviceOn(h, keys.Options{LookupTimeout: 50 * time.Millisecond})
	defer close(h.release)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = resolveErr(svc, c.Key.ID) })
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "within 50ms") {
			t.Errorf("ResolveKey from a store that hangs = %v, want ErrUnavailable after the deadline", err)
		}
	}
}
