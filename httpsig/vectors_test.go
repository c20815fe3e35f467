package httpsig

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/httpmsg"
)

// vectors holds the RFC 9421 and RFC 9530 examples as data (see
// testdata/README.md).
var vectors = os.DirFS("../testdata")

// vector is one example of testdata/rfc9421. Unknown JSON members are
// refused so that a vector file that grows a field we should check is
// noticed.
type vector struct {
	Name              string          `json:"name"`
	Section           string          `json:"section"`
	Source            string          `json:"source"`
	MessageName       string          `json:"message_name"`
	Message           string          `json:"message"`
	RequestMessage    string          `json:"request_message"`
	ClientMessage     string          `json:"client_message"`
	ClientSigned      string          `json:"client_signed_message"`
	SignedMessage     string          `json:"signed_message"`
	Label             string          `json:"label"`
	Covered           []string        `json:"covered_components"`
	SignatureParams   string          `json:"signature_params"`
	Params            json.RawMessage `json:"params"`
	KeyID             string          `json:"key_id"`
	Alg               Algorithm       `json:"alg"`
	AlgParamPresent   bool            `json:"alg_param_present"`
	Key               string          `json:"key"`
	KeyEncoding       string          `json:"key_encoding"`
	PublicKey         *string         `json:"public_key"`
	SignatureBase     string          `json:"signature_base"`
	SignatureInput    string          `json:"signature_input"`
	Signature         string          `json:"signature"`
	SignatureValueB64 string          `json:"signature_value_b64"`
	Deterministic     bool            `json:"deterministic"`
	KeyFiles          json.RawMessage `json:"key_files"` // where the keys live; documentation
	Notes             []string        `json:"notes"`
	Variants          []struct {
		Message     string `json:"message"`
		ExpectValid bool   `json:"expect_valid"`
		Description string `json:"description"`
	} `json:"variants"`
	Signatures []vectorSig `json:"signatures"`
}

type vectorSig struct {
	Label                string          `json:"label"`
	KeyID                string          `json:"key_id"`
	Alg                  Algorithm       `json:"alg"`
	Covered              []string        `json:"covered_components"`
	SignatureParams      string          `json:"signature_params"`
	Params               json.RawMessage `json:"params"`
	SignatureInputMember string          `json:"signature_input_member"`
	SignatureMember      string          `json:"signature_member"`
	SignatureValueB64    string          `json:"signature_value_b64"`
	SignatureBase        string          `json:"signature_base"`
	SignatureBaseDerived string          `json:"signature_base_derived"`
	Deterministic        bool            `json:"deterministic"`
	Note                 string          `json:"note"`
	PublicKey            string          `json:"public_key"`
	Key                  string          `json:"key"`
	KeyFiles             json.RawMessage `json:"key_files"`
}

func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("vector: %v", err)
	}
}

func loadVectors(t *testing.T) map[string]vector {
	t.Helper()
	files, err := fs.Glob(vectors, "rfc9421/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	out := map[string]vector{}
	for _, f := range files {
		if strings.HasSuffix(f, "components.json") {
			continue
		}
		data, err := fs.ReadFile(vectors, f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		decodeStrict(t, data, &v)
		out[strings.TrimPrefix(f, "rfc9421/")] = v
	}
	return out
}

// readMessage parses a vector's message text, a request or a response; a
// response gets req as its request.
func readMessage(t *testing.T, text string, req *http.Request) *Message {
	t.Helper()
	raw, err := httpmsg.Read([]byte(text), "https")
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	if raw.Response != nil {
		raw.Response.Request = req
		return &Message{Request: req, Response: raw.Response}
	}
	return &Message{Request: raw.Request}
}

func header(m *Message) http.Header {
	if m.Response != nil {
		return m.Response.Header
	}
	return m.Request.Header
}

func mustKey(t *testing.T, text string) any {
	t.Helper()
	k, _, err := ParseKey([]byte(text))
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return k
}

func TestVectors(t *testing.T) {
	for file, v := range loadVectors(t) {
		t.Run(file, func(t *testing.T) {
			var req *http.Request
			if v.RequestMessage != "" {
				req = readMessage(t, v.RequestMessage, nil).Request
			}
			if len(v.Signatures) > 0 {
				testMultiple(t, v)
				return
			}
			text := v.Message
			if text == "" {
				text = v.SignedMessage
			}
			m := readMessage(t, text, req)
			h := header(m)
			h.Set("Signature-Input", v.SignatureInput)
			h.Set("Signature", v.Signature)

			sigs, err := ParseSignatures(h)
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != 1 || sigs[0].Label != v.Label {
				t.Fatalf("parsed %d signatures, want one labelled %q", len(sigs), v.Label)
			}
			p := &sigs[0].Params
			if got := p.String(); got != v.SignatureParams {
				t.Errorf("params round trip:\n got %s\nwant %s", got, v.SignatureParams)
			}
			base, err := SignatureBase(m, p)
			if err != nil {
				t.Fatal(err)
			}
			if string(base) != v.SignatureBase {
				t.Fatalf("signature base:\n got %q\nwant %q", base, v.SignatureBase)
			}
			if got := base64.StdEncoding.EncodeToString(sigs[0].Value); got != v.SignatureValueB64 {
				t.Fatalf("signature value = %s, want %s", got, v.SignatureValueB64)
			}

			priv := mustKey(t, v.Key)
			var pub any = priv
			if v.PublicKey != nil {
				pub = mustKey(t, *v.PublicKey)
			}
			vk, err := NewVerifyingKey(v.Alg, pub)
			if err != nil {
				t.Fatal(err)
			}
			if err := vk.Verify(base, sigs[0].Value); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
			sk, err := NewSigningKey(v.Alg, priv)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := sk.Sign(base)
			if err != nil {
				t.Fatal(err)
			}
			if v.Deterministic {
				if got := base64.StdEncoding.EncodeToString(sig); got != v.SignatureValueB64 {
					t.Fatalf("re-signed value = %s, want %s", got, v.SignatureValueB64)
				}
			} else if err := vk.Verify(base, sig); err != nil {
				t.Fatalf("our own signature does not verify: %v", err)
			}

			// The whole verifier, with a policy that asks only what the
			// RFC examples give: they have no nonce and are old.
			ver := &Verifier{
				Policy: Policy{Required: []Component{}, RequiredParams: []string{"keyid"}, MaxAge: -1},
				Keys:   KeyMap{v.KeyID: vk},
				Now:    func() time.Time { return time.Unix(1618884473, 0) },
			}
			verify := func(m *Message) error {
				if m.Response != nil {
					body, err := io.ReadAll(m.Response.Body)
					if err != nil {
						t.Fatal(err)
					}
					_, err = ver.VerifyResponse(t.Context(), m.Response, body)
					return err
				}
				_, err := ver.VerifyRequest(m.Request, readBody(t, m.Request))
				return err
			}
			if err := verify(m); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, variant := range v.Variants {
				vm := readMessage(t, variant.Message, req)
				err := verify(vm)
				if variant.ExpectValid && err != nil {
					t.Errorf("variant %q: %v", variant.Description, err)
				}
				if !variant.ExpectValid {
					if r, _ := ReasonOf(err); r != ReasonBadSignature {
						t.Errorf("variant %q: got %v, want bad-signature", variant.Description, err)
					}
				}
			}
		})
	}
}

func readBody(t *testing.T, r *http.Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	if r.Body != nil {
		if _, err := buf.ReadFrom(r.Body); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// testMultiple checks RFC 9421 §4.3: a client signature and a proxy
// signature on one message.
func testMultiple(t *testing.T, v vector) {
	m := readMessage(t, v.Message, nil)
	m.Request.Header.Set("Signature-Input", v.SignatureInput)
	m.Request.Header.Set("Signature", v.Signature)
	sigs, err := ParseSignatures(m.Request.Header)
	if err != nil {
		t.Fatal(err)
	}
	keys := KeyMap{}
	for i, want := range v.Signatures {
		got := sigs[i]
		if got.Label != want.Label {
			t.Fatalf("signature %d label %q, want %q", i, got.Label, want.Label)
		}
		vk, err := NewVerifyingKey(want.Alg, mustKey(t, want.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		keys[want.KeyID] = vk
		wantBase, msg := want.SignatureBase, m
		if wantBase == "" {
			// The client's signature predates the proxy's changes.
			wantBase, msg = want.SignatureBaseDerived, readMessage(t, v.ClientSigned, nil)
		}
		base, err := SignatureBase(msg, &got.Params)
		if err != nil {
			t.Fatal(err)
		}
		if string(base) != wantBase {
			t.Fatalf("%s base:\n got %q\nwant %q", want.Label, base, wantBase)
		}
		if err := vk.Verify(base, got.Value); err != nil {
			t.Fatalf("%s: %v", want.Label, err)
		}
		if want.Deterministic {
			sk, err := NewSigningKey(want.Alg, mustKey(t, want.Key))
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := sk.Sign(base)
			if got := base64.StdEncoding.EncodeToString(sig); got != want.SignatureValueB64 {
				t.Fatalf("%s re-signed = %s, want %s", want.Label, got, want.SignatureValueB64)
			}
		}
	}

	ver := &Verifier{
		Policy: Policy{Required: []Component{}, RequiredParams: []string{}, MaxAge: -1},
		Keys:   keys,
		Now:    func() time.Time { return time.Unix(1618884480, 0) },
	}
	body := readBody(t, m.Request)
	// The proxy's signature alone verifies on the forwarded message.
	ver.Policy.Labels = []string{"proxy_sig"}
	if _, err := ver.VerifyRequest(m.Request, body); err != nil {
		t.Fatalf("proxy_sig: %v", err)
	}
	// Checking every signature refuses the message: the client's no longer
	// matches, and a good signature must not carry a bad one.
	ver.Policy.Labels = nil
	if _, err := ver.VerifyRequest(m.Request, body); err == nil {
		t.Fatal("a message with one bad signature verified")
	} else if r, _ := ReasonOf(err); r != ReasonBadSignature {
		t.Fatalf("got %v, want bad-signature", err)
	}
}

type componentCase struct {
	Section         string   `json:"section"`
	Title           string   `json:"title"`
	Message         *string  `json:"message"`
	Context         *string  `json:"context"`
	ExpectedPrinted string   `json:"expected_as_printed"`
	Expected        string   `json:"expected"`
	Notes           []string `json:"notes"`
}

func TestComponentVectors(t *testing.T) {
	data, err := fs.ReadFile(vectors, "rfc9421/components.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Source string          `json:"source"`
		Note   string          `json:"note"`
		Cases  []componentCase `json:"cases"`
	}
	decodeStrict(t, data, &file)
	for _, c := range file.Cases {
		t.Run(c.Section+" "+c.Title, func(t *testing.T) {
			if c.Section == "2.3" {
				testParamsSerialisation(t, c.Expected)
				return
			}
			text := "GET /path HTTP/1.1\nHost: www.example.com\n\n"
			if c.Message != nil {
				text = *c.Message
				if !strings.HasPrefix(text, "HTTP/") && !strings.Contains(strings.SplitN(text, "\n", 2)[0], " HTTP/") {
					// a bare field section
					if !strings.HasPrefix(text, "Host:") {
						text = "Host: www.example.com\n" + text
					}
					text = "GET / HTTP/1.1\n" + text + "\n\n"
				}
			}
			m := readMessage(t, text, nil)
			m.Structured = map[string]FieldType{"example-dict": FieldDictionary}
			if c.Context != nil && strings.Contains(*c.Context, "plain HTTP") {
				m.Scheme = "http"
			}
			for _, line := range strings.Split(c.Expected, "\n") {
				id, _, _ := strings.Cut(line, ": ")
				comp, err := ParseComponent(id)
				if err != nil {
					t.Fatalf("component %s: %v", id, err)
				}
				p := Params{Components: []Component{comp}}
				base, err := SignatureBase(m, &p)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				got, _, _ := strings.Cut(string(base), "\n\"@signature-params\"")
				if got != line {
					t.Errorf("got  %q\nwant %q", got, line)
				}
			}
		})
	}
}

func testParamsSerialisation(t *testing.T, want string) {
	h := http.Header{"Signature-Input": {"sig=" + want}, "Signature": {"sig=::"}}
	sigs, err := ParseSignatures(h)
	if err != nil {
		t.Fatal(err)
	}
	p := &sigs[0].Params
	if got := p.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if p.KeyID != "test-key-rsa-pss" || p.Alg != AlgRSAPSSSHA512 || p.Created.Unix() != 1618884475 || p.Expires.Unix() != 1618884775 {
		t.Fatalf("parsed params %+v", p)
	}
}

func TestDigestVectors(t *testing.T) {
	data, err := fs.ReadFile(vectors, "rfc9530/digests.json")
	if err != nil {
		t.Fatal(err)
	}
	// Every member is named, so that a vector file that grows a field we
	// should check is noticed.
	var file struct {
		Source string `json:"source"`
		Format string `json:"format"`
		Cases  []struct {
			ID               string   `json:"id"`
			Section          string   `json:"section"`
			Field            string   `json:"field"` // documentation: where the RFC uses it
			Algorithm        string   `json:"algorithm"`
			InputDescription string   `json:"input_description"`
			InputUTF8        *string  `json:"input_utf8"` // null for binary input
			InputHex         string   `json:"input_hex"`
			InputLength      int      `json:"input_length"`
			Printed          string   `json:"value_as_printed"`
			Computed         string   `json:"computed_b64"`
			Matches          bool     `json:"matches_as_printed"`
			MatchesPadded    bool     `json:"matches_after_fixing_padding"`
			FieldValue       string   `json:"field_value"`
			Notes            []string `json:"notes"`
		} `json:"cases"`
	}
	decodeStrict(t, data, &file)
	if len(file.Cases) == 0 {
		t.Fatal("no digest vectors")
	}
	for _, c := range file.Cases {
		t.Run(c.ID, func(t *testing.T) {
			input := mustHex(t, c.InputHex)
			if (c.InputUTF8 != nil && string(input) != *c.InputUTF8) || len(input) != c.InputLength {
				t.Fatalf("input_hex, input_utf8 and input_length disagree")
			}
			if c.FieldValue != c.Algorithm+"=:"+c.Computed+":" {
				t.Fatalf("field_value %s is not built from computed_b64 %s", c.FieldValue, c.Computed)
			}
			alg := DigestAlgorithm(c.Algorithm)
			if alg != DigestSHA256 && alg != DigestSHA512 {
				// Deprecated algorithms are ignored; alone, they are refused.
				err := CheckContentDigest(c.FieldValue, input)
				if r, _ := ReasonOf(err); r != ReasonDigestMismatch {
					t.Fatalf("%s alone: got %v, want digest-mismatch", alg, err)
				}
				if err := CheckContentDigest(c.FieldValue+", sha-256=:"+sha256b64(input)+":", input); err != nil {
					t.Fatalf("%s next to sha-256: %v", alg, err)
				}
				return
			}
			got, err := ContentDigest(alg, input)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.FieldValue {
				t.Fatalf("ContentDigest = %s, want %s", got, c.FieldValue)
			}
			if err := CheckContentDigest(c.FieldValue, input); err != nil {
				t.Fatal(err)
			}
			d, err := NewDigester(alg)
			if err != nil {
				t.Fatal(err)
			}
			d.Write(input[:len(input)/2])
			d.Write(input[len(input)/2:])
			if streamed := d.Value(); streamed != c.FieldValue {
				t.Fatalf("Digester = %s", streamed)
			}
			printed := string(alg) + "=:" + c.Printed + ":"
			err = CheckContentDigest(printed, input)
			if c.Matches && err != nil {
				t.Fatalf("as printed: %v", err)
			}
			if !c.Matches && err == nil {
				t.Fatalf("the misprinted value %s was accepted", c.Printed)
			}
			padded := strings.TrimRight(c.Printed, "=")
			for len(padded)%4 != 0 {
				padded += "="
			}
			if err := CheckContentDigest(string(alg)+"=:"+padded+":", input); (err == nil) != c.MatchesPadded {
				t.Fatalf("with its padding fixed, %s: %v; want a match: %v", c.Printed, err, c.MatchesPadded)
			}
			if err := CheckContentDigest(c.FieldValue, append(input, 'x')); err == nil {
				t.Fatal("changed content accepted")
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256b64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}
