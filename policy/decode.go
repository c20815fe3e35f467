package policy

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// maxFileSize bounds what Load reads: a policy of thousands of routes is
// well under it.
const maxFileSize = 4 << 20

// decoder walks the YAML tree of a policy file by hand, so that every
// problem is reported at its line and column and all of them at once; the
// YAML itself is parsed by github.com/goccy/go-yaml.
type decoder struct {
	file string
	// badUpstreams are the names of upstreams that did not load, of
	// which nothing more is said.
	badUpstreams map[string]bool
	errs         Errors
	anchors      map[string]ast.Node
}

// parseYAML returns the body of the one document in data, or nil for an
// empty file.
func (d *decoder) parseYAML(data []byte) ast.Node {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.yamlError(err)
		return nil
	}
	var bodies []ast.Node
	for _, doc := range f.Docs {
		if doc.Body != nil {
			bodies = append(bodies, doc.Body)
		}
	}
	switch len(bodies) {
	case 0:
		return nil
	case 1:
		return bodies[0]
	}
	d.errorf(bodies[1], "the file holds more than one YAML document")
	return nil
}

// yamlError turns an error of the YAML parser into an *Error at its
// position.
func (d *decoder) yamlError(err error) {
	type tokened interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if te, ok := err.(tokened); ok && te.GetToken() != nil {
		p := te.GetToken().Position
		d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Column: p.Column, Msg: "YAML: " + te.GetMessage()})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Msg: "YAML: " + firstLine(err.Error())})
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (d *decoder) errorf(n ast.Node, format string, args ...any) {
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		if tk := n.GetToken(); tk != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
	}
	d.errs = append(d.errs, e)
}

// errorOnce reports a problem at n unless it was reported there already,
// for nodes that several readers resolve.
func (d *decoder) errorOnce(n ast.Node, format string, args ...any) {
	before := len(d.errs)
	d.errorf(n, format, args...)
	e := d.errs[before]
	for _, o := range d.errs[:before] {
		if *o == *e {
			d.errs = d.errs[:before]
			return
		}
	}
}

// resolve follows anchors, aliases and tags to the node that holds the
// value.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range 64 { // an alias of an alias ... ends; a loop of them does not
		switch v := n.(type) {
		case *ast.AnchorNode:
			if d.anchors == nil {
				d.anchors = map[string]ast.Node{}
			}
			d.anchors[v.Name.String()] = v.Value
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.anchors[v.Value.String()]
			if !ok {
				d.errorOnce(v, "unknown alias *%s", v.Value.String())
				return nil
			}
			n = target
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	d.errorf(n, "aliases refer to each other without end")
	return nil
}

// field is one key of a mapping the decoder knows, and what to do with
// its value.
type field struct {
	name string
	do   func(key, val ast.Node)
}

// mapping calls the function of each field present in the mapping n, in
// the file's order, and reports unknown and repeated keys. It returns
// false when n is not a mapping.
func (d *decoder) mapping(n ast.Node, what string, fields []field) bool {
	n = d.resolve(n)
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if n != nil {
			d.errorf(n, "%s must be a mapping of keys to values", what)
		}
		return false
	}
	seen := map[string]bool{}
	for _, kv := range m.Values {
		if _, merge := kv.Key.(*ast.MergeKeyNode); merge {
			d.errorf(kv.Key, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		key, ok := d.resolve(kv.Key).(*ast.StringNode)
		if !ok {
			d.errorf(kv.Key, "keys of %s are names", what)
			continue
		}
		if seen[key.Value] {
			d.errorf(kv.Key, "%s has %q twice", what, key.Value)
			continue
		}
		seen[key.Value] = true
		var do func(key, val ast.Node)
		for _, f := range fields {
			if f.name == key.Value {
				do = f.do
				break
			}
		}
		if do == nil {
			d.errorf(kv.Key, "unknown key %q in %s%s", key.Value, what, suggest(key.Value, fields))
			continue
		}
		do(kv.Key, kv.Value)
	}
	return true
}

// suggest returns " (did you mean x?)" for a key one typo away from a
// known one, such as max-age for max_age.
func suggest(key string, fields []field) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	for _, f := range fields {
		if norm(key) == f.name || editDistance1(key, f.name) {
			return fmt.Sprintf(" (did you mean %q?)", f.name)
		}
	}
	return ""
}

// editDistance1 reports whether a and b differ by one insertion, deletion
// or substitution.
func editDistance1(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 || a == b {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:]
	}
	return a[i:] == b[i+1:]
}

// mapEntries returns the entries of a mapping whose keys are names the
// caller chooses (upstream names), in order.
func (d *decoder) mapEntries(n ast.Node, what string) (keys []*ast.StringNode, vals []ast.Node) {
	n = d.resolve(n)
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if n != nil {
			d.errorf(n, "%s must be a mapping", what)
		}
		return nil, nil
	}
	seen := map[string]bool{}
	for _, kv := range m.Values {
		key, ok := d.resolve(kv.Key).(*ast.StringNode)
		switch {
		case !ok:
			d.errorf(kv.Key, "keys of %s are names", what)
		case seen[key.Value]:
			d.errorf(kv.Key, "%s has %q twice", what, key.Value)
		default:
			seen[key.Value] = true
			keys, vals = append(keys, key), append(vals, kv.Value)
		}
	}
	return keys, vals
}

// str returns the value of a string scalar.
func (d *decoder) str(n ast.Node, what string) (string, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case nil:
		return "", false
	case *ast.NullNode:
		d.errorf(n, "%s has no value", what)
	case *ast.MappingNode:
		if s, ok := adjacentPair(v); ok {
			return s, true
		}
		d.errorf(n, "%s must be a string (quote it)", what)
	default:
		d.errorf(n, "%s must be a string (quote it)", what)
	}
	return "", false
}

// adjacentPair returns the plain scalar "a:b" that the YAML parser reads
// as the pair a: b inside [...] inside {...}, where YAML 1.2 has one
// scalar (a ':' not followed by a space is part of it): the scope lists of
// routes written {match: /, scopes: [orders:read]}.
func adjacentPair(m *ast.MappingNode) (string, bool) {
	if len(m.Values) != 1 {
		return "", false
	}
	kv := m.Values[0]
	k, ok1 := kv.Key.(*ast.StringNode)
	v, ok2 := kv.Value.(*ast.StringNode)
	if !ok1 || !ok2 || kv.Start == nil || k.Token.Type != token.StringType || v.Token.Type != token.StringType {
		return "", false
	}
	kp, cp, vp := k.Token.Position, kv.Start.Position, v.Token.Position
	if kp.Line != cp.Line || cp.Line != vp.Line || cp.Column != kp.Column+len(k.Value) || vp.Column != cp.Column+1 {
		return "", false
	}
	return k.Value + ":" + v.Value, true
}

// scalar returns the text of a string or number scalar, for values such
// as sizes that may be written either way.
func (d *decoder) scalar(n ast.Node, what string) (string, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.IntegerNode:
		return v.Token.Value, true
	case *ast.FloatNode:
		return v.Token.Value, true
	}
	return d.str(n, what)
}

func (d *decoder) boolean(n ast.Node, what string) (bool, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.BoolNode:
		return v.Value, true
	case nil:
	default:
		d.errorf(n, "%s must be true or false", what)
	}
	return false, false
}

func (d *decoder) integer(n ast.Node, what string) (int64, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.IntegerNode:
		switch i := v.Value.(type) {
		case int64:
			return i, true
		case uint64:
			if i <= 1<<62 {
				return int64(i), true
			}
		}
		d.errorf(n, "%s is too large", what)
	case nil:
	default:
		d.errorf(n, "%s must be a whole number", what)
	}
	return 0, false
}

// list returns the items of a sequence.
func (d *decoder) list(n ast.Node, what string) ([]ast.Node, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.SequenceNode:
		return v.Values, true
	case nil:
	default:
		d.errorf(n, "%s must be a list", what)
	}
	return nil, false
}

// strings returns a list of strings; a single string is a list of one.
func (d *decoder) strings(n ast.Node, what string) ([]ast.Node, []string, bool) {
	if s, ok := d.resolve(n).(*ast.StringNode); ok {
		return []ast.Node{n}, []string{s.Value}, true
	}
	items, ok := d.list(n, what)
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := d.str(it, "each item of "+what)
		if !ok {
			return nil, nil, false
		}
		out = append(out, s)
	}
	return items, out, true
}

// position returns the position of n: of its first key for a mapping in
// block style, whose own token is the value after that key.
func (d *decoder) position(n ast.Node) Position {
	p := Position{File: d.file}
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n != nil {
		if tk := n.GetToken(); tk != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return p
}

// Position is a place in a policy file.
type Position struct {
	File         string
	Line, Column int
}

func (p Position) String() string {
	if p.Line == 0 {
		if p.File == "" {
			return "(built in)"
		}
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}
