package client

import (
	"fmt"
	"net/url"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Presign returns rawURL presigned (docs/presigned-urls.md) with the key
// in keyFile (see [LoadKey]) under keyID, for o.Method (default GET),
// valid for o.Expires, once if o.SingleUse is set.
func Presign(keyID, keyFile, rawURL string, o httpsig.PresignOptions) (string, error) {
	if keyID == "" {
		return "", fmt.Errorf("client: a keyid is required")
	}
	key, err := LoadKey(keyFile, "")
	if err != nil {
		return "", err
	}
	s := &httpsig.Signer{Key: key, KeyID: keyID}
	return s.Presign(rawURL, o)
}

// Presign returns rawURL presigned with the Transport's Signer, created
// at its clock corrected by the offset it has learnt for the URL's origin,
// so that a server whose clock differs from the local one accepts it.
func (t *Transport) Presign(rawURL string, o httpsig.PresignOptions) (string, error) {
	if t.Signer == nil || t.Signer.Key == nil {
		return "", fmt.Errorf("client: Transport.Signer, with its Key, is required")
	}
	t.once.Do(t.setup)
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	offset, _ := t.offsets.Get(origin(u))
	created := t.now().Add(offset)
	s := *t.Signer
	s.Now = func() time.Time { return created }
	return s.Presign(rawURL, o)
}
