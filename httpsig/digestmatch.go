package httpsig

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// MatchContentDigest checks the Content-Digest field value of a message
// against computed, a Content-Digest value that whoever holds the content
// computed over it (as [Digester.Value] returns), for a verifier that
// never sees the content. As with [CheckContentDigest], every sha-256 and
// sha-512 member of field must match, others are ignored, and a field with
// neither is refused; a mismatch, or a field that is not a valid
// Content-Digest, is a [*VerifyError] with reason digest-mismatch. Any
// other error is about computed: it is not a Content-Digest value, or
// lacks an algorithm that field has.
func MatchContentDigest(field, computed string) error {
	// Two parsers: the members of one parse live in its parser.
	var sp, sp2 sf.Parser
	want, err := parseDigestField(&sp, field)
	if err != nil {
		return err
	}
	got, err := sp2.ParseDictionary(computed)
	if err != nil {
		return fmt.Errorf("httpsig: the computed digest is not a Content-Digest value: %w", err)
	}
	var w, g [64]byte
	for _, m := range want {
		alg := DigestAlgorithm(m.Key)
		if alg != DigestSHA256 && alg != DigestSHA512 {
			continue
		}
		wb, err := sf.DecodeByteSeq(w[:0], m.Item.Value.Str)
		if err != nil {
			return refuse(ReasonDigestMismatch, "", "Content-Digest "+string(alg)+" is not base64")
		}
		i := len(got) - 1
		for i >= 0 && got[i].Key != m.Key {
			i--
		}
		if i < 0 || got[i].Inner || got[i].Item.Value.Kind != sf.ByteSeq {
			return errors.New("httpsig: the computed digest has no " + string(alg) + ", which Content-Digest has")
		}
		gb, err := sf.DecodeByteSeq(g[:0], got[i].Item.Value.Str)
		if err != nil {
			return errors.New("httpsig: the computed digest's " + string(alg) + " is not base64")
		}
		if subtle.ConstantTimeCompare(wb, gb) != 1 {
			return refuse(ReasonDigestMismatch, "", "the content does not match Content-Digest "+string(alg))
		}
	}
	return nil
}
