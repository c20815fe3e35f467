package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"signet": func() { os.Exit(Main(os.Args[1:])) },
	})
}

// TestScripts runs the command-line scenarios in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// A race-detector build sleeps 1 s on every exit; not here.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			if err := setupRequestServer(env); err != nil {
				return err
			}
			return setupGateways(env)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"get":      cmdGet,
			"exchange": cmdExchange,
			"replace":  cmdReplace,
			// crlf FILE rewrites FILE with CRLF line endings, as on the wire.
			"crlf": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: crlf FILE")
				}
				data := ts.ReadFile(args[0])
				data = strings.ReplaceAll(data, "\n", "\r\n")
				ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(data), 0o644))
			},
			// status CODE PROG ARG... runs PROG, which must exit with CODE;
			// its output is then stdout and stderr, as after exec.
			"status": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: status CODE PROG ARG...")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				var exitErr *exec.ExitError
				if err := ts.Exec(args[1], args[2:]...); errors.As(err, &exitErr) {
					got = exitErr.ExitCode()
				} else {
					ts.Check(err)
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
		},
	})
}

// parseOptions parses args with the command newCmd makes, in the given
// environment, and returns the options its run would get, without running
// it.
func parseOptions[O any](t *testing.T, newCmd func(*Env, func(*O) error) *cobra.Command, env map[string]string, args ...string) (*O, error) {
	t.Helper()
	e := &Env{
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
		Getenv: func(k string) string { return env[k] }, Now: time.Now, Context: context.Background(),
	}
	var got *O
	cmd := newCmd(e, func(o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

// run runs a command line with stdin and returns its exit code and output.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }, Now: time.Now, Context: context.Background(),
	}
	code := Run(e, args)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, "", "keygen", "--alg", "hmac-sha256", "--out", dir+"/h"); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	key := dir + "/h.key"
	large := dir + "/large.key"
	os.WriteFile(large, bytes.Repeat([]byte("A"), maxKeyFileBytes+1), 0o600)
	signed := func() string {
		_, out, _ := run(t, "GET /x HTTP/1.1\nHost: a.example\n\n", "sign", "--key-id", "k", "--key", key)
		return out
	}()
	for _, tt := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"no command", "", nil, exitUsage, ""},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"help", "", []string{"help"}, exitOK, ""},
		{"sign -h", "", []string{"sign", "-h"}, exitOK, ""},
		{"unknown flag", "", []string{"sign", "--bogus"}, exitUsage, "signet sign: unknown flag: --bogus"},
		{"bad flag value", "", []string{"sign", "--created", "soon"}, exitUsage, `invalid argument "soon" for "--created"`},
		{"sign without key id", "", []string{"sign", "--key", key}, exitUsage, "--key-id is required"},
		{"sign unreadable key", "", []string{"sign", "--key-id", "k", "--key", dir + "/missing"}, exitUsage, "no such file"},
		{"sign key file too large", "", []string{"sign", "--key-id", "k", "--key", large}, exitUsage, "larger than a key file"},
		{"verify key file too large", "", []string{"verify", "--key", large}, exitUsage, "larger than a key file"},
		{"sign unknown alg", "", []string{"sign", "--key-id", "k", "--key", key, "--alg", "hmac-md5"}, exitUsage, "unknown algorithm"},
		{"sign alg mismatch", "", []string{"sign", "--key-id", "k", "--key", key, "--alg", "ed25519"}, exitUsage, "cannot be used with algorithm ed25519"},
		{"sign bad scheme", "", []string{"sign", "--key-id", "k", "--key", key, "--scheme", "ftp"}, exitUsage, "--scheme"},
		{"sign empty stdin", "", []string{"sign", "--key-id", "k", "--key", key}, exitRefused, "no HTTP message"},
		{"sign garbled request", "NOT HTTP\n\n", []string{"sign", "--key-id", "k", "--key", key}, exitRefused, "not a request line"},
		{"sign bad components", "GET / HTTP/1.1\nHost: a\n\n", []string{"sign", "--key-id", "k", "--key", key, "--components", "@nope"}, exitUsage, "unknown derived component"},
		{"sign stray argument", "", []string{"sign", "--key-id", "k", "--key", key, "extra"}, exitUsage, "unexpected argument"},
		{"verify good", signed, []string{"verify", "--key", key}, exitOK, ""},
		{"verify without key", signed, []string{"verify"}, exitUsage, "--key is required"},
		{"verify unsigned", "GET / HTTP/1.1\nHost: a\n\n", []string{"verify", "--key", key}, exitRefused, "missing-signature"},
		{"verify garbled header", "GET / HTTP/1.1\nHost: a\nSignature-Input: ((\nSignature: x\n\n", []string{"verify", "--key", key}, exitRefused, "malformed-signature"},
		{"verify wrong key id", signed, []string{"verify", "--key", key, "--key-id", "other"}, exitRefused, "unknown-key"},
		{"verify stale", signed, []string{"verify", "--key", key, "--now", "4000000000"}, exitRefused, "expired"},
		{"verify bad max-age", signed, []string{"verify", "--key", key, "--max-age", "-1s"}, exitUsage, "--max-age"},
		{"keygen without out", "", []string{"keygen"}, exitUsage, "--out is required"},
		{"keygen unknown alg", "", []string{"keygen", "--out", dir + "/x", "--alg", "dsa"}, exitUsage, "unknown algorithm"},
		{"keygen exists", "", []string{"keygen", "--out", dir + "/h", "--alg", "hmac-sha256"}, exitRefused, "exists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr, tt.stderr)
			}
			if tt.code == exitRefused && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("stderr is more than one line: %q", stderr)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("httpsig: unknown algorithm \"x\""), `unknown algorithm "x"`},
		{fmt.Errorf("--alg: %w", errors.New("httpsig: unknown algorithm")), "--alg: unknown algorithm"},
		{fmt.Errorf("%w: scope \"X\" is not valid", keys.ErrInvalid), `scope "X" is not valid`},
		{fmt.Errorf("%w: key sk_1 is revoked", keys.ErrConflict), "key sk_1 is revoked"},
		{fmt.Errorf("master key file m.key: %w", errors.New("keys: master key is empty")), "master key file m.key: master key is empty"},
		{fmt.Errorf("client: %w", errors.New("httpsig: a: b")), "a: b"},
		{errors.New("failed to connect:\n\tserver error\n  (retry)\n\n"), "failed to connect: server error; (retry)"},
		{errors.New("mykeys: x"), "mykeys: x"},
	} {
		if got := message(tt.err); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestSignVerifyOptions(t *testing.T) {
	env := map[string]string{keyIDEnv: "env-id", keyFileEnv: "env.key", "SIGNET_DB": "/d/keys.db"}
	s, err := parseOptions(t, newCmdSign, env, "--created", "1700000000", "--no-alg")
	if err != nil || s.keyID != "env-id" || s.keyFile != "env.key" || s.created != 1700000000 || !s.noAlg || s.label != "sig1" || s.scheme != "https" {
		t.Errorf("sign options = %+v, %v", s, err)
	}
	s, err = parseOptions(t, newCmdSign, env, "--key-id", "k", "--key", "f")
	if err != nil || s.keyID != "k" || s.keyFile != "f" {
		t.Errorf("sign flags over the environment = %+v, %v", s, err)
	}
	for _, tt := range []struct {
		name     string
		env      map[string]string
		args     []string
		useStore bool
		err      string
	}{
		{name: "key", args: []string{"--key", "k.pub"}},
		{name: "db", args: []string{"--db", "x.db"}, useStore: true},
		{name: "SIGNET_DB", env: env, useStore: true},
		{name: "key over SIGNET_DB", env: env, args: []string{"--key", "k.pub"}},
		{name: "db and key", args: []string{"--db", "x.db", "--key", "k.pub"}, err: "contradict"},
		{name: "nothing", err: "--key is required (or --db, or $SIGNET_DB"},
		{name: "require empty", args: []string{"--key", "k", "--require="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(t, newCmdVerify, tt.env, tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || o.useStore != tt.useStore {
				t.Fatalf("options %+v, %v; want useStore %v", o, err, tt.useStore)
			}
			if tt.name == "require empty" && (!o.requireSet || o.require != "") {
				t.Errorf("--require= gave %+v", o)
			}
		})
	}
}
