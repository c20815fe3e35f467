package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is a problem with a policy: where it is (a position in the file,
// or the command-line flag that set the value) and what is wrong.
type Error struct {
	File   string // the file's name, or "" for a flag
	Line   int    // 1-based; 0 when the problem is not at one place
	Column int
	Flag   string // the flag the value came from, without dashes
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Flag != "":
		return "--" + e.Flag + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// Errors is every problem found in a policy, in the order of the file.
// Load and Parse return it, so that a lint shows them all at once.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return "policy: " + strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sorted returns es in the order of the file, the flags' after.
func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Flag != "") != (b.Flag != "") {
			if a.Flag != "" {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
	return es
}

// ErrNoRoute is returned by [Policy.Match] when no route matches: the
// gateway answers 404 with the reason [ReasonNoRoute].
var ErrNoRoute = errors.New("policy: no route matches the request")

// TargetError is returned by [Policy.Match] for a path that cannot be
// routed safely: one an upstream could read as another path (a
// dot-segment, an empty segment, an encoded slash, backslash or control
// character, a malformed escape). The gateway answers 400 invalid-target.
type TargetError struct{ Detail string }

func (e *TargetError) Error() string { return "policy: " + e.Detail }

// ForwardedError is returned by [TrustedProxies.Origin] when a trusted
// proxy's forwarding fields are malformed or name a prefix that was not
// declared: the gateway answers 400 with the reason
// [ReasonInvalidForwarded] rather than guess.
type ForwardedError struct{ Detail string }

func (e *ForwardedError) Error() string { return "policy: " + e.Detail }
