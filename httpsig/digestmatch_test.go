package httpsig

import (
	"errors"
	"strings"
	"testing"
)

func TestMatchContentDigest(t *testing.T) {
	content := []byte(`{"hello": "world"}`)
	value := func(alg DigestAlgorithm) string {
		d, _ := NewDigester(alg)
		d.Write(content)
		return d.Value()
	}
	s256, s512 := value(DigestSHA256), value(DigestSHA512)
	other, _ := NewDigester(DigestSHA256)
	other.Write([]byte("other"))
	both := s256 + ", " + s512
	for _, c := range []struct {
		name, field, computed string
		want                  string // "", a reason, or "computed"
	}{
		{"sha-256", s256, s256, ""},
		{"sha-512", s512, s512, ""},
		{"computed has more", s256, both, ""},
		{"both", both, s512 + ", " + s256, ""},
		{"unknown algorithm ignored", "md5=:AAAA:, " + s256, s256, ""},
		{"mismatch", s256, other.Value(), "digest-mismatch"},
		{"one of two mismatches", both, other.Value() + ", " + s512, "digest-mismatch"},
		{"field not a dictionary", "sha-256=(", s256, "digest-mismatch"},
		{"field without a known algorithm", "md5=:AAAA:", s256, "digest-mismatch"},
		{"computed lacks an algorithm", both, s256, "computed"},
		{"computed malformed", s256, "sha-256", "computed"},
		{"computed not bytes", s256, "sha-256=1", "computed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := MatchContentDigest(c.field, c.computed)
			var ve *VerifyError
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("%v", err)
			case c.want == "computed" && (err == nil || errors.As(err, &ve) || !strings.HasPrefix(err.Error(), "httpsig: the computed digest")):
				t.Fatalf("%v, want an error about the computed digest", err)
			case c.want != "" && c.want != "computed" && (!errors.As(err, &ve) || string(ve.Reason) != c.want):
				t.Fatalf("%v, want %s", err, c.want)
			}
			// The same verdict as CheckContentDigest with the content, where
			// the computed value is right.
			if c.computed == s256 || c.computed == s512 || c.computed == both {
				if (CheckContentDigest(c.field, content) == nil) != (err == nil) && c.want != "computed" {
					t.Errorf("CheckContentDigest disagrees")
				}
			}
		})
	}
}
