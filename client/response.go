package client

import (
	"compress/gzip"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// verifiedBody marks the body of a response whose signature verified.
type verifiedBody struct {
	io.ReadCloser
	res httpsig.Result
}

// verifiedConn marks the body of a verified 101, which is the connection
// and must stay writable.
type verifiedConn struct {
	io.ReadWriteCloser
	res httpsig.Result
}

func markVerified(body io.ReadCloser, res httpsig.Result) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &verifiedConn{rwc, res}
	}
	return &verifiedBody{body, res}
}

// withReader returns a body that reads from r and closes body, marked
// verified if body was.
func withReader(body io.ReadCloser, r io.Reader) io.ReadCloser {
	rc := struct {
		io.Reader
		io.Closer
	}{r, body}
	if vb, ok := body.(*verifiedBody); ok {
		return &verifiedBody{rc, vb.res}
	}
	return rc
}

// VerifiedResponse returns the gateway signature of resp, a response a
// [Transport] with GatewayKeys returned, and whether it verified. Its
// content is checked as it is read: only a read to io.EOF vouches for it.
func VerifiedResponse(resp *http.Response) (httpsig.Result, bool) {
	switch b := resp.Body.(type) {
	case *verifiedBody:
		return b.res, true
	case *verifiedConn:
		return b.res, true
	}
	return httpsig.Result{}, false
}

// gunzipBody decompresses gzip content read through the reader that
// checks its digest, and reads that reader to its end, where the check is.
type gunzipBody struct {
	checked io.ReadCloser
	zr      *gzip.Reader
	err     error
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		if g.zr, g.err = gzip.NewReader(g.checked); g.err != nil {
			return 0, g.err
		}
	}
	n, err := g.zr.Read(p)
	if err == io.EOF {
		// The gzip stream ended; the content must end with it, and its
		// digest be checked.
		var one [1]byte
		if m, cerr := g.checked.Read(one[:]); m > 0 {
			err = errors.New("client: data after the end of the gzip content")
		} else if cerr != io.EOF {
			err = cerr
		}
	}
	g.err = err
	return n, err
}

func (g *gunzipBody) Close() error { return g.checked.Close() }

// maxKeySetBytes bounds a JWK set read from a file or the network.
const maxKeySetBytes = 64 << 10

// LoadGatewayKeys reads the keys a gateway signs its responses with from
// a file: a JWK set (what the gateway publishes at
// /.well-known/signet-keys), whose keys are used by their kid; or one
// public key (PEM or JWK), used whatever keyid a response names.
func LoadGatewayKeys(path string) (httpsig.KeyResolver, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeySetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys %s: %w", path, err)
	}
	if len(data) > maxKeySetBytes {
		return nil, fmt.Errorf("client: gateway keys %s: larger than a key set (%d bytes at most)", path, maxKeySetBytes)
	}
	if set, err := httpsig.ParseJWKS(data); err == nil {
		return keySet(set), nil
	}
	raw, _, err := httpsig.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys %s: neither a JWK set nor a public key: %w", path, err)
	}
	switch raw.(type) {
	case []byte, crypto.Signer:
		return nil, fmt.Errorf("client: gateway keys %s: a secret or private key; give the public key the gateway publishes", path)
	}
	key, err := httpsig.LoadVerifyingKey("", data)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys %s: %w", path, err)
	}
	return httpsig.KeyResolverFunc(func(context.Context, string) (httpsig.VerifyingKey, error) { return key, nil }), nil
}

func keySet(set map[string]httpsig.JWKSKey) httpsig.KeyMap {
	m := httpsig.KeyMap{}
	for kid, k := range set {
		m[kid] = k.VerifyingKey
	}
	return m
}

// JWKSRefetchInterval is how often, at most, a [JWKS] fetches its set
// again to look for a keyid it does not know.
const JWKSRefetchInterval = time.Minute

// JWKS is an [httpsig.KeyResolver] over the JWK set a gateway publishes
// at URL (https://gateway/.well-known/signet-keys). The set is fetched on
// first use and kept; a keyid not in it makes it fetch the set again, at
// most once per JWKSRefetchInterval, so that a rotated key is learnt.
//
// The set is only as trustworthy as the way it is fetched: URL must be
// https, or http to a loopback address, unless Pins names the keys to
// accept. A JWKS is safe for concurrent use; its fields must not change
// once it is in use.
type JWKS struct {
	URL string
	// Client fetches the set; nil means a client with a 10 s timeout.
	Client *http.Client
	// Pins, if set, lists the RFC 7638 thumbprints of the only keys to
	// accept (`signet thumbprint FILE` prints one); the others in the
	// set are ignored.
	Pins []string

	mu      sync.Mutex
	keys    map[string]httpsig.VerifyingKey
	fetched time.Time
	now     func() time.Time // tests
}

var _ httpsig.KeyResolver = (*JWKS)(nil)

// ResolveKey returns the key for keyID, fetching the set if needed; an
// unknown keyid is [httpsig.ErrUnknownKey], and a set that cannot be
// fetched another error.
func (j *JWKS) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now
	if j.now != nil {
		now = j.now
	}
	if k, ok := j.keys[keyID]; ok {
		return k, nil
	}
	if j.keys != nil && now().Sub(j.fetched) < JWKSRefetchInterval {
		return nil, httpsig.ErrUnknownKey
	}
	keys, err := j.fetch(ctx)
	if err != nil {
		return nil, err
	}
	j.keys, j.fetched = keys, now()
	if k, ok := keys[keyID]; ok {
		return k, nil
	}
	return nil, httpsig.ErrUnknownKey
}

func (j *JWKS) fetch(ctx context.Context) (map[string]httpsig.VerifyingKey, error) {
	u, err := url.Parse(j.URL)
	if err != nil {
		return nil, fmt.Errorf("client: JWKS URL: %w", err)
	}
	if u.Scheme != "https" && len(j.Pins) == 0 && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("client: the JWK set at %s would come over plain http: use https, or pin its keys", u.Redacted())
	}
	hc := j.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("client: JWKS: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: fetching the gateway's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("client: fetching the gateway's keys from %s: %s", u.Redacted(), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client: fetching the gateway's keys: %w", err)
	}
	if len(data) > maxKeySetBytes {
		return nil, fmt.Errorf("client: the gateway's key set is larger than %d bytes", maxKeySetBytes)
	}
	set, err := httpsig.ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("client: the gateway's keys from %s: %w", u.Redacted(), err)
	}
	keys := map[string]httpsig.VerifyingKey{}
	for kid, k := range set {
		if len(j.Pins) > 0 && !contains(j.Pins, k.Thumbprint) {
			continue
		}
		keys[kid] = k.VerifyingKey
	}
	return keys, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
