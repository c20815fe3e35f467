package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The reference request of DESIGN.md: POST with a 1 KiB JSON body.
const (
	refURL    = "https://api.example.com/v1/orders?customer=42&expand=items"
	benchTime = 1700000000
)

func refBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"customer":42,"items":[`)
	for i := 0; b.Len() < 1024-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"sku":"SKU-00000","qty":1}`)
	}
	b.WriteString(`],"note":"`)
	b.WriteString(strings.Repeat("x", 1024-2-b.Len()))
	b.WriteString(`"}`)
	return b.Bytes()
}

// refRequest returns the reference request as a server receives it.
func refRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, refURL, bytes.NewReader(body))
	r.RequestURI = r.URL.RequestURI() // origin-form, as sent to a server
	r.Header.Set("Content-Type", "application/json")
	return r
}

type benchKeys struct {
	name   string
	signer SigningKey
	verify VerifyingKey
	raw    func(base, sig, body []byte) bool // the crypto alone
}

func newBenchKeys(b *testing.B) []benchKeys {
	secret := bytes.Repeat([]byte{7}, 32)
	hk, err := NewHMACKey(secret)
	if err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	es, _ := NewSigningKey(AlgEd25519, priv)
	ev, _ := NewVerifyingKey(AlgEd25519, priv.Public())
	pub := priv.Public().(ed25519.PublicKey)
	mac := hmac.New(sha256.New, secret)
	return []benchKeys{
		{"hmac-sha256", hk, hk, func(base, sig, body []byte) bool {
			var buf [sha256.Size]byte
			sum := sha256.Sum256(body)
			mac.Reset()
			mac.Write(base)
			return hmac.Equal(mac.Sum(buf[:0]), sig) && sum != [32]byte{}
		}},
		{"ed25519", es, ev, func(base, sig, body []byte) bool {
			sum := sha256.Sum256(body)
			return ed25519.Verify(pub, base, sig) && sum != [32]byte{}
		}},
	}
}

func benchSigner(k SigningKey) *Signer {
	return &Signer{Key: k, KeyID: "sk_bench_1", Now: func() time.Time { return time.Unix(benchTime, 0) }}
}

// BenchmarkSign signs the reference request: Content-Digest of the body,
// a fresh nonce, the signature base, the signature, the two fields.
func BenchmarkSign(b *testing.B) {
	body := refBody()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			s := benchSigner(k.signer)
			r := refRequest(body)
			b.ReportAllocs()
			for b.Loop() {
				delete(r.Header, "Signature-Input")
				delete(r.Header, "Signature")
				if err := s.SignRequest(r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify verifies the signed reference request: both fields
// parsed, the base rebuilt, the Content-Digest checked against the body,
// the signature checked.
func BenchmarkVerify(b *testing.B) {
	body := refBody()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			r := refRequest(body)
			if err := benchSigner(k.signer).SignRequest(r, body); err != nil {
				b.Fatal(err)
			}
			v := &Verifier{Keys: KeyMap{"sk_bench_1": k.verify}, Now: func() time.Time { return time.Unix(benchTime, 0) }}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawCrypto measures what verification cannot avoid: SHA-256 of
// the body and the MAC or signature check over a base of the same size, as
// a floor for BenchmarkVerify.
func BenchmarkRawCrypto(b *testing.B) {
	body := refBody()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			base, sig := refBase(b, k.signer, body)
			b.ReportAllocs()
			for b.Loop() {
				k.raw(base, sig, body)
			}
		})
	}
}

// BenchmarkRawSign measures what signing cannot avoid: SHA-256 of the body
// and the MAC or signature over a base of the same size, as a floor for
// BenchmarkSign.
func BenchmarkRawSign(b *testing.B) {
	body := refBody()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			base, _ := refBase(b, k.signer, body)
			b.ReportAllocs()
			for b.Loop() {
				sha256.Sum256(body)
				if _, err := k.signer.Sign(base); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// refBase signs the reference request and returns its signature base and
// signature, for the raw-crypto floors.
func refBase(b *testing.B, k SigningKey, body []byte) (base, sig []byte) {
	r := refRequest(body)
	if err := benchSigner(k).SignRequest(r, body); err != nil {
		b.Fatal(err)
	}
	sigs, _ := ParseSignatures(r.Header)
	base, err := SignatureBase(&Message{Request: r}, &sigs[0].Params)
	if err != nil {
		b.Fatal(err)
	}
	return base, sigs[0].Value
}
