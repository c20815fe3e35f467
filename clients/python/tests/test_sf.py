"""RFC 8941 parsing and serialisation: the Go codec's table, limits, and a
seeded property test (parse, serialise, parse again: the same)."""

from __future__ import annotations

import decimal
import random
from typing import Optional

import pytest

from signet import sf

# name, kind, input, serialised (None: a parse error); the Go package's table.
CASES = [
    ("integer", "item", "42", "42"),
    ("negative integer", "item", "-42", "-42"),
    ("leading zeros", "item", "0042", "42"),
    ("max integer", "item", "999999999999999", "999999999999999"),
    ("integer too long", "item", "1000000000000000", None),
    ("decimal", "item", "1.5", "1.5"),
    ("decimal trailing zeros", "item", "1.500", "1.5"),
    ("decimal negative zero", "item", "-0.0", "0.0"),
    ("decimal too many fraction digits", "item", "1.1234", None),
    ("decimal integer part too long", "item", "1234567890123.1", None),
    ("decimal ends with dot", "item", "1.", None),
    ("minus alone", "item", "-", None),
    ("string", "item", '"hello world"', '"hello world"'),
    ("string escapes", "item", r'"a\"b\\c"', r'"a\"b\\c"'),
    ("string bad escape", "item", r'"a\nb"', None),
    ("string unterminated", "item", '"abc', None),
    ("string control char", "item", '"a\tb"', None),
    ("string non-ascii", "item", '"café"', None),
    ("token", "item", "foo/bar:baz", "foo/bar:baz"),
    ("token star", "item", "*foo", "*foo"),
    ("byte sequence", "item", ":aGVsbG8=:", ":aGVsbG8=:"),
    ("byte sequence unpadded", "item", ":aGVsbG8:", ":aGVsbG8=:"),
    ("byte sequence empty", "item", "::", "::"),
    ("byte sequence bad char", "item", ":aGV*bG8=:", None),
    ("byte sequence bad length", "item", ":aGVsb:", None),
    ("byte sequence bad padding", "item", ":aGVsbG8==:", None),
    ("byte sequence non-canonical tail", "item", ":aGVsbG9=:", ":aGVsbG8=:"),
    ("byte sequence unterminated", "item", ":aGVs", None),
    ("boolean true", "item", "?1", "?1"),
    ("boolean false", "item", "?0", "?0"),
    ("boolean bad", "item", "?2", None),
    ("item params", "item", '1;a;b=?0;c="x"', '1;a;b=?0;c="x"'),
    ("param true explicit", "item", "1;a=?1", "1;a"),
    ("param space after semicolon", "item", "1; a=2", "1;a=2"),
    ("param space before semicolon", "item", "1 ;a=2", None),
    ("param uppercase key", "item", "1;A=2", None),
    ("duplicate params keep first position", "item", "1;a=1;b=2;a=3", "1;a=3;b=2"),
    ("leading and trailing spaces", "item", "  1  ", "1"),
    ("leading tab", "item", "\t1", None),
    ("date is not RFC 8941", "item", "@1659578233", None),
    ("display string is not RFC 8941", "item", '%"x"', None),
    ("empty item", "item", "", None),
    ("list", "list", "a, b,c", "a, b, c"),
    ("list tabs", "list", "a\t,\tb", "a, b"),
    ("list trailing comma", "list", "a, b,", None),
    ("list empty", "list", "", ""),
    ("list inner", "list", '("a"  "b");x=1, c', '("a" "b");x=1, c'),
    ("inner list leading space", "list", '( "a" "b" )', '("a" "b")'),
    ("inner list no space", "list", '("a""b")', None),
    ("inner list unterminated", "list", '("a" "b"', None),
    ("inner list empty", "list", "()", "()"),
    ("dictionary", "dict", "a=1, b=2;x=1;y=2, c=(a   b   c), d", "a=1, b=2;x=1;y=2, c=(a b c), d"),
    ("dictionary bare true params", "dict", "a;x=1", "a;x=1"),
    ("dictionary explicit true", "dict", "a=?1", "a"),
    ("dictionary false", "dict", "a=?0", "a=?0"),
    ("dictionary duplicate", "dict", "a=1,b=2,a=3", "a=3, b=2"),
    ("dictionary bad key", "dict", "A=1", None),
    ("dictionary space before equals", "dict", "a =1", None),
    ("dictionary numeric key", "dict", "1a=1", None),
    ("dictionary key chars", "dict", "a_b-c.d*=1", "a_b-c.d*=1"),
    ("dictionary empty", "dict", "", ""),
]


def roundtrip(kind: str, text: str) -> str:
    if kind == "item":
        return sf.serialize_item(sf.parse_item(text))
    if kind == "list":
        return sf.serialize_list(sf.parse_list(text))
    return sf.serialize_dictionary(sf.parse_dictionary(text))


@pytest.mark.parametrize("name,kind,text,want", CASES, ids=[c[0] for c in CASES])
def test_parse_serialise(name: str, kind: str, text: str, want: Optional[str]) -> None:
    if want is None:
        with pytest.raises(sf.ParseError):
            roundtrip(kind, text)
    else:
        assert roundtrip(kind, text) == want


def test_reject_duplicates() -> None:
    assert list(sf.parse_dictionary("a=1, b=2", reject_duplicates=True)) == ["a", "b"]
    for text in ("a=1, a=2", "a=1;x;x", 'a=("x";p=1;p=2)'):
        with pytest.raises(sf.ParseError, match="duplicate"):
            sf.parse_dictionary(text, reject_duplicates=True)
        sf.parse_dictionary(text)


def test_limits() -> None:
    with pytest.raises(sf.ParseError, match="too many"):
        sf.parse_list(", ".join(["a"] * (sf.MAX_MEMBERS + 1)))
    sf.parse_list(", ".join(["a"] * sf.MAX_MEMBERS))
    with pytest.raises(sf.ParseError, match="too many"):
        sf.parse_list("(" + " ".join(["a"] * (sf.MAX_INNER_ITEMS + 1)) + ")")
    with pytest.raises(sf.ParseError, match="too many"):
        sf.parse_item("a" + "".join(f";k{i}" for i in range(sf.MAX_PARAMS + 1)))


def test_serialise_values() -> None:
    assert sf.serialize_bare_item(decimal.Decimal("1.0005")) == "1.0"  # half to even
    assert sf.serialize_bare_item(decimal.Decimal("1.0015")) == "1.002"
    assert sf.serialize_bare_item(2.5) == "2.5"
    assert sf.serialize_bare_item(-0.0001) == "0.0"
    assert sf.serialize_bare_item(True) == "?1"
    assert sf.serialize_bare_item(sf.Token("a/b")) == "a/b"
    assert sf.serialize_bare_item(b"\xff") == ":/w==:"
    for bad in (10**15, "é", "\n", sf.Token("1a"), decimal.Decimal("1e13"), float("nan")):
        with pytest.raises(ValueError):
            sf.serialize_bare_item(bad)  # type: ignore[arg-type]


ALPHABET = list('abcxyz019-.*_"\\:;=,()?/ \t+AZé%') + ['"a"', ":aGk=:", "?1", "1.5", "(a b)", ";x=1", ", "]


@pytest.mark.parametrize("kind", ["item", "list", "dict"])
def test_property_parse_serialise_parse(kind: str) -> None:
    """Parsing never fails other than with ParseError, and a serialised value
    parses back to the same serialisation (the Go package's FuzzParse, run
    on a fixed seed)."""
    rng = random.Random(9421 + len(kind))
    parsed = 0
    for _ in range(4000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        try:
            out = roundtrip(kind, text)
        except sf.ParseError:
            continue
        parsed += 1
        assert roundtrip(kind, out) == out, text
    assert parsed > 100
