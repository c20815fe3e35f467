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
