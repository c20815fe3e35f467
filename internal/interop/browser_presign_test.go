package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/gwtest"
)

// presignPage runs in Chromium: it loads an <img> and opens a WebSocket
// through the gateway with presigned URLs, as a browser's own elements
// do (no header of the page's choosing), then uses the single-use URLs
// again, and an expired one.
const presignPage = `<!doctype html>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>presigned</title>
<body>
<script>
const cfg = %s;
function img(url) {
	return new Promise(resolve => {
		const i = new Image();
		i.onload = () => resolve("load " + i.naturalWidth + "x" + i.naturalHeight);
		i.onerror = () => resolve("error");
		i.src = url;
		document.body.appendChild(i);
	});
}
function ws(url) {
	return new Promise(resolve => {
		const s = new WebSocket(url);
		s.onopen = () => s.send("hello from chromium");
		s.onmessage = e => { resolve(String(e.data)); s.close(); };
		s.onerror = () => resolve("error");
	});
}
async function status(url) {
	return (await fetch(url, {cache: "no-store"})).status;
}
window.signetTest = {async run() {
	const out = {};
	out.img = await img(cfg.img);
	out.ws = await ws(cfg.ws);
	out.imgAgain = await status(cfg.img);
	out.wsAgain = await ws(cfg.ws);
	out.expired = await img(cfg.expired);
	out.expiredStatus = await status(cfg.expired);
	return out;
}};
</script>
`

type presignPageResult struct {
	Img           string `json:"img"`
	WS            string `json:"ws"`
	ImgAgain      int    `json:"imgAgain"`
	WSAgain       string `json:"wsAgain"`
	Expired       string `json:"expired"`
	ExpiredStatus int    `json:"expiredStatus"`
}

// TestBrowserPresigned has headless Chromium load a page, an image and a
// WebSocket through the real gateway (gwtest runs gateway.New), each with
// a presigned URL made in Go: the page and the image as any browser
// element would fetch them, the WebSocket with the browser's own
// WebSocket, which cannot send a Signature field. Used again, the
// single-use URLs are refused; so is an expired one.
func TestBrowserPresigned(t *testing.T) {
	chromium := findChromium(t)
	keys := newKeys(t, rand.New(rand.NewPCG(defaultSeed, 0xb10b)))
	k := keys[0]
	var page atomic.Value // the HTML, made once the gateway's URL is known
	var pngBytes bytes.Buffer
	m := image.NewRGBA(image.Rect(0, 0, 3, 2))
	m.Set(1, 1, color.RGBA{R: 0xe0, A: 0xff})
	png.Encode(&pngBytes, m)
	var wsSeen atomic.Value
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(keys), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.RequestURI, httpsig.PresignSignatureParam) {
			http.Error(w, "the signature reached the upstream", http.StatusTeapot)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case "/page.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, page.Load())
		case "/img/dot.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(pngBytes.Bytes())
		case "/ws":
			wsSeen.Store(r.RequestURI)
			c, err := websocket.Accept(w, r, nil) // same origin: the page came through the gateway
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, msg, err := c.Read(r.Context())
			if err == nil {
				c.Write(r.Context(), typ, append([]byte("echo: "), msg...))
			}
			c.Close(websocket.StatusNormalClosure, "")
		default:
			http.NotFound(w, r)
		}
	})})
	signer := &httpsig.Signer{Key: k.signer, KeyID: k.id}
	presign := func(s *httpsig.Signer, target string, single bool) string {
		u, err := s.Presign(gw.URL+target, httpsig.PresignOptions{Expires: 5 * time.Minute, SingleUse: single})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	old := *signer
	old.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	wsURL := presign(signer, "/ws?room=7", true)
	cfg, _ := json.Marshal(map[string]string{
		"img":     presign(signer, "/img/dot.png?v=1", true),
		"ws":      "ws" + strings.TrimPrefix(wsURL, "http"),
		"expired": presign(&old, "/img/dot.png?v=2", false),
	})
	page.Store(fmt.Sprintf(presignPage, cfg))

	got := evalInPage[presignPageResult](t, chromium, presign(signer, "/page.html", false), `window.signetTest.run()`)
	want := presignPageResult{Img: "load 3x2", WS: "echo: hello from chromium", ImgAgain: 401, WSAgain: "error", Expired: "error", ExpiredStatus: 401}
	if got != want {
		t.Fatalf("in Chromium:\n got %+v\nwant %+v", got, want)
	}
	if seen, _ := wsSeen.Load().(string); seen != "/ws?room=7" {
		t.Fatalf("the WebSocket reached the upstream as %q", seen)
	}
}
