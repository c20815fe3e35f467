package httpsig

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedVectors adds the signature fields of every vector to a fuzz corpus.
func seedVectors(f *testing.F, add func(input, sig string)) {
	files, _ := fs.Glob(vectors, "rfc9421/*.json")
	for _, file := range files {
		data, _ := fs.ReadFile(vectors, file)
		var v struct {
			SignatureInput string `json:"signature_input"`
			Signature      string `json:"signature"`
		}
		if json.Unmarshal(data, &v) == nil && v.SignatureInput != "" {
			add(v.SignatureInput, v.Signature)
		}
	}
}

// FuzzParseSignatures: parsing never panics, and a parsed signature's
// parameters serialise to something that parses to the same value.
func FuzzParseSignatures(f *testing.F) {
	seedVectors(f, func(in, sig string) { f.Add(in, sig) })
	f.Add(`sig1=("@query-param";name="a" "x";key="k";req);created=1;nonce="n";foo=?0`, "sig1=:AA==:")
	f.Fuzz(func(t *testing.T, input, sig string) {
		h := http.Header{"Signature-Input": {input}, "Signature": {sig}}
		sigs, err := ParseSignatures(h)
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		for _, s := range sigs {
			text := s.Params.String()
			h2 := http.Header{"Signature-Input": {s.Label + "=" + text}, "Signature": {s.Label + "=::"}}
			again, err := ParseSignatures(h2)
			if err != nil {
				t.Fatalf("%q re-serialised as %q, which does not parse: %v", input, text, err)
			}
			if got := again[0].Params.String(); got != text {
				t.Fatalf("not stable: %q then %q", text, got)
			}
		}
	})
}

// FuzzVerify sends arbitrary signature fields and content through the
// verifier: it must refuse with a reason, never panic or pass.
func FuzzVerify(f *testing.F) {
	seedVectors(f, func(in, sig string) { f.Add(in, sig, "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:", "x") })
	// Several components reading one structured field, and fields at the
	// verifier's limits.
	f.Add(`sig1=("example-dict";key="a" "example-dict";key="b" "example-dict";sf "example-dict";key="a";tr);created=1700000000;keyid="key-1";nonce="n"`, "sig1=:AAAA:", "", "")
	for _, kind := range []string{"labels", "components", "params", "limits"} {
		in, sig := hostileFields(kind)
		f.Add(in, sig, "", "")
	}
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"test-key-rsa-pss": hk, "key-1": hk}, Now: fixedNow, Nonces: &memNonces{seen: map[string]time.Time{}}}
	f.Fuzz(func(t *testing.T, input, sig, digest, body string) {
		r := httptest.NewRequest(http.MethodPost, "https://example.com/foo?param=Value&Pet=dog", strings.NewReader(body))
		r.RequestURI = r.URL.RequestURI()
		r.Header.Set("Signature-Input", input)
		r.Header.Set("Signature", sig)
		r.Header.Set("Content-Digest", digest)
		r.Header.Set("Example-Dict", "a=1, b=2;x=1, c=(a b)")
		_, err := v.VerifyRequest(r, []byte(body))
		if err == nil {
			t.Fatalf("forged signature accepted: %q %q", input, sig)
		}
		if _, ok := ReasonOf(err); !ok {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

func FuzzContentDigest(f *testing.F) {
	f.Add("sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:", []byte("{\"hello\": \"world\"}\n"))
	f.Add("sha-512=:YQ==:, md5=:AA==:", []byte{})
	f.Fuzz(func(t *testing.T, field string, content []byte) {
		err := CheckContentDigest(field, content)
		if err != nil && !isReason(err, ReasonDigestMismatch) {
			t.Fatalf("error without digest-mismatch: %v", err)
		}
		dv, derr := NewDigestVerifier(field)
		if derr != nil {
			if err == nil {
				t.Fatalf("CheckContentDigest accepted %q, NewDigestVerifier refused it: %v", field, derr)
			}
			return
		}
		dv.Write(content)
		if cerr := dv.Check(); (cerr == nil) != (err == nil) {
			t.Fatalf("streaming and one-shot checks disagree on %q: %v vs %v", field, cerr, err)
		}
	})
}

func FuzzParseAcceptSignature(f *testing.F) {
	f.Add(`sig1=("@method" "@authority");keyid="k";tag="t"`)
	f.Add(`sig1=("@query-param";name="a" "x";key="k";req "x";sf);nonce="n";alg="ed25519";foo=1, proxy=("@status")`)
	f.Add(`sig1=("a";tr;bs "b";sf;tr)`)
	f.Fuzz(func(t *testing.T, field string) {
		reqs, err := ParseAcceptSignature(field)
		if err != nil {
			return
		}
		text, err := AcceptSignatureField(reqs...)
		if err != nil {
			t.Fatalf("%q parsed but does not serialise: %v", field, err)
		}
		again, err := ParseAcceptSignature(text)
		if err != nil {
			t.Fatalf("%q → %q does not parse back: %v", field, text, err)
		}
		if !slices.EqualFunc(again, reqs, sameAcceptSignature) {
			t.Fatalf("%q → %q parses back as\n%+v\nnot\n%+v", field, text, again, reqs)
		}
		if text2, err := AcceptSignatureField(again...); err != nil || text2 != text {
			t.Fatalf("%q serialises as %q, then as %q (%v)", field, text, text2, err)
		}
	})
}

func sameAcceptSignature(a, b AcceptSignature) bool {
	return a.Label == b.Label && a.KeyID == b.KeyID && a.Alg == b.Alg && a.Nonce == b.Nonce && a.Tag == b.Tag &&
		slices.EqualFunc(a.Components, b.Components, func(c, d Component) bool { return c.equal(&d) && c.String() == d.String() })
}

func FuzzParseComponent(f *testing.F) {
	for _, s := range []string{`"@query-param";name="a"`, `"x";key="k";req`, "@method", `content-type;sf`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseComponent(s)
		if err != nil {
			return
		}
		again, err := ParseComponent(c.String())
		if err != nil || !again.equal(&c) || again.String() != c.String() {
			t.Fatalf("%q → %q → %v", s, c.String(), err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	files, _ := fs.Glob(vectors, "rfc9421/keys/*")
	for _, file := range files {
		data, _ := fs.ReadFile(vectors, file)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, alg, err := ParseKey(data)
		if err != nil {
			return
		}
		if alg == "" {
			alg, _ = InferAlgorithm(key)
		}
		if alg != "" {
			NewVerifyingKey(alg, key) // must not panic
		}
	})
}

// FuzzParseUsual checks the fast path for the usual pair of signature
// fields against the general one: whatever parseUsual accepts,
// parseFields reads alike, without error; whatever it refuses, it leaves
// unread.
func FuzzParseUsual(f *testing.F) {
	const list = `("@method" "@authority" "@path" "@query" "content-type" "content-digest")`
	const sig = "sig1=:h0wyOV5k9Yym8TpT6fwtsFz0v/EOdAin9MWAyl908FM=:"
	for _, in := range []string{
		`sig1=` + list + `;created=1700000000;keyid="sk_bench_1";alg="hmac-sha256";nonce="cB8d4QhxhS7x4L1B5zH_Qg"`,
		`sig1=` + list, `sig1=` + list + `;created=01`, `sig1=` + list + `;created=1;created=2`, `sig1=` + list + `;keyid=1`,
		`sig1=` + list + `;created="1"`, `sig1=` + list + `;alg=""`, `sig1=` + list + `;tag="t";expires=5;nonce=""`,
		`sig1=` + list + `;foo="x"`, `sig1=` + list + `;created=-1`, `sig2=` + list + `;keyid="k"`, `sig1=("@method");keyid="k"`,
		`sig1=` + list + `;keyid="k", sig2=` + list, `sig1=` + list + `;keyid="a\"b"`, `sig1=` + list + `;created=1234567890123456`,
	} {
		f.Add(in, sig)
	}
	f.Add(`sig1=`+list+`;keyid="k"`, "sig1=:AA==:")
	f.Add(`sig1=`+list+`;keyid="k"`, "sig1=:AA==:, sig2=:AA==:")
	prime := http.Header{"Signature-Input": {`sig1=` + list + `;created=1`}, "Signature": {"sig1=::"}}
	var fast, slow sigSet
	for _, st := range []*sigSet{&fast, &slow} {
		if err := st.parse(prime); err != nil || st.lastList != list {
			f.Fatalf("the list is not remembered: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, input, sig string) {
		fast.sp.Reset()
		fast.sigs = fast.sigs[:0]
		if !fast.parseUsual(input, sig) {
			if len(fast.sigs) != 0 {
				t.Fatalf("%q %q: refused, but left a signature", input, sig)
			}
			return
		}
		slow.sp.Reset()
		slow.sigs = slow.sigs[:0]
		if err := slow.parseFields([]string{input}, []string{sig}); err != nil {
			t.Fatalf("parseUsual accepts %q %q, parseFields refuses them: %v", input, sig, err)
		}
		if len(fast.sigs) != 1 || len(slow.sigs) != 1 {
			t.Fatalf("%q %q: %d and %d signatures", input, sig, len(fast.sigs), len(slow.sigs))
		}
		a, b := &fast.sigs[0], &slow.sigs[0]
		pa, pb := &a.params, &b.params
		switch {
		case a.label != b.label || a.raw != b.raw || !bytes.Equal(a.value, b.value):
			t.Fatalf("%q %q: parseUsual reads %q %q %x, parseFields %q %q %x", input, sig, a.label, a.raw, a.value, b.label, b.raw, b.value)
		case !slices.EqualFunc(pa.Components, pb.Components, func(c, d Component) bool { return c.equal(&d) }):
			t.Fatalf("%q: components %v and %v", input, pa.Components, pb.Components)
		case !pa.Created.Equal(pb.Created) || !pa.Expires.Equal(pb.Expires) || pa.KeyID != pb.KeyID || pa.Alg != pb.Alg ||
			pa.Nonce != pb.Nonce || pa.Tag != pb.Tag || string(pa.order) != string(pb.order) || len(pa.extra) != 0 || len(pb.extra) != 0:
			t.Fatalf("%q: parseUsual reads %+v, parseFields %+v", input, *pa, *pb)
		case pa.String() != pb.String():
			t.Fatalf("%q: parameters serialise as %q and %q", input, pa.String(), pb.String())
		}
	})
}
