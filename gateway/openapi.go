package gateway

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"time"
)

// openAPI is the OpenAPI 3.1 description of the admin listener, served as
// it is kept in the repository, so that what tools download is what the
// tests check against the routes and the real answers.
//
//go:embed openapi.json
var openAPI []byte

// openAPIETag lets tools that poll the document revalidate it cheaply.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPI)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}()

// serveOpenAPI needs no signature: the document is the same for every
// deployment and says nothing about this one, like /healthz and /metrics
// on the same listener.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", openAPIETag)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(openAPI))
}
