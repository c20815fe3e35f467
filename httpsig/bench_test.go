package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
	"github.com/signet-dev/signet/internal/reqfixture"
)

type benchKeys struct {
	name   string
	signer SigningKey
	verify VerifyingKey
	raw    func(base, sig, body []byte) bool // the crypto alone
}

func newBenchKeys(b testing.TB) []benchKeys {
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
	return &Signer{Key: k, KeyID: reqfixture.KeyID, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
}

// BenchmarkSign signs the reference request: Content-Digest of the body,
// a fresh nonce, the signature base, the signature, the two fields.
func BenchmarkSign(b *testing.B) {
	body := reqfixture.Body()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			s := benchSigner(k.signer)
			r := reqfixture.Received(body)
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
	body := reqfixture.Body()
	for _, k := range newBenchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			r := reqfixture.Received(body)
			if err := benchSigner(k.signer).SignRequest(r, body); err != nil {
				b.Fatal(err)
			}
			v := &Verifier{Keys: KeyMap{reqfixture.KeyID: k.verify}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.VerifyRequest(r, body); err != nil {
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
	body := reqfixture.Body()
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
	body := reqfixture.Body()
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
	r := reqfixture.Received(body)
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

// hostileFields returns Signature-Input and Signature values crafted to
// make a verifier work hard before it refuses them.
func hostileFields(kind string) (input, sig string) {
	var in, sg strings.Builder
	sep := func(b *strings.Builder) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
	}
	switch kind {
	case "labels": // 1,024 signatures with nothing in them, 22 bytes each
		for i := range 1024 {
			sep(&in)
			sep(&sg)
			l := fmt.Sprintf("s%015d", i)
			in.WriteString(l + "=()")
			sg.WriteString(l + "=::")
		}
	case "components": // 8 signatures, each covering 256 distinct fields
		for i := range MaxSignatures {
			sep(&in)
			sep(&sg)
			l := fmt.Sprintf("s%d", i)
			in.WriteString(l + "=(")
			for j := range 256 {
				if j > 0 {
					in.WriteByte(' ')
				}
				fmt.Fprintf(&in, `"x%d-%03d"`, i, j)
			}
			in.WriteString(`);created=1;keyid="k"`)
			sg.WriteString(l + "=::")
		}
	case "limits": // as much as the limits let through: 8 signatures, 64 components each
		for i := range MaxSignatures {
			sep(&in)
			sep(&sg)
			l := fmt.Sprintf("s%d", i)
			in.WriteString(l + "=(")
			for j := range maxComponents {
				if j > 0 {
					in.WriteByte(' ')
				}
				fmt.Fprintf(&in, `"x%d-%03d";req;tr;sf;key="k"`, i, j)
			}
			in.WriteString(`);created=1700000000;keyid="` + reqfixture.KeyID + `";nonce="n";alg="hmac-sha256"`)
			sg.WriteString(l + "=:" + strings.Repeat("A", 44) + ":")
		}
	case "structured": // one large Dictionary field, read for each of many components
		in.WriteString(`sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest"`)
		for j := range maxComponents - 6 {
			fmt.Fprintf(&in, ` "x-dict";key="k%d"`, j)
		}
		in.WriteString(`);created=1700000000;keyid="` + reqfixture.KeyID + `";nonce="n";alg="hmac-sha256"`)
		sg.WriteString("sig1=:" + strings.Repeat("A", 43) + "=:")
	case "params": // a signature whose components carry 256 parameters each
		in.WriteString("sig1=(")
		for j := range 64 {
			if j > 0 {
				in.WriteByte(' ')
			}
			in.WriteString(`"a"`)
			for k := range 256 {
				fmt.Fprintf(&in, ";p%d", k)
			}
		}
		in.WriteString(")")
		sg.WriteString("sig1=::")
	}
	return in.String(), sg.String()
}

// BenchmarkRefuse measures refusals: an ordinary one (the reference
// request with a wrong signature, which costs a whole verification) and
// fields crafted to be costly to parse. The crafted ones must cost about
// what the ordinary one does.
func BenchmarkRefuse(b *testing.B) {
	body := reqfixture.Body()
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	other, _ := NewHMACKey(bytes.Repeat([]byte{8}, 32))
	v := &Verifier{Keys: KeyMap{reqfixture.KeyID: hk}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
	// Each is refused where it is meant to be: the crafted fields as they
	// are read, the structured one only once the whole base is built.
	for _, tt := range []struct {
		kind string
		want Reason
	}{
		{"bad-signature", ReasonBadSignature}, {"labels", ReasonMalformedSignature},
		{"components", ReasonMalformedSignature}, {"params", ReasonMalformedSignature},
		{"limits", ReasonMissingComponent}, {"structured", ReasonBadSignature},
	} {
		kind, want := tt.kind, tt.want
		b.Run(kind, func(b *testing.B) {
			r := reqfixture.Received(body)
			if err := benchSigner(other).SignRequest(r, body); err != nil {
				b.Fatal(err)
			}
			if kind != "bad-signature" {
				in, sig := hostileFields(kind)
				r.Header["Signature-Input"], r.Header["Signature"] = []string{in}, []string{sig}
				size := len(in) + len(sig)
				if kind == "structured" {
					var d strings.Builder
					for j := range sf.MaxMembers {
						if j > 0 {
							d.WriteString(", ")
						}
						fmt.Fprintf(&d, "k%d=%d", j, j)
					}
					r.Header.Set("X-Dict", d.String())
					size += d.Len()
				}
				b.SetBytes(int64(size))
			}
			if _, err := v.VerifyRequest(r, body); !isReason(err, want) {
				b.Fatalf("got %v, want %s", err, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.VerifyRequest(r, body); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// TestVerifyAllocs: verifying the reference request allocates nothing once
// the verifier's pools are warm.
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	body := reqfixture.Body()
	for _, k := range newBenchKeys(t) {
		r := reqfixture.Received(body)
		if err := benchSigner(k.signer).SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
		v := &Verifier{Keys: KeyMap{reqfixture.KeyID: k.verify}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := v.VerifyRequest(r, body); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: VerifyRequest allocates %v times per call, want 0", k.name, allocs)
		}
	}
}

// BenchmarkFloorRatio measures Sign and Verify of the reference request
// against their floors (BenchmarkRawSign, BenchmarkRawCrypto) in the same
// run, alternating chunks of each so that a noisy machine slows both
// alike. It reports ns per operation and per floor, and their ratio
// (x-floor); ns/op counts one chunk of both.
func BenchmarkFloorRatio(b *testing.B) {
	body := reqfixture.Body()
	for _, k := range newBenchKeys(b) {
		base, sig := refBase(b, k.signer, body)
		b.Run("verify/"+k.name, func(b *testing.B) {
			r := reqfixture.Received(body)
			if err := benchSigner(k.signer).SignRequest(r, body); err != nil {
				b.Fatal(err)
			}
			v := &Verifier{Keys: KeyMap{reqfixture.KeyID: k.verify}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
			benchRatio(b, func() {
				if _, err := v.VerifyRequest(r, body); err != nil {
					b.Fatal(err)
				}
			}, func() { k.raw(base, sig, body) })
		})
		b.Run("sign/"+k.name, func(b *testing.B) {
			s := benchSigner(k.signer)
			r := reqfixture.Received(body)
			benchRatio(b, func() {
				delete(r.Header, "Signature-Input")
				delete(r.Header, "Signature")
				if err := s.SignRequest(r, body); err != nil {
					b.Fatal(err)
				}
			}, func() {
				sha256.Sum256(body)
				if _, err := k.signer.Sign(base); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// benchRatio runs op and floor in alternating chunks and reports their
// costs and their ratio. On a shared machine another process can take the
// CPU during any chunk, so each figure is a median over chunks: ns/call
// and ns/floor of the chunks, x-floor of the ratios of neighbouring
// chunks, which the same interference tends to slow alike.
func benchRatio(b *testing.B, op, floor func()) { benchRatioChunk(b, 16, op, floor) }

func benchRatioChunk(b *testing.B, chunk int, op, floor func()) {
	var ops, floors, ratios []float64
	for b.Loop() {
		t0 := time.Now()
		for range chunk {
			floor()
		}
		t1 := time.Now()
		for range chunk {
			op()
		}
		o, f := float64(time.Since(t1).Nanoseconds())/float64(chunk), float64(t1.Sub(t0).Nanoseconds())/float64(chunk)
		ops, floors, ratios = append(ops, o), append(floors, f), append(ratios, o/f)
	}
	b.ReportMetric(median(ops), "ns/call")
	b.ReportMetric(median(floors), "ns/floor")
	b.ReportMetric(median(ratios), "x-floor")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// BenchmarkVerifyBodySize verifies the reference request with bodies from
// 0 to 16 MiB against SHA-256 of the same body in the same run: MB/s of
// each and their ratio (x-sha256), which tends to 1 as the body grows and
// hashing it is all that is left.
func BenchmarkVerifyBodySize(b *testing.B) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	for _, size := range []int{0, 1 << 10, 64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			body := bytes.Repeat([]byte("x"), size)
			r := reqfixture.Received(body)
			if err := benchSigner(hk).SignRequest(r, body); err != nil {
				b.Fatal(err)
			}
			v := &Verifier{Keys: KeyMap{reqfixture.KeyID: hk}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
			chunk := max(1, min(16, (256<<10)/max(size, 1)))
			var opNs, floorNs []float64
			var ratios []float64
			for b.Loop() {
				t0 := time.Now()
				for range chunk {
					sha256.Sum256(body)
				}
				t1 := time.Now()
				for range chunk {
					if _, err := v.VerifyRequest(r, body); err != nil {
						b.Fatal(err)
					}
				}
				o, f := float64(time.Since(t1).Nanoseconds())/float64(chunk), float64(t1.Sub(t0).Nanoseconds())/float64(chunk)
				opNs, floorNs, ratios = append(opNs, o), append(floorNs, f), append(ratios, o/f)
			}
			o, f := median(opNs), median(floorNs)
			b.ReportMetric(o, "ns/verify")
			if size > 0 {
				b.ReportMetric(float64(size)/o*1e3, "MB/s")
				b.ReportMetric(float64(size)/f*1e3, "sha256-MB/s")
				b.ReportMetric(median(ratios), "x-sha256")
			}
		})
	}
}

// TestSignAllocs: signing the reference request with an HMAC key makes two
// allocations, the slice of the three new field values and one string
// holding them, once the signer's pools are warm; the header map's own
// growth is not counted, since the fields are removed between calls.
func TestSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	body := reqfixture.Body()
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	s := benchSigner(hk)
	r := reqfixture.Received(body)
	allocs := testing.AllocsPerRun(1000, func() {
		delete(r.Header, "Signature-Input")
		delete(r.Header, "Signature")
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("SignRequest allocates %v times per call, want 2", allocs)
	}
}
