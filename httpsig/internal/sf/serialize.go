package sf

import (
	"encoding/base64"
	"errors"
	"strconv"
)

// The serialisers below follow RFC 8941 §4.1 and append to dst. They assume
// well-formed values, as a Parser produces; AppendString and AppendToken
// check their input because callers build those from application data.

const maxInteger = 999_999_999_999_999

// ErrInvalid is returned when a value cannot be serialised.
var ErrInvalid = errors.New("sf: value cannot be serialised")

// AppendBare appends the serialisation of a bare item.
func AppendBare(dst []byte, b Bare) ([]byte, error) {
	switch b.Kind {
	case Integer:
		if b.Int > maxInteger || b.Int < -maxInteger {
			return dst, ErrInvalid
		}
		return strconv.AppendInt(dst, b.Int, 10), nil
	case Decimal:
		return appendDecimal(dst, b.Int)
	case String:
		return AppendString(dst, b.Str)
	case Token:
		return AppendToken(dst, b.Str)
	case ByteSeq:
		return appendByteSeq(dst, b.Str)
	case Boolean:
		if b.Int == 1 {
			return append(dst, "?1"...), nil
		}
		return append(dst, "?0"...), nil
	}
	return dst, ErrInvalid
}

func appendDecimal(dst []byte, thousandths int64) ([]byte, error) {
	if thousandths < 0 {
		dst = append(dst, '-')
		thousandths = -thousandths
	}
	ip, fp := thousandths/1000, thousandths%1000
	if ip > 999_999_999_999 {
		return dst, ErrInvalid
	}
	dst = strconv.AppendInt(dst, ip, 10)
	dst = append(dst, '.')
	digits := [3]byte{byte('0' + fp/100), byte('0' + fp/10%10), byte('0' + fp%10)}
	n := 3
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	return append(dst, digits[:n]...), nil
}

// AppendString appends s as a String. s must be printable ASCII.
func AppendString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	// The usual string needs no escape: copy it whole, up to the first
	// character that does or that is invalid.
	i := 0
	for i < len(s) && stringChars[s[i]] {
		i++
	}
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return dst, ErrInvalid
		}
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"'), nil
}

// AppendToken appends s as a Token.
func AppendToken(dst []byte, s string) ([]byte, error) {
	if !IsToken(s) {
		return dst, ErrInvalid
	}
	return append(dst, s...), nil
}

// appendByteSeq re-encodes base64 text canonically: padded, standard
// alphabet, zero trailing bits. Text that already is canonical is copied.
func appendByteSeq(dst []byte, text string) ([]byte, error) {
	dst = append(dst, ':')
	if len(text)%4 == 0 && isCanonicalBase64(text) {
		dst = append(dst, text...)
		return append(dst, ':'), nil
	}
	raw, err := DecodeByteSeq(nil, text)
	if err != nil {
		return dst, err
	}
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, ':'), nil
}

func isCanonicalBase64(text string) bool {
	var buf [3]byte
	if len(text) == 0 {
		return true
	}
	// Only the last quantum can be non-canonical.
	last := text[len(text)-4:]
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(last))
	if err != nil {
		return false
	}
	var enc [4]byte
	base64.StdEncoding.Encode(enc[:], buf[:n])
	return string(enc[:]) == last
}

// AppendBareByteSeq appends raw bytes as a Byte Sequence.
func AppendBareByteSeq(dst, raw []byte) []byte {
	dst = append(dst, ':')
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, ':')
}

// AppendParams appends parameters.
func AppendParams(dst []byte, params []Param) ([]byte, error) {
	var err error
	for _, p := range params {
		if !IsKey(p.Key) {
			return dst, ErrInvalid
		}
		dst = append(dst, ';')
		dst = append(dst, p.Key...)
		if p.Value.True() {
			continue
		}
		dst = append(dst, '=')
		if dst, err = AppendBare(dst, p.Value); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// AppendItem appends an Item.
func AppendItem(dst []byte, it Item) ([]byte, error) {
	dst, err := AppendBare(dst, it.Value)
	if err != nil {
		return dst, err
	}
	return AppendParams(dst, it.Params)
}

// AppendInnerList appends an Inner List.
func AppendInnerList(dst []byte, items []Item, params []Param) ([]byte, error) {
	dst = append(dst, '(')
	var err error
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ' ')
		}
		if dst, err = AppendItem(dst, it); err != nil {
			return dst, err
		}
	}
	dst = append(dst, ')')
	return AppendParams(dst, params)
}

// AppendMemberValue appends a List or Dictionary member's value: its Item
// or Inner List, without the key.
func AppendMemberValue(dst []byte, m Member) ([]byte, error) {
	if m.Inner {
		return AppendInnerList(dst, m.Items, m.Params)
	}
	return AppendItem(dst, m.Item)
}

// AppendList appends a List.
func AppendList(dst []byte, members []Member) ([]byte, error) {
	var err error
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if dst, err = AppendMemberValue(dst, m); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// AppendDictionary appends a Dictionary.
func AppendDictionary(dst []byte, members []Member) ([]byte, error) {
	var err error
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if !IsKey(m.Key) {
			return dst, ErrInvalid
		}
		dst = append(dst, m.Key...)
		if !m.Inner && m.Item.Value.True() {
			if dst, err = AppendParams(dst, m.Item.Params); err != nil {
				return dst, err
			}
			continue
		}
		dst = append(dst, '=')
		if dst, err = AppendMemberValue(dst, m); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
