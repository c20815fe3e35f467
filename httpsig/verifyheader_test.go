package httpsig

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerifyRequestHeader(t *testing.T) {
	hk, _ := NewHMACKey([]byte(strings.Repeat("k", 32)))
	nonces := &memNonces{seen: map[string]time.Time{}}
	v := &Verifier{Keys: KeyMap{"k1": hk}, Nonces: nonces, Now: fixedNow}
	s := &Signer{Key: hk, KeyID: "k1", Now: fixedNow}

	r, body := signedRequest(t, s)
	res, err := v.VerifyRequestHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if res.ContentDigest != r.Header.Get("Content-Digest") {
		t.Fatalf("ContentDigest %q", res.ContentDigest)
	}
	if err := CheckContentDigest(res.ContentDigest, body); err != nil {
		t.Fatal(err)
	}
	if !isReason(CheckContentDigest(res.ContentDigest, []byte("other")), ReasonDigestMismatch) {
		t.Fatal("another body matches the digest")
	}
	var names []string
	for _, c := range res.Covered {
		names = append(names, c.String())
	}
	want := []string{`"@method"`, `"@authority"`, `"@path"`, `"@query"`, `"content-type"`, `"content-digest"`}
	if !slices.Equal(names, want) {
		t.Fatalf("Covered %v, want %v", names, want)
	}
	// The nonce is spent before the content is seen.
	if _, err := v.VerifyRequestHeader(r); !isReason(err, ReasonReplayed) {
		t.Fatalf("second time: %v", err)
	}

	// A body of unknown length may hold content: content-digest is
	// required of it as of one with a length.
	get := httptest.NewRequest(http.MethodPost, "https://example.com/x", nil)
	get.RequestURI = "/x"
	if err := s.SignRequest(get, nil); err != nil {
		t.Fatal(err)
	}
	get.ContentLength = -1
	if _, err := v.VerifyRequestHeader(get); !isReason(err, ReasonMissingComponent) {
		t.Fatalf("unknown length without content-digest: %v", err)
	}

	// Without content, nothing is left to check.
	get.ContentLength = 0
	res, err = v.VerifyRequestHeader(get)
	if err != nil || res.ContentDigest != "" {
		t.Fatalf("no content: %+v %v", res, err)
	}
}
