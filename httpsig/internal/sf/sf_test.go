package sf

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSerialize(t *testing.T) {
	tests := []struct {
		name, kind, in, want string // want "" means a parse error
	}{
		{"integer", "item", "42", "42"},
		{"negative integer", "item", "-42", "-42"},
		{"leading zeros", "item", "0042", "42"},
		{"max integer", "item", "999999999999999", "999999999999999"},
		{"integer too long", "item", "1000000000000000", ""},
		{"decimal", "item", "1.5", "1.5"},
		{"decimal trailing zeros", "item", "1.500", "1.5"},
		{"decimal negative zero", "item", "-0.0", "0.0"},
		{"decimal too many fraction digits", "item", "1.1234", ""},
		{"decimal integer part too long", "item", "1234567890123.1", ""},
		{"decimal ends with dot", "item", "1.", ""},
		{"minus alone", "item", "-", ""},
		{"string", "item", `"hello world"`, `"hello world"`},
		{"string escapes", "item", `"a\"b\\c"`, `"a\"b\\c"`},
		{"string bad escape", "item", `"a\nb"`, ""},
		{"string unterminated", "item", `"abc`, ""},
		{"string control char", "item", "\"a\tb\"", ""},
		{"string non-ascii", "item", "\"caf\xc3\xa9\"", ""},
		{"token", "item", "foo/bar:baz", "foo/bar:baz"},
		{"token star", "item", "*foo", "*foo"},
		{"byte sequence", "item", ":aGVsbG8=:", ":aGVsbG8=:"},
		{"byte sequence unpadded", "item", ":aGVsbG8:", ":aGVsbG8=:"},
		{"byte sequence empty", "item", "::", "::"},
		{"byte sequence bad char", "item", ":aGV*bG8=:", ""},
		{"byte sequence bad length", "item", ":aGVsb:", ""},
		{"byte sequence unterminated", "item", ":aGVs", ""},
		{"boolean true", "item", "?1", "?1"},
		{"boolean false", "item", "?0", "?0"},
		{"boolean bad", "item", "?2", ""},
		{"item params", "item", `1;a;b=?0;c="x"`, `1;a;b=?0;c="x"`},
		{"param true explicit", "item", "1;a=?1", "1;a"},
		{"param space after semicolon", "item", "1; a=2", "1;a=2"},
		{"param space before semicolon", "item", "1 ;a=2", ""},
		{"param uppercase key", "item", "1;A=2", ""},
		{"duplicate params keep first position", "item", "1;a=1;b=2;a=3", "1;a=3;b=2"},
		{"leading and trailing spaces", "item", "  1  ", "1"},
		{"leading tab", "item", "\t1", ""},
		{"date is not RFC 8941", "item", "@1659578233", ""},
		{"display string is not RFC 8941", "item", `%"x"`, ""},
		{"empty item", "item", "", ""},
		{"list", "list", "a, b,c", "a, b, c"},
		{"list tabs", "list", "a\t,\tb", "a, b"},
		{"list trailing comma", "list", "a, b,", ""},
		{"list empty", "list", "", ""},
		{"list inner", "list", `("a"  "b");x=1, c`, `("a" "b");x=1, c`},
		{"inner list leading space", "list", `( "a" "b" )`, `("a" "b")`},
		{"inner list no space", "list", `("a""b")`, ""},
		{"inner list unterminated", "list", `("a" "b"`, ""},
		{"inner list empty", "list", `()`, `()`},
		{"dictionary", "dict", "a=1, b=2;x=1;y=2, c=(a   b   c), d", "a=1, b=2;x=1;y=2, c=(a b c), d"},
		{"dictionary bare true params", "dict", "a;x=1", "a;x=1"},
		{"dictionary explicit true", "dict", "a=?1", "a"},
		{"dictionary false", "dict", "a=?0", "a=?0"},
		{"dictionary duplicate", "dict", "a=1,b=2,a=3", "a=3, b=2"},
		{"dictionary bad key", "dict", "A=1", ""},
		{"dictionary space before equals", "dict", "a =1", ""},
		{"dictionary numeric key", "dict", "1a=1", ""},
		{"dictionary key chars", "dict", "a_b-c.d*=1", "a_b-c.d*=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var got []byte
			var err error
			switch tt.kind {
			case "item":
				var it Item
				if it, err = p.ParseItem(tt.in); err == nil {
					got, err = AppendItem(nil, it)
				}
			case "list":
				var ms []Member
				if ms, err = p.ParseList(tt.in); err == nil {
					got, err = AppendList(nil, ms)
				}
			case "dict":
				var ms []Member
				if ms, err = p.ParseDictionary(tt.in); err == nil {
					got, err = AppendDictionary(nil, ms)
				}
			}
			if tt.want == "" {
				if err == nil && !(tt.kind == "list" && tt.in == "") {
					t.Fatalf("parse(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("parse(%q) serialised = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for in, canonical := range map[string]bool{
		`a=("x" "y");n=1;s="t"`: true,
		`a=( "x" "y")`:          false,
		`a=("x"  "y")`:          false,
		`a=("x" "y" )`:          false,
		`a=("x");n=01`:          false,
		`a=("x");n=-0`:          false,
		`a=("x");b=?1`:          false,
		`a=("x"); b`:            false,
		`a=1.50`:                false,
		`a=1.05`:                true,
		`a=:aGVsbG8:`:           false,
		`a=:aGVsbG8=:`:          true,
		`a=:aGVsbG9=:`:          false,
		`a=?1`:                  false,
		`a;x=1`:                 true,
		`a=1, a=2`:              false,
	} {
		var p Parser
		ms, err := p.ParseDictionary(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if p.NonCanonical == canonical {
			t.Errorf("%s: NonCanonical = %v", in, p.NonCanonical)
		}
		if canonical && ms[0].Raw != "" {
			want, _ := AppendMemberValue(nil, ms[0])
			if ms[0].Raw != string(want) {
				t.Errorf("%s: Raw %q, serialised %q", in, ms[0].Raw, want)
			}
		}
	}
}

func TestDuplicateFlag(t *testing.T) {
	var p Parser
	if _, err := p.ParseDictionary("a=1, b=2"); err != nil || p.Duplicate {
		t.Fatalf("no duplicate: err=%v dup=%v", err, p.Duplicate)
	}
	p.Reset()
	if _, err := p.ParseDictionary("a=1, a=2"); err != nil || !p.Duplicate {
		t.Fatalf("duplicate: err=%v dup=%v", err, p.Duplicate)
	}
}

func TestLimits(t *testing.T) {
	var p Parser
	big := make([]byte, 0, 8*MaxMembers)
	for i := 0; i <= MaxMembers; i++ {
		if i > 0 {
			big = append(big, ", "...)
		}
		big = append(big, 'a')
	}
	if _, err := p.ParseList(string(big)); err == nil {
		t.Fatal("a list over MaxMembers parsed")
	}
}

// TestManyKeys: past the number of keys the parser compares one by one,
// it finds repeats through its index, with the same results.
func TestManyKeys(t *testing.T) {
	var dict, params strings.Builder
	for i := range 3 * scanKeys {
		if i > 0 {
			dict.WriteString(", ")
		}
		fmt.Fprintf(&dict, "k%d=%d", i, i)
		fmt.Fprintf(&params, ";p%d=%d", i, i)
	}
	var p Parser
	for _, tt := range []struct {
		name, in string
		n        int  // members, or parameters of the one member
		dup      bool // the last key repeats an earlier one
	}{
		{"distinct members", dict.String(), 3 * scanKeys, false},
		{"member repeated early", dict.String() + ", k2=99", 3 * scanKeys, true},
		{"member repeated late", dict.String() + ", k40=99", 3 * scanKeys, true},
		{"distinct params", "a=1" + params.String(), 3 * scanKeys, false},
		{"param repeated", "a=1" + params.String() + ";p2=99", 3 * scanKeys, true},
		{"param repeated late", "a=1" + params.String() + ";p40=99", 3 * scanKeys, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second time on a parser whose index is in use
				p.Reset()
				ms, err := p.ParseDictionary(tt.in)
				if err != nil {
					t.Fatal(err)
				}
				n := len(ms)
				if strings.Contains(tt.name, "param") {
					n = len(ms[0].Item.Params)
				}
				if n != tt.n || p.Duplicate != tt.dup {
					t.Fatalf("%d keys, duplicate %v; want %d, %v", n, p.Duplicate, tt.n, tt.dup)
				}
				if tt.dup {
					// The repeated key keeps its first place and takes the
					// last value, 99.
					var got []int64
					if strings.Contains(tt.name, "param") {
						for _, prm := range ms[0].Item.Params {
							got = append(got, prm.Value.Int)
						}
					} else {
						for _, m := range ms {
							got = append(got, m.Item.Value.Int)
						}
					}
					if got[len(got)-1] != 3*scanKeys-1 || !slices.Contains(got, 99) {
						t.Fatalf("values after a repeat: %v", got)
					}
				}
			}
		})
	}
}

func TestParserLimits(t *testing.T) {
	for _, tt := range []struct {
		limits Limits
		in     string
		ok     bool
	}{
		{Limits{Members: 2}, "a=1, b=2", true},
		{Limits{Members: 2}, "a=1, b=2, c=3", false},
		{Limits{Members: 2}, "a=1, b=2, a=3", true}, // a repeat adds no member
		{Limits{InnerItems: 2}, "a=(1 2)", true},
		{Limits{InnerItems: 2}, "a=(1 2 3)", false},
		{Limits{Params: 2}, "a=1;x;y", true},
		{Limits{Params: 2}, "a=1;x;y;z", false},
		{Limits{Params: 2}, "a=(1;x;y);x;y", true},
		{Limits{Members: MaxMembers + 1}, "a", true}, // cannot raise a limit
	} {
		p := Parser{Limits: tt.limits}
		_, err := p.ParseDictionary(tt.in)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrLimit)) {
			t.Errorf("%+v %q: %v", tt.limits, tt.in, err)
		}
	}
	var p Parser
	if _, err := p.ParseDictionary("a=(1 2"); errors.Is(err, ErrLimit) {
		t.Errorf("a syntax error reads as a limit: %v", err)
	}
}

func TestDecodeByteSeq(t *testing.T) {
	for in, want := range map[string]string{"aGVsbG8=": "hello", "aGVsbG8": "hello", "": ""} {
		got, err := DecodeByteSeq(nil, in)
		if err != nil || string(got) != want {
			t.Errorf("DecodeByteSeq(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	var p Parser
	in := `sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1618884473;keyid="test-key";alg="hmac-sha256";nonce="abc"`
	allocs := testing.AllocsPerRun(100, func() {
		p.Reset()
		if _, err := p.ParseDictionary(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseDictionary allocates %v times in steady state, want 0", allocs)
	}
}

// FuzzParse checks that parsing never panics and that serialising a parsed
// value and parsing it again gives the same serialisation.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`sig1=("@method" "@authority");created=1618884473;keyid="k"`,
		`sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:, sha-512=:YQ==:`,
		`a=1, b=2;x=1;y=2, c=(a   b   c), d`, `1.5;a=?0`, `"a\"b"`, `("a" "b");x`, `*tok/en:x`, `:aGVsbG8:`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, kind := range []string{"item", "list", "dict"} {
			var p Parser
			var out []byte
			var err error
			parse := func(s string) ([]byte, error) {
				p.Reset()
				switch kind {
				case "item":
					it, err := p.ParseItem(s)
					if err != nil {
						return nil, err
					}
					return AppendItem(nil, it)
				case "list":
					ms, err := p.ParseList(s)
					if err != nil {
						return nil, err
					}
					return AppendList(nil, ms)
				}
				ms, err := p.ParseDictionary(s)
				if err != nil {
					return nil, err
				}
				return AppendDictionary(nil, ms)
			}
			if out, err = parse(in); err != nil {
				continue
			}
			if kind == "dict" && !p.NonCanonical && !p.Duplicate {
				// Skipping a known list must not change the result.
				var known string
				for _, m := range p.members {
					if m.Inner {
						known = m.ListRaw
						break
					}
				}
				var q Parser
				q.KnownList = known
				ms, err := q.ParseDictionary(in)
				if err != nil || len(ms) != len(p.members) {
					t.Fatalf("%q with KnownList %q: %v", in, known, err)
				}
				for i, m := range ms {
					if m.Raw != p.members[i].Raw || m.ListRaw != p.members[i].ListRaw || (m.Known && m.ListRaw != known) {
						t.Fatalf("%q with KnownList %q: member %d differs", in, known, i)
					}
				}
			}
			if kind != "item" && !p.NonCanonical {
				for _, m := range p.members {
					if m.Raw == "" {
						continue
					}
					want, _ := AppendMemberValue(nil, m)
					if m.Raw != string(want) {
						t.Fatalf("%s %q: canonical member %q serialises as %q", kind, in, m.Raw, want)
					}
				}
			}
			again, err := parse(string(out))
			if err != nil {
				t.Fatalf("%s %q serialised to %q, which does not parse: %v", kind, in, out, err)
			}
			if string(again) != string(out) {
				t.Fatalf("%s %q: serialisation not stable: %q then %q", kind, in, out, again)
			}
		}
	})
}

// FuzzSingleByteSeq checks the fast path against the parser: whatever
// SingleByteSeq accepts, ParseDictionary reads as the same single member,
// a Byte Sequence, without flagging anything.
func FuzzSingleByteSeq(f *testing.F) {
	for _, s := range []string{
		`sig1=:aGVsbG8=:`, `sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:`, `sig1=::`, `sig1=:aGVsbG9=:`,
		`sig1=:aGVsbG8:`, `sig1=:aGVsbG8=:;x`, `sig1=:aGVsbG8=:, sig2=:YQ==:`, ` sig1=:YQ==:`, `sig1=:Y===:`,
	} {
		f.Add(s, "sig1")
	}
	f.Add(`sha-256=:YQ==:`, "sha-256")
	f.Fuzz(func(t *testing.T, field, key string) {
		text, ok := SingleByteSeq(field, key)
		dec, decOK := DecodeSingleByteSeq([]byte("x"), field, key)
		if decOK != ok {
			t.Fatalf("%q: SingleByteSeq says %v, DecodeSingleByteSeq %v", field, ok, decOK)
		}
		if !ok {
			if string(dec) != "x" {
				t.Fatalf("%q: DecodeSingleByteSeq refuses it but changes dst to %q", field, dec)
			}
			return
		}
		if want, err := DecodeByteSeq([]byte("x"), text); err != nil || string(want) != string(dec) {
			t.Fatalf("%q: DecodeSingleByteSeq gives %q, DecodeByteSeq %q, %v", field, dec, want, err)
		}
		var p Parser
		ms, err := p.ParseDictionary(field)
		switch {
		case err != nil:
			t.Fatalf("SingleByteSeq accepts %q, ParseDictionary refuses it: %v", field, err)
		case len(ms) != 1 || ms[0].Key != key || ms[0].Inner || ms[0].Item.Value.Kind != ByteSeq || len(ms[0].Item.Params) != 0:
			t.Fatalf("SingleByteSeq accepts %q, ParseDictionary reads %+v", field, ms)
		case ms[0].Item.Value.Str != text:
			t.Fatalf("%q: SingleByteSeq reads %q, ParseDictionary %q", field, text, ms[0].Item.Value.Str)
		case p.NonCanonical || p.Duplicate:
			t.Fatalf("SingleByteSeq accepts %q, which ParseDictionary flags", field)
		}
	})
}

// FuzzParseKnownMember checks the fast path against the parser: whatever
// ParseKnownMember accepts, ParseDictionary reads alike, without flagging
// anything.
func FuzzParseKnownMember(f *testing.F) {
	list := `("@method" "@authority" "@path")`
	for _, s := range []string{
		`sig1=` + list + `;created=1618884473;keyid="k";nonce="n";alg="hmac-sha256"`,
		`sig1=` + list, `sig1=` + list + `;created=01`, `sig1=` + list + `;a=1;a=2`, `sig1=` + list + `;a`,
		`sig1=` + list + `;a=-1`, `sig1=` + list + `;a="x\"y"`, `sig1=` + list + `;a=1.5`, `sig1=` + list + `;a=1234567890123456`,
		`sig1=` + list + `, sig2=` + list, `sig1=("@method");a=1`,
	} {
		f.Add(s, list, 4)
	}
	f.Fuzz(func(t *testing.T, field, known string, maxParams int) {
		var fast, slow Parser
		fast.KnownList, slow.KnownList = known, known
		fast.Limits.Params, slow.Limits.Params = maxParams, maxParams
		got, ok := fast.ParseKnownMember(field)
		if !ok {
			if len(fast.params) != 0 || len(fast.members) != 0 {
				t.Fatalf("%q: refused, but left results in the arenas", field)
			}
			return
		}
		want, err := slow.ParseDictionary(field)
		switch {
		case err != nil:
			t.Fatalf("ParseKnownMember accepts %q, ParseDictionary refuses it: %v", field, err)
		case slow.NonCanonical || slow.Duplicate:
			t.Fatalf("ParseKnownMember accepts %q, which ParseDictionary flags", field)
		case !reflect.DeepEqual(got, want):
			t.Fatalf("%q: ParseKnownMember reads %+v, ParseDictionary %+v", field, got, want)
		}
	})
}
