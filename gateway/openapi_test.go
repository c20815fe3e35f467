package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/keys"
)

// loadOpenAPI loads gateway/openapi.json and checks that it is a valid
// OpenAPI 3.1 document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("openapi.json")
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// routePattern matches the net/http patterns of the package's routes: a
// method, a space and a path.
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/\S*)$`)

// registeredRoutes returns the routes the gateway package registers, as
// "METHOD /openapi/{path}", each with where it is written. It reads the
// package's source rather than the running mux, which cannot list its
// patterns: every string literal of the form "METHOD /path" in a non-test
// file counts, wherever and however it is registered.
func registeredRoutes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	routes := map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			if m := routePattern.FindStringSubmatch(s); m != nil {
				routes[m[1]+" "+openAPIPath(m[2])] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	return routes
}

// openAPIPath turns a net/http path pattern into an OpenAPI path template:
// "{rest...}" becomes "{rest}" and "{$}" (the exact path) goes.
func openAPIPath(p string) string {
	p = strings.ReplaceAll(p, "{$}", "")
	return regexp.MustCompile(`\{(\w+)\.\.\.\}`).ReplaceAllString(p, "{$1}")
}

func documentedRoutes(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

// TestOpenAPIRoutes fails when the admin listener serves a route that
// gateway/openapi.json does not describe, or the reverse.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	registered, documented := registeredRoutes(t), documentedRoutes(doc)
	if len(registered) < 5 {
		t.Fatalf("found only %d routes in the gateway package (%v): has their registration changed shape?", len(registered), registered)
	}
	for r, where := range registered {
		if documented[r] == nil {
			t.Errorf("%s (%s) is served but not described in gateway/openapi.json", r, where)
		}
	}
	for r := range documented {
		if _, ok := registered[r]; !ok {
			t.Errorf("%s is described in gateway/openapi.json but not served", r)
		}
	}
}

// TestOpenAPIServed checks that the admin listener serves the document as
// it is kept in the repository, without a signature, revalidated by ETag.
func TestOpenAPIServed(t *testing.T) {
	e := newAdminEnv(t)
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.admin.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(got, want) {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes (want the %d of openapi.json)", resp.StatusCode, resp.Header.Get("Content-Type"), len(got), len(want))
	}
	etag := resp.Header.Get("ETag")
	r, _ := http.NewRequest("GET", e.admin.URL+"/v1/openapi.json", nil)
	r.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with ETag %q: %d, want 304", etag, resp.StatusCode)
	}
}

// apiCheck sends requests to a real admin listener and checks each request
// it calls conforming, and every answer, against gateway/openapi.json.
type apiCheck struct {
	t      *testing.T
	e      *adminEnv
	doc    *openapi3.T
	router routers.Router
	// seen holds "operationId status" for every answer checked.
	seen map[string]bool
}

// The console's files are text: their schemas are strings.
func init() {
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

func newAPICheck(t *testing.T, e *adminEnv) *apiCheck {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiCheck{t: t, e: e, doc: doc, router: router, seen: map[string]bool{}}
}

// authenticate stands for the gateway's own verification, which the
// request then goes through for real: here the document's security
// requirement is only checked for shape.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch {
	case in.SecuritySchemeName != "httpMessageSignature" || !slices.Equal(in.Scopes, []string{keys.ScopeAdmin}) && !slices.Equal(in.Scopes, []string{gateway.ScopeVerify}):
		return fmt.Errorf("unexpected security requirement %s %v", in.SecuritySchemeName, in.Scopes)
	case h.Get("Signature") == "" || h.Get("Signature-Input") == "":
		return errors.New("no Signature and Signature-Input")
	}
	return nil
}

// do sends method path with body to the admin listener, signed by s unless
// s is nil, and checks the answer against the description; conforming says
// the request should pass the description too (the test's bad requests do
// not). It returns the answer's status and body.
func (c *apiCheck) do(s *httpsig.Signer, method, path string, header http.Header, body []byte, conforming bool) (int, http.Header, []byte) {
	t := c.t
	t.Helper()
	r, _ := http.NewRequest(method, c.e.admin.URL+path, bytes.NewReader(body))
	if body == nil {
		r.Body, r.ContentLength = http.NoBody, 0
	} else {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header[k] = v
	}
	if s != nil {
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		t.Fatalf("%s %s is not in the description: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r.Clone(context.Background()), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true},
	}
	in.Request.Body = io.NopCloser(bytes.NewReader(body))
	if conforming {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: the request does not match the description: %v", method, path, err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(got)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s %s: the %d answer does not match the description: %v\n%s", method, path, resp.StatusCode, err, got)
	}
	c.seen[route.Operation.OperationID+" "+strconv.Itoa(resp.StatusCode)] = true
	return resp.StatusCode, resp.Header, got
}

// expect is do for a request whose answer must have status want.
func (c *apiCheck) expect(want int, s *httpsig.Signer, method, path string, in any, conforming bool) []byte {
	c.t.Helper()
	var body []byte
	switch v := in.(type) {
	case nil:
	case []byte:
		body = v
	default:
		body, _ = json.Marshal(v)
	}
	code, _, got := c.do(s, method, path, nil, body, conforming)
	if code != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, got, want)
	}
	return got
}

func publicKeyPEM(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestOpenAPIAnswers drives every operation of the description against a
// real admin listener, with admin keys made in a real SQLite key store, and
// validates each request and answer against the schemas: every success and
// every kind of refusal the description lists.
func TestOpenAPIAnswers(t *testing.T) {
	e := newAdminEnv(t)
	c := newAPICheck(t, e)
	root := e.root
	created := func(b []byte) (keys.Key, *httpsig.Signer) {
		var v struct {
			Key    keys.Key
			Secret string
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		if v.Secret == "" {
			return v.Key, nil
		}
		secret, err := base64.StdEncoding.DecodeString(v.Secret)
		if err != nil {
			t.Fatal(err)
		}
		return v.Key, hmacSigner(t, v.Key.ID, secret)
	}

	c.expect(200, nil, "GET", "/healthz", nil, true)
	c.expect(200, nil, "GET", "/metrics", nil, true)
	c.expect(404, nil, "GET", "/.well-known/signet-keys", nil, true)
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.g.SetKeyring(ring); err != nil {
		t.Fatal(err)
	}
	c.expect(200, nil, "GET", "/.well-known/signet-keys", nil, true)
	_, h, _ := c.do(nil, "GET", "/v1/openapi.json", nil, nil, true)
	if code, _, _ := c.do(nil, "GET", "/v1/openapi.json", http.Header{"If-None-Match": {h.Get("ETag")}}, nil, true); code != 304 {
		t.Fatalf("revalidation: %d", code)
	}

	_, h, _ = c.do(nil, "GET", "/", nil, nil, true)
	if code, _, _ := c.do(nil, "GET", "/", http.Header{"If-None-Match": {h.Get("ETag")}}, nil, true); code != 304 {
		t.Fatalf("revalidation of the console: %d", code)
	}
	c.expect(200, nil, "GET", "/ui/app.js", nil, true)
	c.expect(200, nil, "GET", "/ui/console.css", nil, true)
	c.expect(200, nil, "GET", "/ui/signet/index.js", nil, true)
	c.expect(200, nil, "GET", "/ui/signet/lib/keys.js", nil, true)
	c.expect(404, nil, "GET", "/ui/signet/lib/nothing.js", nil, true)
	c.expect(404, nil, "GET", "/ui/signet/app.js", nil, true)
	c.expect(404, nil, "GET", "/ui/nothing.js", nil, true)

	hk, client := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{"owner": "acme", "scopes": []string{"orders:read"}, "label": "ci", "expires": "90d"}, true))
	ek, _ := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{"owner": "acme", "alg": "ed25519", "public_key": publicKeyPEM(t)}, true))
	bare, _ := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{"owner": "globex"}, true))
	c.expect(200, root, "GET", "/v1/keys", nil, true)
	c.expect(200, root, "GET", "/v1/keys?owner=acme&all=true", nil, true)
	c.expect(200, root, "GET", "/v1/keys/"+hk.ID, nil, true)
	c.expect(200, root, "GET", "/v1/keys/"+ek.ID, nil, true)
	c.expect(200, root, "PUT", "/v1/keys/"+hk.ID+"/scopes", map[string]any{"scopes": []string{"orders:read", "orders:write"}}, true)
	_, successor := created(c.expect(201, root, "POST", "/v1/keys/"+hk.ID+"/rotate", map[string]any{"overlap": "1h"}, true))
	c.expect(409, root, "POST", "/v1/keys/"+hk.ID+"/rotate", nil, true)
	c.expect(201, root, "POST", "/v1/keys/"+ek.ID+"/rotate", map[string]any{"public_key": publicKeyPEM(t), "overlap": "0s"}, true)
	c.expect(201, root, "POST", "/v1/keys/"+bare.ID+"/rotate", nil, true)
	c.expect(200, root, "POST", "/v1/keys/"+bare.ID+"/revoke", nil, true)
	c.expect(409, root, "DELETE", "/v1/keys/"+bare.ID, nil, true)
	c.expect(200, root, "DELETE", "/v1/keys/"+ek.ID, nil, true)
	c.expect(200, root, "GET", "/v1/audit", nil, true)
	c.expect(200, root, "GET", "/v1/audit?key="+hk.ID, nil, true)
	c.expect(200, root, "GET", "/v1/audit?limit=2", nil, true)

	// Limits, metadata, pages, changes, disable and enable, usage.
	lk, _ := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{
		"owner": "acme", "scopes": []string{"orders:read"}, "metadata": map[string]any{"plan": "pro"},
		"rate_limit": map[string]any{"rate": "100/s", "burst": 200}, "uses": map[string]any{"remaining": 1000, "refill": "1000/day"},
	}, true))
	c.expect(200, root, "GET", "/v1/keys?limit=1", nil, true)
	var page keys.KeyPage
	if err := json.Unmarshal(c.expect(200, root, "GET", "/v1/keys?owner=acme&status=active&prefix=sk_&scope=orders:read&limit=1", nil, true), &page); err != nil || page.Next == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	c.expect(200, root, "GET", "/v1/keys?owner=acme&status=active&prefix=sk_&scope=orders:read&limit=1&cursor="+page.Next, nil, true)
	c.expect(200, root, "GET", "/v1/keys?status=revoked", nil, true)
	c.expect(400, root, "GET", "/v1/keys?status=lost", nil, false)
	c.expect(400, root, "GET", "/v1/keys?cursor=nonsense", nil, true)
	patch := func(want int, id, etag string, body any, conforming bool) http.Header {
		t.Helper()
		b, _ := json.Marshal(body)
		h := http.Header{"Content-Type": {"application/merge-patch+json"}}
		if etag != "" {
			h.Set("If-Match", etag)
		}
		code, rh, got := c.do(root, "PATCH", "/v1/keys/"+id, h, b, conforming)
		if code != want {
			t.Fatalf("PATCH %s %s: %d %s, want %d", id, b, code, got, want)
		}
		return rh
	}
	_, h, _ = c.do(root, "GET", "/v1/keys/"+lk.ID, nil, nil, true)
	etag := h.Get("ETag")
	h = patch(200, lk.ID, etag, map[string]any{"label": "renamed", "expires": "30d", "metadata": map[string]any{"plan": "team"},
		"scopes": []string{"orders:read", "orders:write"}, "rate_limit": map[string]any{"rate": "5/s"}, "uses": nil}, true)
	patch(412, lk.ID, etag, map[string]any{"label": "late"}, true)
	patch(200, lk.ID, h.Get("ETag"), map[string]any{"label": nil, "expires": nil, "metadata": nil, "rate_limit": nil}, true)
	patch(409, lk.ID, "", map[string]any{"label": "x", "version": 1}, true)
	patch(400, lk.ID, "", map[string]any{"colour": "red"}, false)
	patch(404, "sk_nope", "", map[string]any{"label": "x"}, true)
	patch(409, bare.ID, "", map[string]any{"label": "x"}, true)
	c.expect(200, root, "POST", "/v1/keys/"+lk.ID+"/disable", nil, true)
	c.expect(200, root, "POST", "/v1/keys/"+lk.ID+"/enable", nil, true)
	c.expect(409, root, "POST", "/v1/keys/"+bare.ID+"/disable", nil, true)
	c.expect(409, root, "POST", "/v1/keys/"+bare.ID+"/enable", nil, true)
	c.expect(404, root, "POST", "/v1/keys/sk_nope/enable", nil, true)
	hour := time.Now().UTC().Truncate(time.Hour)
	if err := e.keys.AddUsage(context.Background(), &keys.UsageBatch{ID: "openapi-test", Time: hour, Counts: []keys.UsageCount{
		{KeyID: lk.ID, Hour: hour, N: 3}, {KeyID: lk.ID, Hour: hour, Outcome: httpsig.ReasonBadSignature, N: 1},
		{KeyID: "", Hour: hour, Outcome: httpsig.ReasonUnknownKey, N: 2},
	}}); err != nil {
		t.Fatal(err)
	}
	c.expect(200, root, "GET", "/v1/keys/"+lk.ID+"/usage", nil, true)
	c.expect(200, root, "GET", "/v1/keys/"+lk.ID+"/usage?since=7d&until=0s", nil, true)
	c.expect(400, root, "GET", "/v1/keys/"+lk.ID+"/usage?since=yesterday", nil, true)
	c.expect(404, root, "GET", "/v1/keys/sk_nope/usage", nil, true)
	c.expect(200, root, "GET", "/v1/usage", nil, true)
	c.expect(200, root, "GET", "/v1/usage?owner=acme&by_key=true&since="+hour.Format(time.RFC3339), nil, true)
	c.expect(400, root, "GET", "/v1/usage?since=400d", nil, true)
	c.expect(400, root, "GET", "/v1/audit?limit=0", nil, false)

	// The verify API: a server's key with the verify scope describes a
	// request it received (here one signed by client): a verdict either way.
	_, verifier := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{"owner": "api-server", "scopes": []string{gateway.ScopeVerify}}, true))
	described := func() map[string]any {
		r, _ := http.NewRequest("GET", "https://api.example.com/v1/orders/7", nil)
		if err := client.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"method": "GET", "target": "/v1/orders/7", "authority": "api.example.com", "scheme": "https", "has_content": false,
			"headers": [][]string{{"Host", "api.example.com"}, {"Signature-Input", r.Header.Get("Signature-Input")}, {"Signature", r.Header.Get("Signature")}}}
	}
	call := described()
	c.expect(200, verifier, "POST", "/v1/verify", call, true)
	c.expect(200, verifier, "POST", "/v1/verify", call, true) // replayed: a refusal verdict
	c.expect(400, verifier, "POST", "/v1/verify", map[string]any{"method": "GET", "target": "/", "authority": "a", "scheme": "gopher", "headers": [][]string{}}, false)
	c.expect(403, root, "POST", "/v1/verify", described(), true)

	// Refusals, each of a kind the description lists.
	c.expect(400, root, "POST", "/v1/keys", map[string]any{"owner": "a", "colour": "red"}, false)
	c.expect(400, root, "POST", "/v1/keys", map[string]any{"owner": "a", "expires": "soon"}, true)
	c.expect(404, root, "GET", "/v1/keys/sk_nope", nil, true)
	c.expect(404, root, "POST", "/v1/keys/sk_nope/revoke", nil, true)
	c.expect(401, nil, "GET", "/v1/keys", nil, false)
	c.expect(403, client, "GET", "/v1/keys", nil, true)
	c.expect(413, root, "POST", "/v1/keys", bytes.Repeat([]byte(" "), 64<<10+1), false)
	revoked, rk := created(c.expect(201, root, "POST", "/v1/keys", map[string]any{"owner": "ops", "scopes": []string{"admin"}}, true))
	c.expect(200, root, "POST", "/v1/keys/"+revoked.ID+"/revoke", nil, true)
	c.expect(401, rk, "GET", "/v1/keys", nil, true)

	// A key store that cannot answer: the admin key, still cached, gets
	// the admin API's 500; a key never used, so not cached, the
	// middleware's 503.
	e.keys.Close()
	c.expect(500, root, "GET", "/v1/keys", nil, true)
	c.expect(503, successor, "GET", "/v1/keys", nil, true)
	c.expect(503, nil, "GET", "/healthz", nil, true)

	for _, op := range documentedRoutes(c.doc) {
		for status := range op.Responses.Map() {
			if !c.seen[op.OperationID+" "+status] && (status[0] == '2' || !c.seenAny(status)) {
				t.Errorf("no answer %s of %s was checked", status, op.OperationID)
			}
		}
	}
}

// seenAny reports whether an answer with status was checked for any
// operation.
func (c *apiCheck) seenAny(status string) bool {
	for k := range c.seen {
		if strings.HasSuffix(k, " "+status) {
			return true
		}
	}
	return false
}
