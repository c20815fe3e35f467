package redis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
)

// TestFastTLS runs the fast path over rediss:// to a server of the test's
// own with a self-signed certificate.
func TestFastTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	r := testenv.StartRedis(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
	// The URL cannot name a CA: skip_verify, for the test.
	const timeout = 200 * time.Millisecond
	s := fastStore(t, fmt.Sprintf("rediss://127.0.0.1:%d?skip_verify=true", port), Options{KeyPrefix: "p:", Timeout: timeout})
	if s.fast.tls == nil {
		t.Fatal("the fast path does not use TLS")
	}
	ctx := t.Context()
	now := time.Now()
	until := now.Add(time.Minute)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				nonce := fmt.Sprintf("n-%d-%d", g, i)
				if err := s.Remember(ctx, "sk_1", nonce, now, until); err != nil {
					t.Errorf("Remember = %v", err)
					return
				}
				if err := s.Remember(ctx, "sk_1", nonce, now, until); !errors.Is(err, httpsig.ErrReplayed) {
					t.Errorf("replay = %v, want ErrReplayed", err)
					return
				}
			}
		})
	}
	wg.Wait()

	// A read that times out halfway leaves the TLS connection usable, and a
	// hung server fails calls at the timeout.
	r.Hang()
	for i := range 3 {
		began := time.Now()
		failsClosed(t, "Remember with Redis stopped", s.Remember(ctx, "sk_1", "hung-"+strconv.Itoa(i), now, until))
		if took := time.Since(began); took > timeout+300*time.Millisecond {
			t.Errorf("Remember with Redis stopped took %v", took)
		}
	}
	r.Resume()
	recovers(t, s, "n-0-0", now, until)
}
