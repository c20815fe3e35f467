package redis

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	long := strings.Repeat("x", maxReply)
	tests := []struct {
		in   string
		want string // the reply, as reply.String; "" for a partial one
		err  bool
	}{
		{in: "+OK\r\n", want: `+"OK"`},
		{in: "$-1\r\n", want: "nil"},
		{in: "$13\r\n1700000000000\r\n", want: `"1700000000000"`},
		{in: "$0\r\n\r\n", want: `""`},
		{in: ":0\r\n", want: "0"},
		{in: ":-9223372036854775808\r\n", want: "-9223372036854775808"},
		{in: ":9223372036854775807\r\n", want: "9223372036854775807"},
		{in: "-ERR wrong\r\n", want: "error ERR wrong"},
		{in: "$" + strconv.Itoa(maxReply) + "\r\n" + long + "\r\n", want: strconv.Quote(long)},
		{in: "+OK"},
		{in: "+OK\r"},
		{in: "$13\r\n1700000000000\r"},
		{in: "$13\r\n17"},
		{in: ""},
		{in: "+OK\n", err: true},
		{in: "\r\n", err: true},
		{in: ":9223372036854775808\r\n", err: true},
		{in: ":1x\r\n", err: true},
		{in: ":\r\n", err: true},
		{in: "$-2\r\n", err: true},
		{in: "$3\r\nabcd\r\n", err: true},
		{in: "$" + strconv.Itoa(maxReply+1) + "\r\n", err: true},
		{in: "+" + long + "x", err: true},
		{in: "*2\r\n$1\r\na\r\n$1\r\nb\r\n", err: true},
		{in: "_\r\n", err: true},
		{in: "%1\r\n", err: true},
	}
	for _, tt := range tests {
		r, n, err := parseReply([]byte(tt.in))
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		switch {
		case tt.err:
			if err == nil || !errors.Is(err, errProtocol) {
				t.Errorf("parseReply(%q) = %v, %d, %v; want a protocol error", name, r, n, err)
			}
		case err != nil:
			t.Errorf("parseReply(%q): %v", name, err)
		case tt.want == "" && n != 0:
			t.Errorf("parseReply(%q) = %v, %d; want a partial reply", name, r, n)
		case tt.want != "" && (n != len(tt.in) || r.String() != tt.want):
			t.Errorf("parseReply(%q) = %v, %d; want %s, %d", name, r, n, tt.want, len(tt.in))
		}
	}
}

// appendReply serialises r.
func appendReply(b []byte, r reply) []byte {
	switch r.kind {
	case kindNil:
		return append(b, "$-1\r\n"...)
	case kindString:
		return appendBulk(b, r.str)
	case kindStatus:
		return append(append(append(b, '+'), r.str...), '\r', '\n')
	case kindInt:
		return append(strconv.AppendInt(append(b, ':'), r.n, 10), '\r', '\n')
	}
	return append(append(append(b, '-'), r.err.Error()...), '\r', '\n')
}

// FuzzParseReply checks that parseReply parses a reply only once all of
// it is there, the same whatever follows it (the reader parses again, from
// the same place, as more is read), and that a reply serialised again
// parses the same.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "$-1\r\n", "$13\r\n1700000000000\r\n", ":1\r\n", ":0\r\n",
		"-ERR wrong number of arguments\r\n", "-NOPERM no permissions\r\n",
		"+OK\r\n$-1\r\n", ":1\r\n$13\r\n1700000000000\r\n", "$3\r\nab\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := parseReply(b)
		if n < 0 || n > len(b) || err != nil && n != 0 {
			t.Fatalf("parseReply(%q) = %v, %d, %v", b, r, n, err)
		}
		if n == 0 {
			return
		}
		if err == nil && r.kind == kindError && !strings.HasPrefix(string(b), "-") {
			t.Fatalf("parseReply(%q) = an error reply", b)
		}
		for k := range n {
			if _, m, err := parseReply(b[:k]); m != 0 || err != nil {
				t.Fatalf("parseReply(%q), a part of %q, = %d, %v; want a partial reply", b[:k], b[:n], m, err)
			}
		}
		if r2, m, err := parseReply(b[:n]); m != n || err != nil || r2 != r {
			t.Fatalf("parseReply(%q) = %v, %d, %v; with more after it, %v, %d", b[:n], r2, m, err, r, n)
		}
		again := appendReply(nil, r)
		if r2, m, err := parseReply(again); m != len(again) || err != nil || r2.String() != r.String() {
			t.Fatalf("parseReply(%q) = %v; serialised as %q, it parses as %v, %d, %v", b[:n], r, again, r2, m, err)
		}
	})
}
