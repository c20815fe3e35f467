package redis

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// A reply is a command's answer, as Remember reads it: a simple or bulk
// string, an integer, a nil, or an error reply.
type reply struct {
	kind kind
	str  string // kindString
	n    int64  // kindInt
	err  error  // kindError: the error reply
}

type kind uint8

const (
	kindNil kind = 1 << iota
	kindString
	kindStatus // a simple string, from the fast path; Remember takes it for a kindString
	kindInt
	kindError
	kindOther // from rueidis: none of the above (an array, a map...)
)

func (r reply) String() string {
	switch r.kind {
	case kindNil:
		return "nil"
	case kindString:
		return strconv.Quote(r.str)
	case kindStatus:
		return "+" + strconv.Quote(r.str)
	case kindInt:
		return strconv.FormatInt(r.n, 10)
	case kindError:
		return "error " + r.err.Error()
	}
	return r.str
}

// replyOf converts a rueidis reply.
func replyOf(m rueidis.RedisMessage, err error) reply {
	switch {
	case rueidis.IsRedisNil(err) || err == nil && m.IsNil():
		return reply{kind: kindNil}
	case err != nil:
		return reply{kind: kindError, err: err}
	case m.IsInt64():
		n, _ := m.AsInt64()
		return reply{kind: kindInt, n: n}
	}
	if s, err := m.ToString(); err == nil {
		return reply{kind: kindString, str: s}
	}
	return reply{kind: kindOther, str: fmt.Sprint(&m)}
}

// A serverError is an error reply of the fast path.
type serverError string

func (e serverError) Error() string { return string(e) }

// maxReply bounds a reply the fast path reads: the commands it sends
// answer a few bytes (a sentinel holds a number), so that a longer one is
// a protocol error rather than memory spent.
const maxReply = 64 << 10

var errProtocol = errors.New("redis: protocol error")

// parseReply parses the RESP2 reply at the start of b, of the kinds the
// fast path's commands answer (simple string, error, integer, bulk string,
// nil bulk string), and returns it and its length. It returns a length of
// 0 and no error if b holds only part of a reply: the reader then reads
// more and parses again from the same place, so that a read cut short by a
// deadline loses nothing.
func parseReply(b []byte) (reply, int, error) {
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		if len(b) > maxReply {
			return reply{}, 0, fmt.Errorf("%w: a line of more than %d bytes", errProtocol, maxReply)
		}
		return reply{}, 0, nil
	}
	if end < 2 || b[end-1] != '\r' {
		return reply{}, 0, fmt.Errorf("%w: malformed line %q", errProtocol, clip(b[:end+1]))
	}
	line := b[1 : end-1]
	if len(line) > maxReply {
		return reply{}, 0, fmt.Errorf("%w: a line of more than %d bytes", errProtocol, maxReply)
	}
	switch b[0] {
	case '+':
		return reply{kind: kindStatus, str: string(line)}, end + 1, nil
	case '-':
		return reply{kind: kindError, err: serverError(line)}, end + 1, nil
	case ':':
		n, ok := parseInt(line)
		if !ok {
			return reply{}, 0, fmt.Errorf("%w: malformed integer %q", errProtocol, clip(line))
		}
		return reply{kind: kindInt, n: n}, end + 1, nil
	case '$':
		n, ok := parseInt(line)
		switch {
		case !ok || n < -1:
			return reply{}, 0, fmt.Errorf("%w: malformed bulk length %q", errProtocol, clip(line))
		case n == -1:
			return reply{kind: kindNil}, end + 1, nil
		case n > maxReply:
			return reply{}, 0, fmt.Errorf("%w: a bulk string of %d bytes", errProtocol, n)
		}
		total := end + 1 + int(n) + 2
		if len(b) < total {
			return reply{}, 0, nil
		}
		if b[total-2] != '\r' || b[total-1] != '\n' {
			return reply{}, 0, fmt.Errorf("%w: bulk string not ended by CRLF", errProtocol)
		}
		return reply{kind: kindString, str: string(b[end+1 : total-2])}, total, nil
	}
	return reply{}, 0, fmt.Errorf("%w: unexpected reply type %q", errProtocol, b[0])
}

// parseInt parses a RESP integer: an optional minus sign and 1 to 19
// digits, within int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 && !(neg && n == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// appendCommand appends a command, a RESP array of bulk strings.
func appendCommand(b []byte, args ...[]byte) []byte {
	b = appendHeader(b, '*', len(args))
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

func appendHeader(b []byte, t byte, n int) []byte {
	b = append(b, t)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendBulk appends a bulk string.
func appendBulk[S string | []byte](b []byte, s S) []byte {
	b = appendHeader(b, '$', len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendBulkInt appends n as a bulk string.
func appendBulkInt(b []byte, n int64) []byte {
	var buf [20]byte
	return appendBulk(b, strconv.AppendInt(buf[:0], n, 10))
}
