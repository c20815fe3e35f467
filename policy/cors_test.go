package policy

import (
	"strings"
	"testing"
	"time"
)

func TestCORS(t *testing.T) {
	p := mustParse(t, "upstream: http://a:1\ncors:\n  origins: [\"HTTPS://App.Example.com:443\", \"http://localhost:3000/\"]\n")
	if p.CORS == nil || strings.Join(p.CORS.Origins, " ") != "https://app.example.com http://localhost:3000" || p.CORS.MaxAge != DefaultCORSMaxAge {
		t.Fatalf("cors %+v", p.CORS)
	}
	for origin, want := range map[string]bool{
		"https://app.example.com": true, "http://localhost:3000": true, "https://app.example.com:443": false,
		"http://app.example.com": false, "null": false, "": false,
	} {
		if got := p.CORS.Allows(origin); got != want {
			t.Errorf("Allows(%q) = %v", origin, got)
		}
	}
	if p := mustParse(t, "upstream: http://a:1\n"); p.CORS != nil || p.CORS.Allows("http://x") {
		t.Errorf("no cors key: %+v", p.CORS)
	}
	if p := mustParse(t, "upstream: http://a:1\ncors: {origins: ['*'], max_age: 30s}\n"); !p.CORS.Allows("http://anything:1") || p.CORS.MaxAge != 30*time.Second {
		t.Errorf("*: %+v", p.CORS)
	}

	p, err := Parse("", nil, Options{Flags: map[string]string{"upstream": "http://a:1", FlagCORSOrigin: "http://localhost:3000,http://127.0.0.1:3000"}, Defaults: map[string]string{FlagCORSOrigin: ""}})
	if err != nil || p.CORS == nil || len(p.CORS.Origins) != 2 {
		t.Fatalf("flag: %v %+v", err, p)
	}

	for yaml, want := range map[string]string{
		"cors: {origins: [https://a.example.com/app]}":   "test.yaml:2:18: cors origins: \"https://a.example.com/app\" is not an origin",
		"cors: {origins: ['*.example.com']}":             "is not an origin",
		"cors: {origins: [ftp://a]}":                     "is not an origin",
		"cors: {max_age: 1m}":                            "cors needs origins",
		"cors: {origins: [http://a], credentials: true}": "credentials",
		"cors: [http://a]":                               "cors",
	} {
		_, err := Parse("test.yaml", []byte("upstream: http://a:1\n"+yaml+"\n"), Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", yaml, err, want)
		}
	}
	if _, err := Parse("", nil, Options{Flags: map[string]string{"upstream": "http://a:1", FlagCORSOrigin: "app.example.com"}}); err == nil || !strings.Contains(err.Error(), "--cors-origin") {
		t.Errorf("bad flag: %v", err)
	}
}
