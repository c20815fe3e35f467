package memory

import (
	"bytes"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay"
)

// TestRestart has a server accept signed requests, restart, and be sent
// them again: after a graceful restart (snapshot saved and loaded) and
// after a crash (no snapshot), no capture passes, and new requests do,
// at once after a graceful restart and once the skew has passed after a
// crash. A store without a horizon, as before, lets the captures through.
func TestRestart(t *testing.T) {
	tests := []struct {
		name      string
		horizon   bool
		graceful  bool
		replays   bool // captures pass after the restart
		unvouched bool // captures are refused as unvouched for
		wait      bool // new requests wait for the skew
	}{
		{name: "Graceful", horizon: true, graceful: true},
		{name: "Crash", horizon: true, unvouched: true, wait: true},
		{name: "NoHorizon", replays: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testtime.NewClock(epoch)
			key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte{3}, 32))
			path := filepath.Join(t.TempDir(), "signet.db.nonces")
			server := func() *httpsig.Verifier {
				return &httpsig.Verifier{
					Keys:   httpsig.KeyMap{"sk_1": key},
					Nonces: New(Options{Now: clock.Now, Horizon: tt.horizon}),
					Now:    clock.Now,
				}
			}
			sign := func() (*http.Request, []byte) {
				body := []byte(`{"n":1}`)
				r, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v1/orders", bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				signer := httpsig.Signer{Key: key, KeyID: "sk_1", Now: clock.Now}
				if err := signer.SignRequest(r, body); err != nil {
					t.Fatal(err)
				}
				return r, body
			}

			v := server()
			clock.Advance(httpsig.DefaultMaxSkew + time.Second) // past the first start's horizon
			type capture struct {
				r    *http.Request
				body []byte
			}
			var captured []capture
			for range 20 {
				r, body := sign()
				if _, err := v.VerifyRequest(r, body); err != nil {
					t.Fatalf("first use: Verify = %v", err)
				}
				captured = append(captured, capture{r, body})
				clock.Advance(time.Second)
			}
			if tt.graceful {
				if err := v.Nonces.(*Store).SaveFile(path); err != nil {
					t.Fatal(err)
				}
			}

			clock.Advance(2 * time.Second) // the restart
			v = server()
			if err := v.Nonces.(*Store).LoadFile(path); tt.graceful && err != nil {
				t.Fatalf("LoadFile = %v", err)
			}
			passed := 0
			for _, c := range captured {
				_, err := v.VerifyRequest(c.r, c.body)
				if err == nil {
					passed++
					continue
				}
				var ve *httpsig.VerifyError
				if !errors.As(err, &ve) || ve.Reason != httpsig.ReasonReplayed || errors.Is(err, replay.ErrUnvouched) != tt.unvouched {
					t.Fatalf("replay after the restart: Verify = %v; want replayed (unvouched for: %v)", err, tt.unvouched)
				}
			}
			if want := map[bool]int{true: len(captured)}[tt.replays]; passed != want {
				t.Errorf("%d of %d captures passed after the restart, want %d", passed, len(captured), want)
			}

			r, body := sign()
			_, err := v.VerifyRequest(r, body)
			if tt.wait {
				if !errors.Is(err, replay.ErrUnvouched) {
					t.Errorf("request signed at once after a crash: Verify = %v, want ErrUnvouched", err)
				}
				clock.Advance(httpsig.DefaultMaxSkew)
				r, body = sign()
				_, err = v.VerifyRequest(r, body)
			}
			if err != nil {
				t.Errorf("new request after the restart: Verify = %v, want it accepted", err)
			}
		})
	}
}
