package httpsig

import (
	"errors"
	"net/http"
	"testing"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// TestErrorsKeepTheirCause: a refusal caused by a malformed structured
// field wraps the parser's error, so that errors.Is and errors.As reach it
// through the VerifyError and the component error (issue 10.4).
func TestErrorsKeepTheirCause(t *testing.T) {
	var syntax *sf.SyntaxError

	err := CheckContentDigest("sha-256=:not base64 (:", nil)
	if !isReason(err, ReasonDigestMismatch) || !errors.As(err, &syntax) {
		t.Errorf("CheckContentDigest of a malformed field = %v; want digest-mismatch wrapping an sf.SyntaxError", err)
	}

	m := Message{Request: &http.Request{Method: "GET", Host: "a.example", Header: http.Header{"X-Tenant": {"id=7, ((("}}}}
	m.Request.URL, _ = m.Request.URL.Parse("https://a.example/")
	cs, err := ParseComponents(`"x-tenant";sf`)
	if err != nil {
		t.Fatal(err)
	}
	m.Structured = map[string]FieldType{"x-tenant": FieldDictionary}
	_, err = SignatureBase(&m, &Params{Components: cs})
	if err == nil || !errors.As(err, &syntax) {
		t.Errorf("SignatureBase over a malformed structured field = %v; want it to wrap an sf.SyntaxError", err)
	}
}
