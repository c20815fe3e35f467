package httpsig

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Policy.Extra adds to the default profile: a signature without the
// extra component is refused, one with it accepted, and Accept-Signature
// asks for it.
func TestPolicyExtra(t *testing.T) {
	hk, _ := NewHMACKey([]byte(strings.Repeat("k", 32)))
	idem, _ := ParseComponent("idempotency-key")
	policy := Policy{Extra: []Component{idem}}
	v := &Verifier{Keys: KeyMap{"k1": hk}, Nonces: &memNonces{seen: map[string]time.Time{}}, Now: fixedNow, Policy: policy}

	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "k1", Now: fixedNow})
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonMissingComponent) {
		t.Fatalf("without idempotency-key: %v", err)
	}

	comps := append(DefaultComponents(r, true), idem)
	r, body = signedRequestWith(t, &Signer{Key: hk, KeyID: "k1", Now: fixedNow, Components: comps}, "Idempotency-Key", "abc")
	if _, err := v.VerifyRequest(r, body); err != nil {
		t.Fatalf("with idempotency-key: %v", err)
	}
	if got := policy.AcceptSignatureFor(r, true); !strings.Contains(got, `"content-digest" "idempotency-key")`) {
		t.Fatalf("Accept-Signature %s", got)
	}
}

func signedRequestWith(t *testing.T, s *Signer, name, value string) (*http.Request, []byte) {
	t.Helper()
	s2 := *s
	r, body := signedRequest(t, &Signer{Key: s.Key, KeyID: s.KeyID, Now: s.Now, Components: []Component{{Name: Method}}})
	r.Header.Set(name, value)
	r.Header.Del("Signature")
	r.Header.Del("Signature-Input")
	if err := s2.SignRequest(r, body); err != nil {
		t.Fatal(err)
	}
	return r, body
}

// TestAppendNewParams: the written-out serialisation of a new signature's
// parameters is what appendKnown gives letter by letter in spDefault's
// order, for every combination of parameters set.
func TestAppendNewParams(t *testing.T) {
	nonce := []byte("abcdefghijklmnopqrstuv")
	for mask := 0; mask < 1<<7; mask++ {
		var p Params
		if mask&1 != 0 {
			p.Created = time.Unix(1700000000, 0)
		}
		if mask&2 != 0 {
			p.Expires = time.Unix(1700000300, 0)
		}
		if mask&4 != 0 {
			p.KeyID = `key "one"\`
		}
		if mask&8 != 0 {
			p.Alg = AlgHMACSHA256
		}
		if mask&16 != 0 {
			p.Nonce = "n-1"
		}
		if mask&32 != 0 {
			p.nonceText = nonce
		}
		if mask&64 != 0 {
			p.Tag = "app"
		}
		var want []byte
		for i := 0; i < len(spDefault); i++ {
			var err error
			if want, err = p.appendKnown(want, spDefault[i], false); err != nil {
				t.Fatal(err)
			}
		}
		got, err := p.appendNew(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("%07b: appendNew gives %q, %v; appendKnown %q", mask, got, err, want)
		}
	}
	bad := Params{KeyID: "\x01"}
	if _, err := bad.appendNew(nil); err == nil {
		t.Error("appendNew serialises a keyid with a control character")
	}
}
