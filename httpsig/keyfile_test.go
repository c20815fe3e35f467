package httpsig

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"strings"
	"testing"

	"github.com/signet-dev/signet/internal/reqfixture"
)

// TestKeyFiles parses every key of RFC 9421 B.1 in every form it is given,
// and checks the forms agree.
func TestKeyFiles(t *testing.T) {
	data, err := fs.ReadFile(vectors, "rfc9421/keys/index.json")
	if err != nil {
		t.Fatal(err)
	}
	var index map[string]struct {
		Files map[string]string `json:"files"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	wantAlg := map[string]Algorithm{
		"test-key-rsa": AlgRSAV1_5SHA256, "test-key-rsa-pss": AlgRSAPSSSHA512,
		"test-key-ecc-p256": AlgECDSAP256SHA256, "test-key-ed25519": AlgEd25519,
		"test-shared-secret": AlgHMACSHA256,
	}
	for name, k := range index {
		t.Run(name, func(t *testing.T) {
			alg := wantAlg[name]
			var sigs [][]byte
			base := []byte("signature base")
			for form, file := range k.Files {
				text, err := fs.ReadFile(vectors, "rfc9421/"+file)
				if err != nil {
					t.Fatal(err)
				}
				key, named, err := ParseKey(text)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				if named != "" && named != alg {
					t.Fatalf("%s names %s", form, named)
				}
				if strings.Contains(form, "public") {
					if _, err := NewVerifyingKey(alg, key); err != nil {
						t.Fatalf("%s: %v", form, err)
					}
					continue
				}
				sk, err := LoadSigningKey(alg, text)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				sig, err := sk.Sign(base)
				if err != nil {
					t.Fatal(err)
				}
				sigs = append(sigs, sig)
			}
			// Every private form verifies with every public form.
			for form, file := range k.Files {
				text, _ := fs.ReadFile(vectors, "rfc9421/"+file)
				vk, err := LoadVerifyingKey(alg, text)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				for _, sig := range sigs {
					if err := vk.Verify(base, sig); err != nil {
						t.Fatalf("%s does not verify: %v", form, err)
					}
				}
			}
		})
	}
}

func TestKeyBinding(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	secret := make([]byte, 32)
	for _, tt := range []struct {
		alg Algorithm
		key any
	}{
		{AlgHMACSHA256, edPriv},
		{AlgEd25519, secret},
		{AlgECDSAP256SHA256, edPriv},
		{AlgRSAPSSSHA512, secret},
		{"hmac-sha512", secret},
	} {
		if _, err := NewSigningKey(tt.alg, tt.key); err == nil {
			t.Errorf("NewSigningKey(%s, %s) succeeded", tt.alg, describeKey(tt.key))
		}
		if _, err := NewVerifyingKey(tt.alg, tt.key); err == nil {
			t.Errorf("NewVerifyingKey(%s, %s) succeeded", tt.alg, describeKey(tt.key))
		}
	}
	if _, err := NewHMACKey(make([]byte, 31)); err == nil {
		t.Error("a 248-bit HMAC secret was accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigningKey(AlgRSAV1_5SHA256, small); err == nil {
		t.Error("a 1024-bit RSA key was accepted")
	}
	// A PEM file for RSA-PSS refuses to serve as RSA v1.5.
	text, _ := fs.ReadFile(vectors, "rfc9421/keys/test-key-rsa-pss.priv.pem")
	if _, err := LoadSigningKey(AlgRSAV1_5SHA256, text); err == nil {
		t.Error("an RSASSA-PSS key loaded for rsa-v1_5-sha256")
	}
	// Inference.
	if k, err := LoadSigningKey("", text); err != nil || k.Algorithm() != AlgRSAPSSSHA512 {
		t.Errorf("inferred %v, %v", k, err)
	}
	rsaText, _ := fs.ReadFile(vectors, "rfc9421/keys/test-key-rsa.priv.pem")
	if _, err := LoadSigningKey("", rsaText); err == nil {
		t.Error("an RSA key without a named algorithm loaded")
	}
}

func TestBadKeyFiles(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	for _, tt := range []struct{ name, text string }{
		{"empty", ""},
		{"spaces", "   \n"},
		{"not base64", "not a key!"},
		{"truncated PEM", "-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n"},
		{"garbage PEM", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}))},
		{"unknown PEM type", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: spki}))},
		{"two PEM blocks", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})) + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))},
		{"bad JSON", "{"},
		{"JWK without kty", `{"k":"AAAA"}`},
		{"JWK unknown kty", `{"kty":"XYZ"}`},
		{"JWK unknown curve", `{"kty":"OKP","crv":"X25519","x":"AAAA"}`},
		{"JWK short Ed25519", `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`},
		{"JWK point off curve", `{"kty":"EC","crv":"P-256","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}`},
		{"JWK RSA exponent", `{"kty":"RSA","n":"AQAB","e":"AQ"}`},
		{"JWK unknown alg", `{"kty":"oct","k":"AAAA","alg":"none"}`},
	} {
		if _, _, err := ParseKey([]byte(tt.text)); err == nil {
			t.Errorf("%s: parsed", tt.name)
		}
	}
	// Errors never echo the key material.
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	_, err := LoadSigningKey(AlgEd25519, []byte(secret))
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "0123456789") {
		t.Fatalf("error %v", err)
	}
}

func TestECDSASignatureFormat(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sk, _ := NewSigningKey(AlgECDSAP384SHA384, priv)
	sig, _ := sk.Sign([]byte("x"))
	if len(sig) != 96 {
		t.Fatalf("P-384 signature is %d bytes, want r||s = 96", len(sig))
	}
}

func TestAcceptSignature(t *testing.T) {
	r := reqfixture.Received([]byte("{}"))
	var p Policy
	got := p.AcceptSignatureFor(r, true)
	want := `sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest")`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	p.Tag = "app"
	got = p.AcceptSignatureFor(r, false)
	if got != `sig1=("@method" "@authority" "@path" "@query" "content-type");tag="app"` {
		t.Fatalf("with tag: %s", got)
	}
	reqs, err := ParseAcceptSignature(got + `, proxy=("@target-uri");keyid="k1";alg="ed25519"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Tag != "app" || len(reqs[0].Components) != 5 || reqs[1].KeyID != "k1" || reqs[1].Alg != AlgEd25519 {
		t.Fatalf("parsed %+v", reqs)
	}
	if reqs, err := ParseAcceptSignature(`sig1=("@status");nonce="challenge"`); err != nil || reqs[0].Nonce != "challenge" {
		t.Fatalf("nonce challenge: %v %v", reqs, err)
	}
	for _, bad := range []string{`sig1=("@method");created=1`, `sig1="x"`, `sig1=(`} {
		if _, err := ParseAcceptSignature(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestKeyBoundToAlgorithm: a key of another kind than its algorithm takes
// is refused, whichever way round.
func TestKeyBoundToAlgorithm(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	secret := make([]byte, 32)
	for _, alg := range Algorithms() {
		for _, key := range []any{secret, edPriv, p256, p384} {
			own, _ := InferAlgorithm(key)
			_, errS := NewSigningKey(alg, key)
			_, errV := NewVerifyingKey(alg, key)
			if fits := own == alg; (errS == nil) != fits || (errV == nil) != fits {
				t.Errorf("%s with a %s key: signing %v, verifying %v", alg, own, errS, errV)
			}
		}
	}
	if _, err := NewVerifyingKey(AlgEd25519, ed25519.PrivateKey(edPriv[:10])); err == nil {
		t.Error("a truncated Ed25519 private key was accepted")
	}
	if _, err := NewSigningKey("hs256", secret); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}
