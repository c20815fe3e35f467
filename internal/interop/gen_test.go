package interop

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/signet-dev/signet/httpsig"
)

// The clock of the cross-check: signatures are created at created and
// checked at now.
const (
	created = 1700000000
	now     = created + 60
)

// wireRequest is a request as it travels: what a server receives.
type wireRequest struct {
	Method string
	// Target is the origin-form request-target: path, and "?" and query
	// when there is one.
	Target string
	Host   string
	// Header holds the field lines in order; a name may repeat.
	Header [][2]string
	Body   []byte
}

func (w wireRequest) clone() wireRequest {
	w.Header = slices.Clone(w.Header)
	w.Body = slices.Clone(w.Body)
	return w
}

// url returns the absolute URL of the request, as the Node.js side takes it.
func (w wireRequest) url() string { return "http://" + w.Host + w.Target }

// get returns the field lines of name, in order.
func (w wireRequest) get(name string) []string {
	var out []string
	for _, f := range w.Header {
		if strings.EqualFold(f[0], name) {
			out = append(out, f[1])
		}
	}
	return out
}

// del removes every field line of name.
func (w *wireRequest) del(name string) {
	w.Header = slices.DeleteFunc(w.Header, func(f [2]string) bool { return strings.EqualFold(f[0], name) })
}

// set replaces the field lines of name with one line.
func (w *wireRequest) set(name, value string) {
	w.del(name)
	w.Header = append(w.Header, [2]string{name, value})
}

// String returns the request as HTTP/1.1 text, which `signet verify
// --scheme http` reads; a body of more than 1 KiB or not UTF-8 is shown
// by its length only (the crosscheck.mjs line of a report holds it all).
func (w wireRequest) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\nHost: %s\n", w.Method, w.Target, w.Host)
	for _, f := range w.Header {
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	if len(w.Body) > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\n", len(w.Body))
	}
	b.WriteString("\n")
	if len(w.Body) > 1<<10 || !utf8.Valid(w.Body) {
		fmt.Fprintf(&b, "[%d bytes]", len(w.Body))
	} else {
		b.Write(w.Body)
	}
	return b.String()
}

// testKey is a key both sides sign and verify with.
type testKey struct {
	id     string
	alg    httpsig.Algorithm
	signer httpsig.SigningKey
	// private is the key as Node.js takes it for signing (base64 secret
	// or PKCS#8 PEM), public for verifying (the same secret, or SPKI PEM).
	private, public string
	verify          httpsig.VerifyingKey
}

// newKeys derives an HMAC-SHA256 secret and an Ed25519 key pair from rng.
func newKeys(t testing.TB, rng *rand.Rand) []*testKey {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(rng.UintN(256))
	}
	hk, err := httpsig.NewHMACKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(secret)
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(rng.UintN(256))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	es, err := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := httpsig.NewVerifyingKey(httpsig.AlgEd25519, priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return []*testKey{
		{id: "sk_interop_hmac", alg: httpsig.AlgHMACSHA256, signer: hk, verify: hk, private: b64, public: b64},
		{id: "sk_interop_ed", alg: httpsig.AlgEd25519, signer: es, verify: ev,
			private: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
			public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))},
	}
}

// testCase is a generated request and how to sign it.
type testCase struct {
	name string
	req  wireRequest // without signature fields
	key  *testKey
	// components is nil for the default profile, else the serialised
	// identifiers to cover, in order.
	components []string
	tag        string
	expires    bool // an expires parameter 300 s after created
	// stream has the Go client send the body without GetBody, so that it
	// reads it into memory; otherwise it streams it through GetBody.
	stream bool
}

var (
	methods = []string{
		"GET", "GET", "GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE",
		"get", "post", "Put", "patch", "delete", "OPTIONS",
		"M-SEARCH", "PROPFIND", "PURGE", "QUERY", "X-Custom_1.0", "~!#$%&'*+^`|",
	}
	// segments are path segments as sent: percent-encoding (upper- and
	// lower-case hex, of "/", space, "%", UTF-8), sub-delims, "~", dot
	// segments and empty ones.
	segments = []string{
		"v1", "orders", "Orders", "42", "a%2Fb", "a%2fb", "with%20space", "caf%C3%A9", "%E2%9C%93", "%e2%9c%93",
		"~user", "a;b=c", "x:y", "@me", "!$&'()*+,;=", "-._~", "%25", "%7E", "%00", "a+b", ".", "..", "", "items.json",
	}
	// params are query parameters as sent; name is the form-encoded name
	// an "@query-param" component names it by ("" for none).
	params = []struct{ text, name string }{
		{"customer=42", "customer"}, {"expand=items", "expand"}, {"a=1", "a"}, {"a=2", "a"}, {"a", "a"},
		{"q=a+b", "q"}, {"q=%20x%2By", "q"}, {"flag", "flag"}, {"=v", ""}, {"x=", "x"},
		{"k=%E2%9C%93", "k"}, {"name=caf%C3%A9", "name"}, {"n%61me=1", "name"}, {"bad=%FF", "bad"},
		{"trunc=%E2%9C", "trunc"}, {"odd=%zz%4", "odd"}, {"sort=-created,id", "sort"}, {"path=/a/b?c", "path"},
		{"~t=~", "%7Et"}, {"e=%3D%26", "e"}, {"plus+name=1", "plus%20name"}, {"star*=.-_", "star*"},
		{"Case=Upper", "Case"}, {"%E2%9C%93=check", "%E2%9C%93"},
	}
	contentTypes = []string{
		"application/json", "application/json; charset=utf-8", "text/plain;charset=UTF-8",
		"application/octet-stream", "multipart/form-data; boundary=xYz", "application/x-www-form-urlencoded",
		"APPLICATION/JSON",
	}
	repeatValues = []string{"a", "b, c", "  spaced  ", "", "café ✓", "\"quoted, comma\"", "tab\there", "x=1;y=2"}
)

// generate makes n test cases from rng, for a server whose address is
// addr. Cases alternate keys, so each algorithm gets half.
func generate(rng *rand.Rand, keys []*testKey, n int, addr string) []testCase {
	_, port, _ := strings.Cut(addr, ":")
	// Host fields the server may receive: its address, other names,
	// upper case, default and other ports. The connection goes to addr.
	hosts := []string{
		addr, addr, addr, "localhost:" + port, "LocalHost:" + port,
		"api.example.com", "API.Example.COM:80", "api.example.com:8080",
	}
	cases := make([]testCase, n)
	for i := range cases {
		c := &cases[i]
		c.key = keys[i%len(keys)]
		c.req.Method = methods[rng.IntN(len(methods))]
		c.req.Host = hosts[rng.IntN(len(hosts))]
		path := genPath(rng)
		query, names := genQuery(rng)
		c.req.Target = path + query
		c.req.Header = genHeader(rng)
		c.req.Body = genBody(rng)
		c.stream = rng.IntN(2) == 0
		if rng.IntN(5) == 0 {
			c.tag = fmt.Sprintf("app-%d", rng.IntN(100))
		}
		c.expires = rng.IntN(8) == 0
		if rng.IntN(3) == 0 {
			c.components = genComponents(rng, &c.req, query, names)
		}
		c.name = fmt.Sprintf("%03d-%s-%s", i, c.key.alg, c.req.Method)
	}
	return cases
}

func genPath(rng *rand.Rand) string {
	n := rng.IntN(5)
	if n == 0 {
		return "/"
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = segments[rng.IntN(len(segments))]
	}
	if parts[0] == "" {
		// "//" would make the target look like an authority.
		parts[0] = "v2"
	}
	path := "/" + strings.Join(parts, "/")
	if rng.IntN(6) == 0 {
		path += "/"
	}
	return path
}

// genQuery returns "", "?", or "?" and parameters, with the names an
// "@query-param" component can name.
func genQuery(rng *rand.Rand) (string, []string) {
	switch r := rng.IntN(20); {
	case r < 7:
		return "", nil
	case r == 7:
		return "?", nil
	}
	var parts, names []string
	for range 1 + rng.IntN(4) {
		p := params[rng.IntN(len(params))]
		parts = append(parts, p.text)
		if p.name != "" && !slices.Contains(names, p.name) {
			names = append(names, p.name)
		}
	}
	q := strings.Join(parts, "&")
	switch rng.IntN(10) {
	case 0:
		q = "&" + q
	case 1:
		q += "&&z"
		names = append(names, "z")
	}
	return "?" + q, names
}

func genHeader(rng *rand.Rand) [][2]string {
	var h [][2]string
	if rng.IntN(10) < 6 {
		h = append(h, [2]string{"Content-Type", contentTypes[rng.IntN(len(contentTypes))]})
		if rng.IntN(15) == 0 {
			h = append(h, [2]string{"content-type", contentTypes[rng.IntN(len(contentTypes))]})
		}
	}
	for range rng.IntN(4) {
		name := "X-Repeat"
		if rng.IntN(2) == 0 {
			name = "x-repeat"
		}
		h = append(h, [2]string{name, repeatValues[rng.IntN(len(repeatValues))]})
	}
	if rng.IntN(3) == 0 {
		h = append(h, [2]string{"Accept", "application/json, text/*;q=0.5"})
	}
	if rng.IntN(4) == 0 {
		h = append(h, [2]string{"X-Dict", "a=1, b=2;x, c=?0, d=\"str\""})
	}
	if rng.IntN(5) == 0 {
		h = append(h, [2]string{"Cache-Control", "no-cache"}, [2]string{"Cache-Control", "max-age=0"})
	}
	if rng.IntN(6) == 0 {
		h = append(h, [2]string{"X-Empty", ""})
	}
	rng.Shuffle(len(h), func(i, j int) {
		// Keep the relative order of lines of one name.
		if !strings.EqualFold(h[i][0], h[j][0]) {
			h[i], h[j] = h[j], h[i]
		}
	})
	return h
}

func genBody(rng *rand.Rand) []byte {
	switch r := rng.IntN(20); {
	case r < 7:
		return nil
	case r < 11:
		return []byte(fmt.Sprintf("n=%d&text=caf%%C3%%A9", rng.IntN(1000)))
	case r < 14:
		var b strings.Builder
		b.WriteString(`{"items":[`)
		for i := range 10 + rng.IntN(200) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"SKU-%05d","qty":%d,"note":"café ✓"}`, rng.IntN(100000), rng.IntN(9))
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	body := make([]byte, 1+rng.IntN(16<<10))
	for i := range body {
		body[i] = byte(rng.UintN(256))
	}
	return body
}

// genComponents returns the default profile of the request followed by
// some other components it can cover, in random order.
func genComponents(rng *rand.Rand, w *wireRequest, query string, names []string) []string {
	out := []string{`"@method"`, `"@authority"`, `"@path"`}
	if len(query) > 1 {
		out = append(out, `"@query"`)
	}
	if len(w.get("Content-Type")) > 0 {
		out = append(out, `"content-type"`)
	}
	if len(w.Body) > 0 {
		out = append(out, `"content-digest"`)
	}
	extra := []string{`"@target-uri"`, `"@request-target"`, `"@scheme"`}
	if len(w.get("X-Repeat")) > 0 {
		extra = append(extra, `"x-repeat"`, `"x-repeat";bs`)
	}
	if len(w.get("X-Dict")) > 0 {
		extra = append(extra, `"x-dict";key="b"`)
	}
	if len(w.get("Cache-Control")) > 0 {
		extra = append(extra, `"cache-control"`)
	}
	if len(w.get("X-Empty")) > 0 {
		extra = append(extra, `"x-empty"`)
	}
	if len(w.Body) > 0 {
		extra = append(extra, `"content-digest";sf`)
	}
	for _, n := range names {
		extra = append(extra, fmt.Sprintf(`"@query-param";name=%q`, n))
	}
	rng.Shuffle(len(extra), func(i, j int) { extra[i], extra[j] = extra[j], extra[i] })
	return append(out, extra[:1+rng.IntN(len(extra))]...)
}
