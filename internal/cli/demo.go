package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

func newCmdDemo(e *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Show the gateway at work on loopback, then exit",
		Long: "Show the gateway at work on loopback: a sample API, the gateway in front of it\n" +
			"on the embedded defaults, a client key, and requests that pass and fail.\n" +
			"Everything stops when it returns; exit 0 when every step came out as expected.",
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error { return demo(e) },
	}
}

type demoEnv struct {
	e       *Env
	gateway string
	signer  *httpsig.Signer
	ok      int
	steps   int
}

func demo(e *Env) error {
	dir, err := os.MkdirTemp("", "signet-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w := e.Stdout
	fmt.Fprintln(w, "Signet demo: a sample API, the signet gateway in front of it, and a client.")
	fmt.Fprintln(w, "Everything listens on 127.0.0.1 and stops when the demo ends.")
	fmt.Fprintln(w)

	quiet := &Env{Stdin: e.Stdin, Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }, Now: e.Now, Context: e.Context}
	store, err := (&storeFlags{db: filepath.Join(dir, "signet.db")}).open(quiet, createAlways)
	if err != nil {
		return err
	}
	ks := store.Service
	defer ks.Close()

	api, err := listen(http.HandlerFunc(sampleAPI))
	if err != nil {
		return err
	}
	defer api.Close()
	upstream, _ := url.Parse("http://" + api.Addr)
	g, err := gateway.New(gateway.Config{
		Upstream: upstream, Admin: ks,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	gw, err := listen(g.Handler())
	if err != nil {
		return err
	}
	defer gw.Close()

	created, err := ks.Create(e.Context, keys.CreateRequest{Owner: "demo-client", Scopes: []string{"orders:write"}, Label: "signet demo", Actor: "demo"})
	if err != nil {
		return err
	}
	key, err := httpsig.NewHMACKey(created.Secret)
	if err != nil {
		return err
	}
	d := &demoEnv{e: e, gateway: "http://" + gw.Addr, signer: &httpsig.Signer{Key: key, KeyID: created.Key.ID, Now: e.Now}}
	fmt.Fprintf(w, "  sample API  http://%s\n", api.Addr)
	fmt.Fprintf(w, "  gateway     http://%s   (signet serve: SQLite key store, in-memory replay cache)\n", gw.Addr)
	fmt.Fprintf(w, "  client key  %s   (hmac-sha256, owner demo-client; the secret was shown once)\n\n", created.Key.ID)

	body := []byte(`{"sku":"B-1","qty":2}`)
	first := d.newRequest(body)
	if err := d.signer.SignRequest(first, body); err != nil {
		return err
	}
	fmt.Fprintf(w, "The client signs %s %s with its key; the request carries:\n", first.Method, first.URL.RequestURI())
	for _, k := range []string{"Content-Digest", "Signature-Input", "Signature"} {
		fmt.Fprintf(w, "  %s: %s\n", k, first.Header.Get(k))
	}
	fmt.Fprintln(w)

	d.step("A signed request", first.Clone(e.Context), body, 200, "")

	// Intercepted before it arrived: the gateway spends a nonce before it
	// reads the body, so the first request's would be refused as a replay.
	tampered := d.newRequest(body)
	if err := d.signer.SignRequest(tampered, body); err != nil {
		return err
	}
	d.step("Another signed request, its body changed on the way", tampered, []byte(`{"sku":"B-1","qty":200}`), 401, "digest-mismatch")

	d.step("The first request sent again (a replay)", first.Clone(e.Context), body, 401, "replayed")

	unsigned := d.newRequest(body)
	d.step("A request without a signature", unsigned, body, 401, "missing-signature")

	if err := ks.Revoke(e.Context, created.Key.ID, "demo"); err != nil {
		return err
	}
	fresh := d.newRequest(body)
	if err := d.signer.SignRequest(fresh, body); err != nil {
		return err
	}
	d.step("A freshly signed request after the key is revoked", fresh, body, 401, "key-revoked")

	fmt.Fprintf(w, "%d of %d outcomes as expected.\n", d.ok, d.steps)
	if d.ok != d.steps {
		return fmt.Errorf("%d outcomes were not as expected", d.steps-d.ok)
	}
	fmt.Fprintln(w, "\nNext: put the gateway in front of your API with")
	fmt.Fprintln(w, "  signet keys create --owner my-client            # prints the client's secret once")
	fmt.Fprintln(w, "  signet serve --upstream http://127.0.0.1:3000   # your API")
	return nil
}

func (d *demoEnv) newRequest(body []byte) *http.Request {
	r, _ := http.NewRequestWithContext(d.e.Context, http.MethodPost, d.gateway+"/v1/orders?customer=42", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// step sends r with body and reports whether the gateway answered with
// the status and reason expected.
func (d *demoEnv) step(title string, r *http.Request, body []byte, wantStatus int, wantReason string) {
	w := d.e.Stdout
	d.steps++
	fmt.Fprintf(w, "%d. %s\n", d.steps, title)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		fmt.Fprintf(w, "   -> error: %v\n\n", err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var got string
	if resp.StatusCode == http.StatusOK {
		got = "   -> 200 OK, the API answered: " + strings.TrimSpace(string(data))
	} else {
		var p middleware.Problem
		json.Unmarshal(data, &p)
		reason := p.Type[strings.LastIndexByte(p.Type, '/')+1:]
		got = fmt.Sprintf("   -> %d %s: %s", resp.StatusCode, reason, p.Detail)
		if reason != wantReason {
			got += fmt.Sprintf("   (expected %s)", wantReason)
			resp.StatusCode = 0
		}
	}
	fmt.Fprintln(w, got)
	fmt.Fprintln(w)
	if resp.StatusCode == wantStatus {
		d.ok++
	}
}

// sampleAPI stands for the API behind the gateway: it reports who called.
func sampleAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"owner":  r.Header.Get(gateway.HeaderOwner),
		"key_id": r.Header.Get(gateway.HeaderKeyID),
		"scopes": r.Header.Get(gateway.HeaderScopes),
	})
}

// listen serves h on a free loopback port.
func listen(h http.Handler) (*http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h}
	go srv.Serve(ln)
	return srv, nil
}
