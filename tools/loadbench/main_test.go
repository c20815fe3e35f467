package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestNginx: the generated configuration starts nginx as a reverse proxy
// that passes a POST and its body to the upstream and the answer back,
// and stop ends it.
func TestNginx(t *testing.T) {
	bin, err := lookNginx("nginx")
	if err != nil {
		t.Skip("no nginx installed (Debian: nginx-light)")
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.Host+" "+r.URL.RequestURI()+" "+string(b))
	}))
	defer up.Close()
	stop, url, pid, err := startNginx(bin, t.TempDir(), up.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err != nil {
		stop()
		t.Fatalf("nginx's process %d: %v", pid, err)
	}
	resp, err := http.Post(url+"/v1/orders?customer=42", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(url, "http://")
	if want := "POST " + host + " /v1/orders?customer=42 {\"a\":1}"; string(b) != want {
		t.Errorf("through nginx: %q, want %q", b, want)
	}
	stop()
	if _, err := http.Get(url); err == nil {
		t.Error("nginx still answers after stop")
	}
}

func TestParseLevels(t *testing.T) {
	got, err := parseLevels("50, 80,100")
	if err != nil || len(got) != 3 || got[0] != 50 || got[2] != 100 {
		t.Errorf("parseLevels: %v, %v", got, err)
	}
	for _, bad := range []string{"0", "101", "x", "-5"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted", bad)
		}
	}
}

func TestMedianResult(t *testing.T) {
	rs := []result{
		{name: "a", requests: 10, errors: 1, rps: 300, p99: 9 * time.Millisecond},
		{name: "a", requests: 20, rps: 100, p99: time.Millisecond},
		{name: "a", requests: 30, rps: 200, p99: 5 * time.Millisecond},
	}
	got := medianResult(rs)
	if got.rps != 200 || got.p99 != 5*time.Millisecond || got.requests != 60 || got.errors != 1 || got.name != "a" {
		t.Errorf("medianResult = %+v", got)
	}
}

// TestCPUTime: the CPU time of a process (here this one) is read, and
// grows as it works.
func TestCPUTime(t *testing.T) {
	before := cpuTime([]int{os.Getpid()})
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if after := cpuTime([]int{os.Getpid()}); after-before < 100*time.Millisecond {
		t.Errorf("CPU time grew by %v in a 300 ms busy loop (%d turns)", after-before, x)
	}
	if got := cpuTime([]int{0, -1}); got != 0 {
		t.Errorf("CPU time of no process: %v", got)
	}
}
