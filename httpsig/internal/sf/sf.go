// Package sf parses and serialises Structured Field Values for HTTP as
// specified in RFC 8941: Items, Lists, Dictionaries, Inner Lists and
// Parameters over the bare item types Integer, Decimal, String, Token, Byte
// Sequence and Boolean.
//
// Parsing is strict: what the RFC 8941 grammar rejects is an error. A
// [Parser] keeps its results in arenas it reuses, so that parsing a field in
// steady state allocates nothing; results stay valid until the next Reset.
package sf

import (
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Kind is the type of a bare item.
type Kind uint8

// The bare item types of RFC 8941 §3.3.
const (
	Integer Kind = iota + 1
	Decimal
	String
	Token
	ByteSeq
	Boolean
)

// Limits a parser enforces unless its [Limits] are lower; RFC 8941 §3 asks
// parsers to support at least as many, and bounding them bounds the work a
// hostile field can cause.
const (
	MaxMembers    = 1024
	MaxInnerItems = 256
	MaxParams     = 256
)

// Limits lower a parser's limits for fields whose callers know how much
// they may sensibly hold, so that a longer one is refused as soon as the
// parser reaches the excess. Zero or negative fields keep the defaults.
type Limits struct {
	Members    int // of a List or Dictionary
	InnerItems int // of one Inner List
	Params     int // of one item or Inner List
}

func limit(set, def int) int {
	if set > 0 && set < def {
		return set
	}
	return def
}

// ErrLimit is wrapped by the [*SyntaxError] of a field that holds more
// than a parser's limits allow.
var ErrLimit = errors.New("sf: field exceeds a parser limit")

// Bare is a bare item.
type Bare struct {
	Kind Kind
	// Int is the value of an Integer, a Decimal in thousandths, or a
	// Boolean as 0 or 1.
	Int int64
	// Str is the value of a String (unescaped) or Token, or the base64 text
	// of a Byte Sequence as received (see [DecodeByteSeq]).
	Str string
}

// Bool returns a Boolean bare item.
func Bool(b bool) Bare {
	if b {
		return Bare{Kind: Boolean, Int: 1}
	}
	return Bare{Kind: Boolean}
}

// True reports whether b is the Boolean true.
func (b Bare) True() bool { return b.Kind == Boolean && b.Int == 1 }

// Param is one parameter of an item or inner list.
type Param struct {
	Key   string
	Value Bare
}

// Item is a bare item with parameters.
type Item struct {
	Value  Bare
	Params []Param
}

// Member is a member of a List or Dictionary: an Item, or an Inner List when
// Inner is set. Key is empty for List members.
type Member struct {
	Key    string
	Inner  bool
	Item   Item   // when !Inner
	Items  []Item // when Inner
	Params []Param
	// Raw is the member's value as it appeared in the field, without the
	// key and "="; empty for a Dictionary member written as a bare key.
	// Unless the parser reports NonCanonical, a non-empty Raw is exactly
	// what AppendMemberValue writes.
	Raw string
	// ListRaw is the Inner List as it appeared, from "(" to ")", without
	// its parameters.
	ListRaw string
	// Known is set when the Inner List was Parser.KnownList.
	Known bool
}

// SyntaxError reports where and why parsing failed.
type SyntaxError struct {
	Offset int
	Msg    string
	Err    error // ErrLimit for a field over a limit, else nil
}

func (e *SyntaxError) Error() string {
	return "sf: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Parser parses structured fields into arenas it reuses. The zero value is
// ready to use. A Parser is not safe for concurrent use.
type Parser struct {
	in      string
	pos     int
	params  []Param
	items   []Item
	members []Member
	// Duplicate is set when a Dictionary or Parameters held the same key
	// twice; RFC 8941 keeps the last value, but some callers must refuse.
	Duplicate bool
	// NonCanonical is set when some member value was not written as
	// RFC 8941 serialises it (extra spaces, leading zeros, unpadded
	// base64, an explicit ?1 parameter, a repeated key...).
	NonCanonical bool
	// KnownList, if set, is the text of an Inner List the caller has read
	// before, canonical and without repeated keys. An Inner List with
	// exactly this text is not read again: its Member has Known set, no
	// Items, and ListRaw equal to KnownList.
	KnownList string
	// Limits, if set, lower the limits the parser enforces.
	Limits Limits

	memberKeys, paramKeys keyIndex
}

// scanKeys is how many keys a Dictionary or Parameters holds before the
// parser indexes them to find repeats: up to it, comparing a new key with
// each earlier one is cheaper than hashing; beyond it, comparing would
// cost time quadratic in the number of keys.
const scanKeys = 16

// keyIndex finds a key among the keys of one Dictionary or Parameters in
// time linear in their number. Its map is kept from one to the next.
type keyIndex struct {
	pos    map[string]int
	active bool
}

func (x *keyIndex) reset() {
	if x.active {
		clear(x.pos)
		x.active = false
	}
}

// find returns the position of key among the n keys given by keyAt, or -1.
func (x *keyIndex) find(key string, n int, keyAt func(int) string) int {
	if n <= scanKeys {
		for i := range n {
			if keyAt(i) == key {
				return i
			}
		}
		return -1
	}
	if !x.active {
		if x.pos == nil {
			x.pos = make(map[string]int, 2*scanKeys)
		}
		for i := range n {
			x.pos[keyAt(i)] = i
		}
		x.active = true
	}
	if i, ok := x.pos[key]; ok {
		return i
	}
	return -1
}

// add records that key is at position i, after find said it was new.
func (x *keyIndex) add(key string, i int) {
	if x.active {
		x.pos[key] = i
	}
}

// Reset forgets earlier results, keeping the arenas' memory.
func (p *Parser) Reset() {
	p.params = p.params[:0]
	p.items = p.items[:0]
	p.members = p.members[:0]
	p.Duplicate = false
	p.NonCanonical = false
}

func (p *Parser) fail(msg string) error {
	return &SyntaxError{Offset: p.pos, Msg: msg}
}

func (p *Parser) failLimit(msg string) error {
	return &SyntaxError{Offset: p.pos, Msg: msg, Err: ErrLimit}
}

func (p *Parser) start(s string) {
	p.in, p.pos = s, 0
	p.skipSP()
}

func (p *Parser) finish() error {
	p.skipSP()
	if p.pos != len(p.in) {
		return p.fail("unexpected character")
	}
	return nil
}

// skipSP skips spaces and says how many there were.
func (p *Parser) skipSP() int {
	start := p.pos
	for p.pos < len(p.in) && p.in[p.pos] == ' ' {
		p.pos++
	}
	return p.pos - start
}

func (p *Parser) skipOWS() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

// ParseItem parses an Item field value.
func (p *Parser) ParseItem(s string) (Item, error) {
	p.start(s)
	it, err := p.item()
	if err != nil {
		return Item{}, err
	}
	return it, p.finish()
}

// ParseList parses a List field value. The members have no Key.
func (p *Parser) ParseList(s string) ([]Member, error) {
	p.start(s)
	first := len(p.members)
	maxMembers := limit(p.Limits.Members, MaxMembers)
	for p.pos < len(p.in) {
		if len(p.members)-first == maxMembers {
			return nil, p.failLimit("too many list members")
		}
		start := p.pos
		m, err := p.itemOrInner()
		if err != nil {
			return nil, err
		}
		m.Raw = p.in[start:p.pos]
		p.members = append(p.members, m)
		if done, err := p.nextMember(); done || err != nil {
			return p.members[first:], err
		}
	}
	return p.members[first:], p.finish()
}

// ParseDictionary parses a Dictionary field value. A key given twice keeps
// its first position and its last value, and sets p.Duplicate.
func (p *Parser) ParseDictionary(s string) ([]Member, error) {
	p.start(s)
	first := len(p.members)
	maxMembers := limit(p.Limits.Members, MaxMembers)
	p.memberKeys.reset()
	keyAt := func(i int) string { return p.members[first+i].Key }
	for p.pos < len(p.in) {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var m Member
		if p.pos < len(p.in) && p.in[p.pos] == '=' {
			p.pos++
			start := p.pos
			if m, err = p.itemOrInner(); err != nil {
				return nil, err
			}
			m.Raw = p.in[start:p.pos]
			if !m.Inner && m.Item.Value.True() {
				p.NonCanonical = true // written "key=?1"
			}
		} else {
			m.Item.Value = Bool(true)
			if m.Item.Params, err = p.parameters(); err != nil {
				return nil, err
			}
		}
		m.Key = key
		if i := p.memberKeys.find(key, len(p.members)-first, keyAt); i >= 0 {
			p.members[first+i] = m
			p.Duplicate, p.NonCanonical = true, true
		} else {
			if len(p.members)-first == maxMembers {
				return nil, p.failLimit("too many dictionary members")
			}
			p.members = append(p.members, m)
			p.memberKeys.add(key, len(p.members)-first-1)
		}
		if done, err := p.nextMember(); done || err != nil {
			return p.members[first:], err
		}
	}
	return p.members[first:], p.finish()
}

// nextMember consumes the separator after a member and reports whether the
// field ended.
func (p *Parser) nextMember() (bool, error) {
	p.skipOWS()
	if p.pos == len(p.in) {
		return true, nil
	}
	if p.in[p.pos] != ',' {
		return false, p.fail("expected comma")
	}
	p.pos++
	p.skipOWS()
	if p.pos == len(p.in) {
		return false, p.fail("trailing comma")
	}
	return false, nil
}

func (p *Parser) itemOrInner() (Member, error) {
	if p.pos < len(p.in) && p.in[p.pos] == '(' {
		return p.innerList()
	}
	it, err := p.item()
	return Member{Item: it}, err
}

func (p *Parser) innerList() (Member, error) {
	start := p.pos
	if k := p.KnownList; k != "" && strings.HasPrefix(p.in[start:], k) {
		p.pos += len(k)
		params, err := p.parameters()
		return Member{Inner: true, Params: params, ListRaw: k, Known: true}, err
	}
	p.pos++ // '('
	first := len(p.items)
	for {
		if spaces := p.skipSP(); spaces != 0 && (spaces > 1 || len(p.items) == first || p.pos < len(p.in) && p.in[p.pos] == ')') {
			p.NonCanonical = true // only single spaces between items
		}
		if p.pos == len(p.in) {
			return Member{}, p.fail("unterminated inner list")
		}
		if p.in[p.pos] == ')' {
			p.pos++
			list := p.in[start:p.pos]
			items := p.items[first:len(p.items):len(p.items)]
			params, err := p.parameters()
			return Member{Inner: true, Items: items, Params: params, ListRaw: list}, err
		}
		if len(p.items)-first == limit(p.Limits.InnerItems, MaxInnerItems) {
			return Member{}, p.failLimit("too many inner list items")
		}
		it, err := p.item()
		if err != nil {
			return Member{}, err
		}
		p.items = append(p.items, it)
		if p.pos < len(p.in) && p.in[p.pos] != ' ' && p.in[p.pos] != ')' {
			return Member{}, p.fail("expected space or ')' in inner list")
		}
	}
}

func (p *Parser) item() (Item, error) {
	v, err := p.bare()
	if err != nil {
		return Item{}, err
	}
	params, err := p.parameters()
	return Item{Value: v, Params: params}, err
}

func (p *Parser) parameters() ([]Param, error) {
	first := len(p.params)
	if p.pos == len(p.in) || p.in[p.pos] != ';' {
		return nil, nil
	}
	maxParams := limit(p.Limits.Params, MaxParams)
	p.paramKeys.reset()
	keyAt := func(i int) string { return p.params[first+i].Key }
	for p.pos < len(p.in) && p.in[p.pos] == ';' {
		p.pos++
		if p.skipSP() != 0 {
			p.NonCanonical = true
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		v := Bool(true)
		if p.pos < len(p.in) && p.in[p.pos] == '=' {
			p.pos++
			if v, err = p.bare(); err != nil {
				return nil, err
			}
			if v.True() {
				p.NonCanonical = true // written ";key=?1"
			}
		}
		if i := p.paramKeys.find(key, len(p.params)-first, keyAt); i >= 0 {
			p.params[first+i].Value = v
			p.Duplicate, p.NonCanonical = true, true
			continue
		}
		if len(p.params)-first == maxParams {
			return nil, p.failLimit("too many parameters")
		}
		p.params = append(p.params, Param{Key: key, Value: v})
		p.paramKeys.add(key, len(p.params)-first-1)
	}
	// The cap stops a later append through this slice from reaching into
	// the arena beyond it.
	return p.params[first:len(p.params):len(p.params)], nil
}

// Character classes, as tables for the parser's inner loops.
var (
	keyChars    [256]bool // lcalpha / DIGIT / "_" / "-" / "." / "*"
	tokenChars  [256]bool // tchar / ":" / "/"
	stringChars [256]bool // printable ASCII but DQUOTE and "\"
	b64Chars    [256]bool // ALPHA / DIGIT / "+" / "/"
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		keyChars[c] = isLCAlpha(b) || isDigit(b) || strings.IndexByte("_-.*", b) >= 0
		tokenChars[c] = isTChar(b) || b == ':' || b == '/'
		stringChars[c] = b >= 0x20 && b <= 0x7e && b != '"' && b != '\\'
		b64Chars[c] = isAlpha(b) || isDigit(b) || b == '+' || b == '/'
	}
}

func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool   { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }

// isTChar reports whether c is a tchar of RFC 9110 §5.6.2.
func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func (p *Parser) key() (string, error) {
	if p.pos == len(p.in) || !(isLCAlpha(p.in[p.pos]) || p.in[p.pos] == '*') {
		return "", p.fail("expected key")
	}
	start := p.pos
	for p.pos < len(p.in) && keyChars[p.in[p.pos]] {
		p.pos++
	}
	return p.in[start:p.pos], nil
}

// IsKey reports whether s is a valid key.
func IsKey(s string) bool {
	if s == "" || !(isLCAlpha(s[0]) || s[0] == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !keyChars[s[i]] {
			return false
		}
	}
	return true
}

// IsToken reports whether s is a valid Token.
func IsToken(s string) bool {
	if s == "" || !(isAlpha(s[0]) || s[0] == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

func (p *Parser) bare() (Bare, error) {
	if p.pos == len(p.in) {
		return Bare{}, p.fail("expected item")
	}
	switch c := p.in[p.pos]; {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == ':':
		return p.byteSeq()
	case c == '?':
		return p.boolean()
	case isAlpha(c) || c == '*':
		start := p.pos
		p.pos++
		for p.pos < len(p.in) && tokenChars[p.in[p.pos]] {
			p.pos++
		}
		return Bare{Kind: Token, Str: p.in[start:p.pos]}, nil
	}
	return Bare{}, p.fail("unexpected character")
}

func (p *Parser) number() (Bare, error) {
	neg := false
	if p.in[p.pos] == '-' {
		neg = true
		p.pos++
	}
	start := p.pos
	if p.pos == len(p.in) || !isDigit(p.in[p.pos]) {
		return Bare{}, p.fail("expected digit")
	}
	var ip, fp int64
	intDigits, fracDigits, dot := 0, 0, false
	for ; p.pos < len(p.in); p.pos++ {
		c := p.in[p.pos]
		switch {
		case isDigit(c) && !dot:
			if intDigits == 15 {
				return Bare{}, p.fail("integer too long")
			}
			ip = ip*10 + int64(c-'0')
			intDigits++
			continue
		case isDigit(c):
			if fracDigits == 3 {
				return Bare{}, p.fail("decimal has too many fractional digits")
			}
			fp = fp*10 + int64(c-'0')
			fracDigits++
			continue
		case c == '.' && !dot:
			if intDigits > 12 {
				return Bare{}, p.fail("decimal too long")
			}
			dot = true
			continue
		}
		break
	}
	sign := int64(1)
	if neg {
		sign = -1
	}
	if (intDigits > 1 && p.in[start] == '0') || (neg && ip == 0 && fp == 0) || (dot && fracDigits > 1 && fp%10 == 0) {
		p.NonCanonical = true // leading zeros, negative zero, trailing zeros
	}
	if !dot {
		return Bare{Kind: Integer, Int: sign * ip}, nil
	}
	if fracDigits == 0 {
		return Bare{}, p.fail("decimal ends with '.'")
	}
	for i := fracDigits; i < 3; i++ {
		fp *= 10
	}
	return Bare{Kind: Decimal, Int: sign * (ip*1000 + fp)}, nil
}

func (p *Parser) str() (Bare, error) {
	p.pos++ // '"'
	start := p.pos
	escaped := false
	for {
		for p.pos < len(p.in) && stringChars[p.in[p.pos]] {
			p.pos++
		}
		if p.pos == len(p.in) {
			return Bare{}, p.fail("unterminated string")
		}
		switch p.in[p.pos] {
		case '"':
			s := p.in[start:p.pos]
			p.pos++
			if escaped {
				s = unescape(s)
			}
			return Bare{Kind: String, Str: s}, nil
		case '\\':
			if p.pos+1 == len(p.in) || (p.in[p.pos+1] != '"' && p.in[p.pos+1] != '\\') {
				return Bare{}, p.fail("bad escape in string")
			}
			escaped = true
			p.pos += 2
		default:
			return Bare{}, p.fail("invalid character in string")
		}
	}
}

func unescape(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

func (p *Parser) byteSeq() (Bare, error) {
	p.pos++ // ':'
	start := p.pos
	for p.pos < len(p.in) && b64Chars[p.in[p.pos]] {
		p.pos++
	}
	data := p.pos
	for p.pos < len(p.in) && p.in[p.pos] == '=' && p.pos-data < 2 {
		p.pos++
	}
	if p.pos == len(p.in) || p.in[p.pos] != ':' {
		return Bare{}, p.fail("bad byte sequence")
	}
	// Padding is optional (RFC 8941 §4.2.7 asks parsers not to insist), but
	// what is there must make whole quanta.
	n, pad := data-start, p.pos-data
	if n%4 == 1 || (pad > 0 && (n+pad)%4 != 0) {
		return Bare{}, p.fail("bad byte sequence length")
	}
	s := p.in[start:p.pos]
	p.pos++
	if (n+pad)%4 != 0 || !canonicalTail(s) {
		p.NonCanonical = true
	}
	return Bare{Kind: ByteSeq, Str: s}, nil
}

func (p *Parser) boolean() (Bare, error) {
	if p.pos+1 < len(p.in) && (p.in[p.pos+1] == '0' || p.in[p.pos+1] == '1') {
		b := Bool(p.in[p.pos+1] == '1')
		p.pos += 2
		return b, nil
	}
	return Bare{}, p.fail("bad boolean")
}

// ErrByteSeq is returned by DecodeByteSeq for text that is not base64.
var ErrByteSeq = errors.New("sf: byte sequence is not valid base64")

// DecodeByteSeq appends the bytes of a Byte Sequence's base64 text (as in
// Bare.Str) to dst.
func DecodeByteSeq(dst []byte, s string) ([]byte, error) {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	n := base64.RawStdEncoding.DecodedLen(len(s))
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	m, err := base64.RawStdEncoding.Decode(dst[len(dst):len(dst)+n], []byte(s))
	if err != nil {
		return dst, ErrByteSeq
	}
	return dst[:len(dst)+m], nil
}

var base64Index = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range alphabet {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// canonicalTail reports whether padded base64 text has zero bits where its
// last quantum pads, as a canonical encoder writes.
func canonicalTail(s string) bool {
	switch {
	case strings.HasSuffix(s, "=="):
		return base64Index[s[len(s)-3]]&0x0f == 0
	case strings.HasSuffix(s, "="):
		return base64Index[s[len(s)-2]]&0x03 == 0
	}
	return true
}

// SingleByteSeq recognises, without general parsing, a Dictionary field
// value of exactly one member, key=:…: with a Byte Sequence value written
// canonically (no spaces, no parameters, padded base64 with zero bits
// where it pads), and returns the base64 text as [Bare.Str] holds it.
// ok is false for anything else, which the caller must then parse with
// [Parser.ParseDictionary]: for the values it accepts, ParseDictionary
// gives the same single member and flags nothing.
func SingleByteSeq(field, key string) (text string, ok bool) {
	n := len(key)
	if len(field) < n+3 || field[:n] != key || field[n] != '=' || field[n+1] != ':' || field[len(field)-1] != ':' || !IsKey(key) {
		return "", false
	}
	text = field[n+2 : len(field)-1]
	data := len(text)
	for data > 0 && len(text)-data < 2 && text[data-1] == '=' {
		data--
	}
	if len(text)%4 != 0 {
		return "", false
	}
	for i := 0; i < data; i++ {
		if !b64Chars[text[i]] {
			return "", false
		}
	}
	if !canonicalTail(text) {
		return "", false
	}
	return text, true
}

// b64Values maps the base64 alphabet to its values and every other byte,
// '=' included, to 0xff.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range alphabet {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// b64Quantum maps each byte, by its position in a quantum of four, to the
// bits it holds in the quantum's 24-bit value, and every byte outside the
// base64 alphabet, '=' included, to a value above 24 bits.
var b64Quantum = func() (t [4][256]uint32) {
	for i := range t {
		for c, v := range b64Values {
			if v == 0xff {
				t[i][c] = 1 << 31
			} else {
				t[i][c] = uint32(v) << (18 - 6*i)
			}
		}
	}
	return t
}()

// DecodeSingleByteSeq is [SingleByteSeq] and [DecodeByteSeq] in one pass
// over the text: for a field SingleByteSeq accepts, it appends the bytes
// of the Byte Sequence to dst and returns true; for any other, it returns
// dst unchanged and false.
func DecodeSingleByteSeq(dst []byte, field, key string) ([]byte, bool) {
	n := len(key)
	if len(field) < n+3 || field[:n] != key || field[n] != '=' || field[n+1] != ':' || field[len(field)-1] != ':' || !IsKey(key) {
		return dst, false
	}
	text := field[n+2 : len(field)-1]
	if len(text)%4 != 0 {
		return dst, false
	}
	start := len(dst)
	full, size := len(text), len(text)/4*3
	if full > 0 && text[full-1] == '=' {
		full -= 4 // the last quantum pads
		size--
		if text[len(text)-2] == '=' {
			size--
		}
	}
	// Written in place: size bytes after start, three per full quantum.
	dst = slices.Grow(dst, size)[:start+size]
	out := dst[start:]
	i := 0
	for ; i+8 <= full && len(out) >= 6; i += 8 {
		q := text[i : i+8]
		v := b64Quantum[0][q[0]] | b64Quantum[1][q[1]] | b64Quantum[2][q[2]] | b64Quantum[3][q[3]]
		w := b64Quantum[0][q[4]] | b64Quantum[1][q[5]] | b64Quantum[2][q[6]] | b64Quantum[3][q[7]]
		if v|w > 0xffffff {
			return dst[:start], false
		}
		out[0], out[1], out[2], out[3], out[4], out[5] = byte(v>>16), byte(v>>8), byte(v), byte(w>>16), byte(w>>8), byte(w)
		out = out[6:]
	}
	for ; i+4 <= full && len(out) >= 3; i += 4 {
		q := text[i : i+4]
		v := b64Quantum[0][q[0]] | b64Quantum[1][q[1]] | b64Quantum[2][q[2]] | b64Quantum[3][q[3]]
		if v > 0xffffff {
			return dst[:start], false
		}
		out[0], out[1], out[2] = byte(v>>16), byte(v>>8), byte(v)
		out = out[3:]
	}
	if full < len(text) {
		q := text[full:]
		a, b := b64Values[q[0]], b64Values[q[1]]
		if q[2] == '=' { // xx==: one byte; b's low bits pad
			if (a|b)&0x80 != 0 || b&0x0f != 0 || len(out) != 1 {
				return dst[:start], false
			}
			out[0] = a<<2 | b>>4
			return dst, true
		}
		c := b64Values[q[2]] // xxx=: two bytes; c's low bits pad
		if (a|b|c)&0x80 != 0 || c&0x03 != 0 || len(out) != 2 {
			return dst[:start], false
		}
		out[0], out[1] = a<<2|b>>4, b<<4|c>>2
	}
	return dst, true
}

// ParseKnownMember recognises, without general parsing, a Dictionary field
// value of exactly one member whose value is [Parser.KnownList] followed
// by parameters, each written ;key=value with a value that is a
// non-negative Integer without leading zeros or a String without escapes,
// no key given twice. It returns what [Parser.ParseDictionary] returns for
// such a value, which it flags neither duplicate nor non-canonical, and
// ok false for anything else, which the caller must then parse with
// ParseDictionary.
func (p *Parser) ParseKnownMember(s string) (members []Member, ok bool) {
	k := p.KnownList
	i := KeyLen(s)
	if k == "" || k[0] != '(' || i == 0 || i+1+len(k) > len(s) || s[i] != '=' || s[i+1:i+1+len(k)] != k {
		return nil, false
	}
	first := len(p.params)
	maxParams := limit(p.Limits.Params, MaxParams)
	for pos := i + 1 + len(k); pos < len(s); {
		if len(p.params)-first == maxParams {
			p.params = p.params[:first]
			return nil, false
		}
		key, v, end, ok := KnownParam(s, pos)
		if !ok {
			p.params = p.params[:first]
			return nil, false
		}
		pos = end
		for j := first; j < len(p.params); j++ {
			// Keys are never empty; most differ in length or first byte.
			if k := p.params[j].Key; len(k) == len(key) && k[0] == key[0] && k == key {
				p.params = p.params[:first]
				return nil, false
			}
		}
		p.params = append(p.params, Param{Key: key, Value: v})
	}
	var params []Param
	if len(p.params) > first {
		params = p.params[first:len(p.params):len(p.params)]
	}
	p.members = append(p.members, Member{Key: s[:i], Inner: true, Params: params, Raw: s[i+1:], ListRaw: k, Known: true})
	return p.members[len(p.members)-1:], true
}

// KeyLen returns the length of the Key (RFC 8941 §3.1.2) s starts with,
// or 0 if it starts with none.
func KeyLen(s string) int {
	if s == "" || !(isLCAlpha(s[0]) || s[0] == '*') {
		return 0
	}
	i := 1
	for i < len(s) && keyChars[s[i]] {
		i++
	}
	return i
}

// KnownParam reads the parameter at s[pos:] in the one form
// [Parser.ParseKnownMember] accepts: ;key=value, the value a non-negative
// Integer of at most 15 digits without leading zeros or a String without
// escapes. It returns the key, the value and where the parameter ends;
// ok is false if s[pos:] does not start with such a parameter.
func KnownParam(s string, pos int) (key string, v Bare, end int, ok bool) {
	if pos+1 >= len(s) || s[pos] != ';' || !(isLCAlpha(s[pos+1]) || s[pos+1] == '*') {
		return "", Bare{}, pos, false
	}
	pos++
	start := pos
	for pos < len(s) && keyChars[s[pos]] {
		pos++
	}
	key = s[start:pos]
	if pos+1 >= len(s) || s[pos] != '=' {
		return "", Bare{}, pos, false
	}
	pos++
	switch c := s[pos]; {
	case isDigit(c):
		n, end, ok := KnownInteger(s, pos)
		return key, Bare{Kind: Integer, Int: n}, end, ok
	case c == '"':
		str, end, ok := KnownString(s, pos)
		return key, Bare{Kind: String, Str: str}, end, ok
	}
	return "", Bare{}, pos, false
}

// KnownInteger reads the value of a parameter at s[pos:] as [KnownParam]
// reads an Integer: a non-negative Integer of at most 15 digits without
// leading zeros, which ends at end.
func KnownInteger(s string, pos int) (n int64, end int, ok bool) {
	start := pos
	for pos < len(s) && isDigit(s[pos]) && pos-start < 15 {
		n = n*10 + int64(s[pos]-'0')
		pos++
	}
	if pos == start || pos-start > 1 && s[start] == '0' {
		return 0, pos, false
	}
	return n, pos, true
}

// KnownString reads the value of a parameter at s[pos:] as [KnownParam]
// reads a String: one without escapes, which ends at end.
func KnownString(s string, pos int) (str string, end int, ok bool) {
	if pos == len(s) || s[pos] != '"' {
		return "", pos, false
	}
	pos++
	start := pos
	for pos < len(s) && stringChars[s[pos]] {
		pos++
	}
	if pos == len(s) || s[pos] != '"' {
		return "", pos, false
	}
	return s[start:pos], pos + 1, true
}
