package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	signetjs "github.com/signet-dev/signet/clients/js"
)

// The admin console is static files, embedded in the binary and served by
// the admin listener without a signature: they hold nothing of this
// deployment. The page signs every call it makes to the admin API in the
// browser, with the JavaScript client's ES modules, served as they are in
// clients/js under /ui/signet/: no build step, no other origin.
//
//go:embed console
var consoleFiles embed.FS

// consoleCSP lets the page run its own scripts and styles and talk to its
// own origin, and nothing else: no inline script, no eval, no frame, no
// form posted anywhere.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// consoleFile is one file of the console, ready to serve.
type consoleFile struct {
	data        []byte
	contentType string
	etag        string
}

// consoleAssets maps the paths under /ui/ to their files: the console's
// own, and signet/index.js and signet/lib/*.js of the JavaScript client.
var consoleAssets = func() map[string]*consoleFile {
	m := map[string]*consoleFile{}
	add := func(fsys fs.FS, root, prefix string) {
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			m[prefix+strings.TrimPrefix(strings.TrimPrefix(p, root), "/")] = &consoleFile{
				data: data, contentType: contentTypes[path.Ext(p)],
				etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			}
			return nil
		})
		if err != nil {
			panic("gateway: console files: " + err.Error())
		}
	}
	add(consoleFiles, "console", "")
	add(signetjs.Files, ".", "signet/")
	return m
}()

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// serveConsole serves the console's page at / and its files under /ui/.
func serveConsole(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if r.URL.Path == "/" {
		name = "index.html"
	}
	f := consoleAssets[name]
	if f == nil || f.contentType == "" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}
