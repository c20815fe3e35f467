package reqfixture

import (
	"encoding/json"
	"io"
	"testing"
)

func TestReference(t *testing.T) {
	body := Body()
	if len(body) != BodySize || !json.Valid(body) {
		t.Fatalf("body of %d bytes, valid JSON %v", len(body), json.Valid(body))
	}
	sent, got := NewRequest(body), Received(body)
	if sent.URL.String() != URL || got.Host != "api.example.com" || got.RequestURI != "/v1/orders?customer=42&expand=items" {
		t.Fatalf("sent %s; received host %s, target %s", sent.URL, got.Host, got.RequestURI)
	}
	for _, b := range []io.Reader{sent.Body, got.Body} {
		read, _ := io.ReadAll(b)
		if string(read) != string(body) {
			t.Fatal("the request does not carry the body")
		}
	}
}
