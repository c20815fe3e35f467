package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"net/http"
	"strings"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// DigestAlgorithm names a hash algorithm of the Hash Algorithms for HTTP
// Digest Fields registry (RFC 9530 §7.2).
type DigestAlgorithm string

// The digest algorithms this package computes and checks. Others found in
// a received field are ignored, as RFC 9530 §2 allows.
const (
	DigestSHA256 DigestAlgorithm = "sha-256"
	DigestSHA512 DigestAlgorithm = "sha-512"
)

func (a DigestAlgorithm) newHash() (hash.Hash, error) {
	switch a {
	case DigestSHA256, "":
		return sha256.New(), nil
	case DigestSHA512:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("httpsig: unsupported digest algorithm %q (use sha-256 or sha-512)", a)
}

func (a DigestAlgorithm) orDefault() DigestAlgorithm {
	if a == "" {
		return DigestSHA256
	}
	return a
}

// ContentDigest returns the Content-Digest field value for content, such as
// "sha-256=:…:". An empty alg means sha-256.
func ContentDigest(alg DigestAlgorithm, content []byte) (string, error) {
	var buf [16 + 88 + 2]byte // "sha-512=" + base64 of 64 bytes + two colons
	switch alg.orDefault() {
	case DigestSHA256:
		sum := sha256.Sum256(content)
		return string(appendDigestMember(buf[:0], DigestSHA256, sum[:])), nil
	case DigestSHA512:
		sum := sha512.Sum512(content)
		return string(appendDigestMember(buf[:0], DigestSHA512, sum[:])), nil
	}
	_, err := alg.newHash()
	return "", err
}

// A Digester computes a Content-Digest field value over the content written
// to it, so that a large body can be hashed as it streams by.
type Digester struct {
	alg DigestAlgorithm
	h   hash.Hash
}

// NewDigester returns a Digester for alg; an empty alg means sha-256.
func NewDigester(alg DigestAlgorithm) (*Digester, error) {
	h, err := alg.newHash()
	if err != nil {
		return nil, err
	}
	return &Digester{alg: alg.orDefault(), h: h}, nil
}

// Write adds content; it never fails.
func (d *Digester) Write(p []byte) (int, error) { return d.h.Write(p) }

// Value returns the Content-Digest field value of the content so far.
func (d *Digester) Value() string {
	var sum [sha512.Size]byte
	return string(appendDigestMember(nil, d.alg, d.h.Sum(sum[:0])))
}

// appendContentDigest appends the Content-Digest field value for content
// with alg, sha-256 or sha-512.
func appendContentDigest(dst []byte, alg DigestAlgorithm, content []byte) []byte {
	if alg == DigestSHA512 {
		sum := sha512.Sum512(content)
		return appendDigestMember(dst, DigestSHA512, sum[:])
	}
	sum := sha256.Sum256(content)
	return appendDigestMember(dst, DigestSHA256, sum[:])
}

func appendDigestMember(dst []byte, alg DigestAlgorithm, sum []byte) []byte {
	dst = append(dst, alg...)
	dst = append(dst, '=')
	return sf.AppendBareByteSeq(dst, sum)
}

// contentDigestField returns the Content-Digest field value of h, with
// several field lines combined, and whether there is one.
func contentDigestField(h http.Header) (string, bool) {
	return joinLines(h["Content-Digest"])
}

// joinLines returns the value of a field whose lines are v, several lines
// combined, and whether there is one.
func joinLines(v []string) (string, bool) {
	switch len(v) {
	case 0:
		return "", false
	case 1:
		return v[0], true
	}
	return strings.Join(v, ", "), true
}

// CheckContentDigest checks a Content-Digest field value against content.
// Every member whose algorithm is sha-256 or sha-512 must match; others are
// ignored; a field with neither is refused. Failures are [*VerifyError]s
// with reason digest-mismatch.
func CheckContentDigest(field string, content []byte) error {
	var sp sf.Parser
	return checkDigest(&sp, field, content)
}

func checkDigest(sp *sf.Parser, field string, content []byte) error {
	var buf [sha256.Size]byte
	if want, ok := sf.DecodeSingleByteSeq(buf[:0], field, string(DigestSHA256)); ok {
		// The usual field, one sha-256 member written canonically: what
		// parseDigestField would read, without its general work, decoded
		// as it is read.
		got := sha256.Sum256(content)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return refuse(ReasonDigestMismatch, "", "the content does not match Content-Digest "+string(DigestSHA256))
		}
		return nil
	}
	members, err := parseDigestField(sp, field)
	if err != nil {
		return err
	}
	var want, got [sha512.Size]byte
	for _, m := range members {
		alg := DigestAlgorithm(m.Key)
		if alg != DigestSHA256 && alg != DigestSHA512 {
			continue
		}
		w, err := sf.DecodeByteSeq(want[:0], m.Item.Value.Str)
		if err != nil {
			return refuse(ReasonDigestMismatch, "", "Content-Digest "+string(alg)+" is not base64")
		}
		var g []byte
		if alg == DigestSHA256 {
			s := sha256.Sum256(content)
			g = append(got[:0], s[:]...)
		} else {
			s := sha512.Sum512(content)
			g = append(got[:0], s[:]...)
		}
		if subtle.ConstantTimeCompare(w, g) != 1 {
			return refuse(ReasonDigestMismatch, "", "the content does not match Content-Digest "+string(alg))
		}
	}
	return nil
}

// parseDigestField parses a Content-Digest value and checks that it has a
// member this package can check.
func parseDigestField(sp *sf.Parser, field string) ([]sf.Member, error) {
	sp.Reset()
	members, err := sp.ParseDictionary(field)
	if err != nil {
		return nil, &VerifyError{Reason: ReasonDigestMismatch, Detail: "Content-Digest is not a valid Dictionary: " + err.Error(), Err: err}
	}
	known := false
	for _, m := range members {
		alg := DigestAlgorithm(m.Key)
		if alg != DigestSHA256 && alg != DigestSHA512 {
			continue
		}
		if m.Inner || m.Item.Value.Kind != sf.ByteSeq {
			return nil, refuse(ReasonDigestMismatch, "", "Content-Digest "+m.Key+" is not a Byte Sequence")
		}
		known = true
	}
	if !known {
		return nil, refuse(ReasonDigestMismatch, "", "Content-Digest has no sha-256 or sha-512 member")
	}
	return members, nil
}

// A DigestVerifier checks content against a Content-Digest field value as
// the content streams by: write the content to it, then call Check.
type DigestVerifier struct {
	members []sf.Member
	hashes  []hash.Hash // parallel to members; nil for ignored algorithms
}

// NewDigestVerifier parses field; see [CheckContentDigest] for the rules.
func NewDigestVerifier(field string) (*DigestVerifier, error) {
	var sp sf.Parser
	members, err := parseDigestField(&sp, field)
	if err != nil {
		return nil, err
	}
	v := &DigestVerifier{members: members, hashes: make([]hash.Hash, len(members))}
	for i, m := range members {
		if h, err := DigestAlgorithm(m.Key).newHash(); err == nil {
			v.hashes[i] = h
		}
	}
	return v, nil
}

// Write hashes content; it never fails.
func (v *DigestVerifier) Write(p []byte) (int, error) {
	for _, h := range v.hashes {
		if h != nil {
			h.Write(p)
		}
	}
	return len(p), nil
}

// Check reports whether the content written so far matches the field.
func (v *DigestVerifier) Check() error {
	var want, got [sha512.Size]byte
	for i, h := range v.hashes {
		if h == nil {
			continue
		}
		m := v.members[i]
		w, err := sf.DecodeByteSeq(want[:0], m.Item.Value.Str)
		if err != nil {
			return refuse(ReasonDigestMismatch, "", "Content-Digest "+m.Key+" is not base64")
		}
		if subtle.ConstantTimeCompare(w, h.Sum(got[:0])) != 1 {
			return refuse(ReasonDigestMismatch, "", "the content does not match Content-Digest "+m.Key)
		}
	}
	return nil
}
