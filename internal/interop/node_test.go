package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// crosscheck is the Node.js side: clients/js/tools/crosscheck.mjs, which
// reads JSON lines and answers each with one line.
type crosscheck struct {
	node, script string
}

// newCrosscheck finds node and the script. Without node the test fails
// under CI=true and is skipped elsewhere.
func newCrosscheck(t *testing.T) *crosscheck {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed for the cross-language check: %v", err)
		}
		t.Skipf("node is needed for the cross-language check: %v", err)
	}
	script, err := filepath.Abs("../../clients/js/tools/crosscheck.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	return &crosscheck{node: node, script: script}
}

// nodeRequest is a request as crosscheck.mjs takes it.
type nodeRequest struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers"`
	BodyB64 string      `json:"body_b64,omitempty"`
}

func toNode(w wireRequest) nodeRequest {
	r := nodeRequest{Method: w.Method, URL: w.url(), Headers: w.Header}
	if r.Headers == nil {
		r.Headers = [][2]string{}
	}
	if len(w.Body) > 0 {
		r.BodyB64 = base64.StdEncoding.EncodeToString(w.Body)
	}
	return r
}

type signInput struct {
	Op         string      `json:"op"`
	Request    nodeRequest `json:"request"`
	KeyID      string      `json:"keyId"`
	Alg        string      `json:"alg"`
	Key        string      `json:"key"`
	Created    int64       `json:"created"`
	Nonce      string      `json:"nonce"`
	Components []string    `json:"components,omitempty"`
	Expires    int64       `json:"expires,omitempty"`
	Tag        string      `json:"tag,omitempty"`
}

type signOutput struct {
	Headers [][2]string `json:"headers"`
	Base    string      `json:"base"`
	Error   string      `json:"error"`
}

type nodeKey struct {
	Alg string `json:"alg"`
	Key string `json:"key"`
}

type verifyInput struct {
	Op      string             `json:"op"`
	Request nodeRequest        `json:"request"`
	Keys    map[string]nodeKey `json:"keys"`
	Now     int64              `json:"now"`
}

type verifyOutput struct {
	OK      bool   `json:"ok"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func verifyLine(w wireRequest, keys []*testKey) verifyInput {
	in := verifyInput{Op: "verify", Request: toNode(w), Keys: map[string]nodeKey{}, Now: now}
	for _, k := range keys {
		in.Keys[k.id] = nodeKey{Alg: string(k.alg), Key: k.public}
	}
	return in
}

// run sends the lines to one crosscheck.mjs process and decodes its
// answers, one per line, into outs (a pointer to a slice).
func (c *crosscheck) run(t *testing.T, lines []any, outs any) {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.SetEscapeHTML(false)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.node, c.script)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crosscheck.mjs: %v\n%s", err, stderr.Bytes())
	}
	var raw []json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		raw = append(raw, append(json.RawMessage(nil), sc.Bytes()...))
	}
	if len(raw) != len(lines) {
		t.Fatalf("crosscheck.mjs answered %d lines to %d", len(raw), len(lines))
	}
	arr, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(arr, outs); err != nil {
		t.Fatalf("crosscheck.mjs: %v", err)
	}
}

// reproducer returns a crosscheck.mjs input line, for a report.
func reproducer(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(err)
	}
	return b.String()
}
