"""Structured Field Values for HTTP, as specified in RFC 8941.

Parsing is strict: anything the RFC 8941 grammar rejects raises
:class:`ParseError`. Serialisation is canonical, and byte for byte what the
Go (``httpsig/internal/sf``) and Node.js (``lib/sf.js``) codecs of Signet
write.

Data model:

==============  =============================================================
bare item       ``int`` (Integer), :class:`decimal.Decimal` or ``float``
                (Decimal), ``str`` (String), :class:`Token`, ``bytes``
                (Byte Sequence), ``bool`` (Boolean)
parameters      ``dict[str, bare item]``, in received order
item            :class:`Item`
inner list      :class:`InnerList`
list            ``list[Item | InnerList]``
dictionary      ``dict[str, Item | InnerList]``, in received order
==============  =============================================================

A key given twice keeps its first position and its last value, as RFC 8941
says; parsers called with ``reject_duplicates=True`` refuse it instead.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Union

__all__ = [
    "BareItem",
    "InnerList",
    "Item",
    "Member",
    "ParseError",
    "Token",
    "is_key",
    "parse_dictionary",
    "parse_item",
    "parse_list",
    "serialize_bare_item",
    "serialize_dictionary",
    "serialize_item",
    "serialize_list",
    "serialize_member",
    "serialize_params",
]


class Token(str):
    """A Token (RFC 8941 §3.3.4), kept apart from a String."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Token({str.__repr__(self)})"


BareItem = Union[bool, int, decimal.Decimal, float, str, Token, bytes]
Params = Dict[str, BareItem]


@dataclass
class Item:
    """A bare item with parameters."""

    value: BareItem
    params: Params = field(default_factory=dict)


@dataclass
class InnerList:
    """An Inner List: items, with parameters of its own."""

    items: List[Item]
    params: Params = field(default_factory=dict)


Member = Union[Item, InnerList]


class ParseError(ValueError):
    """A field value that RFC 8941 does not allow, with where parsing stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"sf: {message} at offset {offset}")
        self.offset = offset


# Bounds a parser enforces, as the Go codec does; RFC 8941 §3 asks parsers to
# support at least as many, and bounding them bounds the work a hostile
# field can cause.
MAX_MEMBERS = 1024
MAX_INNER_ITEMS = 256
MAX_PARAMS = 256
_MAX_INTEGER = 999_999_999_999_999

_DIGIT = frozenset("0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*\Z")
_TOKEN_RE = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*\Z")
_STRING_RE = re.compile(r"[\x20-\x7e]*\Z")
# The characters of a String that need no escape, in one run.
_STRING_RUN = re.compile(r'[\x20-\x21\x23-\x5b\x5d-\x7e]*')
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Runs the parser takes in one step, matched at a position.
_KEY_AT = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN_AT = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_DIGITS_AT = re.compile(r"[0-9]*")
_B64_AT = re.compile(r"[A-Za-z0-9+/]*")


class _Parser:
    __slots__ = ("s", "i", "reject_duplicates")

    def __init__(self, s: str, reject_duplicates: bool) -> None:
        if not isinstance(s, str):
            raise TypeError("sf: a field value must be a str")
        m = _NON_ASCII.search(s)
        if m:
            raise ParseError("non-ASCII character", m.start())
        self.s = s
        self.i = 0
        self.reject_duplicates = reject_duplicates

    def fail(self, message: str) -> ParseError:
        return ParseError(message, self.i)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_sp(self) -> None:
        s, i = self.s, self.i
        while i < len(s) and s[i] == " ":
            i += 1
        self.i = i

    def skip_ows(self) -> None:
        s, i = self.s, self.i
        while i < len(s) and s[i] in " \t":
            i += 1
        self.i = i

    def finish(self) -> None:
        self.skip_sp()
        if self.i != len(self.s):
            raise self.fail("unexpected character")

    def next_member(self) -> bool:
        """Consumes the separator after a member; reports whether the field ended."""
        self.skip_ows()
        if self.i == len(self.s):
            return True
        if self.s[self.i] != ",":
            raise self.fail('expected ","')
        self.i += 1
        self.skip_ows()
        if self.i == len(self.s):
            raise self.fail('trailing ","')
        return False

    def duplicate(self, key: str, at: int) -> None:
        if self.reject_duplicates:
            self.i = at
            raise self.fail(f'duplicate key "{key}"')

    def list(self) -> List[Member]:
        out: List[Member] = []
        while self.i < len(self.s):
            if len(out) == MAX_MEMBERS:
                raise self.fail("too many list members")
            out.append(self.item_or_inner_list())
            if self.next_member():
                break
        return out

    def dictionary(self) -> Dict[str, Member]:
        out: Dict[str, Member] = {}
        while self.i < len(self.s):
            at = self.i
            key = self.key()
            member: Member
            if self.peek() == "=":
                self.i += 1
                member = self.item_or_inner_list()
            else:
                member = Item(True, self.params())
            if key in out:
                self.duplicate(key, at)
            elif len(out) == MAX_MEMBERS:
                raise self.fail("too many dictionary members")
            out[key] = member
            if self.next_member():
                break
        return out

    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    def inner_list(self) -> InnerList:
        self.i += 1  # "("
        items: List[Item] = []
        while True:
            self.skip_sp()
            if self.i == len(self.s):
                raise self.fail("unterminated inner list")
            if self.s[self.i] == ")":
                self.i += 1
                return InnerList(items, self.params())
            if len(items) == MAX_INNER_ITEMS:
                raise self.fail("too many inner list items")
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail('expected " " or ")" in inner list')

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def params(self) -> Params:
        out: Params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            at = self.i
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            if key in out:
                self.duplicate(key, at)
            elif len(out) == MAX_PARAMS:
                raise self.fail("too many parameters")
            out[key] = value
        return out

    def key(self) -> str:
        m = _KEY_AT.match(self.s, self.i)
        if m is None:
            raise self.fail("expected a key")
        self.i = m.end()
        return m.group()

    def bare_item(self) -> BareItem:
        c = self.peek()
        if c and (c == "-" or c in _DIGIT):
            return self.number()
        if c == '"':
            return self.string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        if c and (c in _ALPHA or c == "*"):
            return self.token()
        raise self.fail("expected a bare item")

    def number(self) -> Union[int, decimal.Decimal]:
        s = self.s
        negative = s[self.i] == "-"
        if negative:
            self.i += 1
        start = self.i
        whole = _DIGITS_AT.match(s, start).end() - start  # type: ignore[union-attr]
        if whole == 0:
            raise self.fail("expected a digit")
        if whole > 15:
            self.i = start + 15
            raise self.fail("integer has too many digits")
        self.i = start + whole
        if self.i == len(s) or s[self.i] != ".":
            n = int(s[start : self.i])
            return -n if negative else n
        if whole > 12:
            raise self.fail("decimal has too many integer digits")
        self.i += 1
        frac = _DIGITS_AT.match(s, self.i).end() - self.i  # type: ignore[union-attr]
        if frac == 0:
            raise self.fail('decimal ends with "."')
        if frac > 3:
            self.i += 3
            raise self.fail("decimal has too many fractional digits")
        self.i += frac
        d = decimal.Decimal(s[start : self.i])
        return -d if negative else d

    def string(self) -> str:
        s = self.s
        self.i += 1  # opening DQUOTE
        parts: List[str] = []
        while True:
            m = _STRING_RUN.match(s, self.i)
            assert m is not None
            parts.append(m.group())
            self.i = m.end()
            if self.i == len(s):
                raise self.fail("unterminated string")
            c = s[self.i]
            if c == '"':
                self.i += 1
                return "".join(parts)
            if c == "\\":
                if self.i + 1 == len(s) or s[self.i + 1] not in '"\\':
                    raise self.fail("bad escape in string")
                parts.append(s[self.i + 1])
                self.i += 2
                continue
            raise self.fail("invalid character in string")

    def token(self) -> Token:
        m = _TOKEN_AT.match(self.s, self.i)
        assert m is not None  # bare_item saw its first character
        self.i = m.end()
        return Token(m.group())

    def byte_sequence(self) -> bytes:
        s = self.s
        self.i += 1  # ":"
        start = self.i
        i = data_end = _B64_AT.match(s, start).end()  # type: ignore[union-attr]
        while i < len(s) and s[i] == "=" and i - data_end < 2:
            i += 1
        self.i = i
        if i == len(s) or s[i] != ":":
            raise self.fail("bad byte sequence")
        # Padding may be absent (RFC 8941 §4.2.7), but what is there must
        # make whole quanta; one character alone never encodes a byte.
        n, pad = data_end - start, i - data_end
        if n % 4 == 1 or (pad and (n + pad) % 4):
            raise self.fail("bad byte sequence length")
        self.i += 1
        text = s[start:data_end]
        try:
            return base64.b64decode(text + "=" * (-n % 4))
        except (binascii.Error, ValueError):
            raise self.fail("bad byte sequence") from None

    def boolean(self) -> bool:
        s = self.s
        if self.i + 1 < len(s) and s[self.i + 1] in "01":
            value = s[self.i + 1] == "1"
            self.i += 2
            return value
        raise self.fail('expected "?0" or "?1"')


def parse_item(value: str, *, reject_duplicates: bool = False) -> Item:
    """Parses an Item field value; see :func:`parse_dictionary` for ``reject_duplicates``."""
    p = _Parser(value, reject_duplicates)
    p.skip_sp()
    out = p.item()
    p.finish()
    return out


def parse_list(value: str) -> List[Member]:
    """Parses a List field value."""
    p = _Parser(value, False)
    p.skip_sp()
    out = p.list()
    p.finish()
    return out


def parse_dictionary(value: str, *, reject_duplicates: bool = False) -> Dict[str, Member]:
    """Parses a Dictionary field value.

    With ``reject_duplicates``, a key given twice, in the dictionary or in any
    set of parameters, is a :class:`ParseError` rather than RFC 8941's "the
    last one wins".
    """
    p = _Parser(value, reject_duplicates)
    p.skip_sp()
    out = p.dictionary()
    p.finish()
    return out


def is_key(s: object) -> bool:
    """Reports whether s is a valid key (of a Dictionary or a parameter)."""
    return isinstance(s, str) and _KEY_RE.match(s) is not None


def _serialize_decimal(v: Union[decimal.Decimal, float]) -> str:
    try:
        d = decimal.Decimal(v).quantize(decimal.Decimal("0.001"), rounding=decimal.ROUND_HALF_EVEN)
    except decimal.InvalidOperation:
        raise ValueError("sf: a Decimal must be finite") from None
    if not d.is_finite():
        raise ValueError("sf: a Decimal must be finite")
    sign, digits, _ = d.as_tuple()
    thousandths = int("".join(map(str, digits)) or "0")
    whole, frac = divmod(thousandths, 1000)
    if whole > 999_999_999_999:
        raise ValueError("sf: Decimal out of range")
    frac_text = f"{frac:03d}".rstrip("0") or "0"
    return f"{'-' if sign and thousandths else ''}{whole}.{frac_text}"


def serialize_bare_item(v: BareItem) -> str:
    """Serialises a bare item."""
    if isinstance(v, bool):
        return "?1" if v else "?0"
    if isinstance(v, int):
        if abs(v) > _MAX_INTEGER:
            raise ValueError("sf: Integer out of range")
        return str(v)
    if isinstance(v, (decimal.Decimal, float)):
        return _serialize_decimal(v)
    if isinstance(v, Token):
        if not _TOKEN_RE.match(v):
            raise ValueError(f"sf: invalid Token {str.__repr__(v)}")
        return str(v)
    if isinstance(v, str):
        if not _STRING_RE.match(v):
            raise ValueError("sf: a String holds only printable ASCII (%x20-7E)")
        if '"' in v or "\\" in v:
            v = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{v}"'
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ":" + base64.b64encode(bytes(v)).decode("ascii") + ":"
    raise TypeError(f"sf: cannot serialise a {type(v).__name__}")


def serialize_params(params: Optional[Mapping[str, BareItem]]) -> str:
    """Serialises parameters; a Boolean true is written as the bare key."""
    if not params:
        return ""
    out = []
    for k, v in params.items():
        if not is_key(k):
            raise ValueError(f"sf: invalid key {k!r}")
        out.append(f";{k}" if v is True else f";{k}={serialize_bare_item(v)}")
    return "".join(out)


def serialize_item(item: Item) -> str:
    """Serialises an Item."""
    return serialize_bare_item(item.value) + serialize_params(item.params)


def serialize_member(member: Member) -> str:
    """Serialises an Item or an Inner List: a member's value, without its key."""
    if isinstance(member, InnerList):
        return "(" + " ".join(map(serialize_item, member.items)) + ")" + serialize_params(member.params)
    return serialize_item(member)


def serialize_list(members: List[Member]) -> str:
    """Serialises a List."""
    return ", ".join(map(serialize_member, members))


def serialize_dictionary(members: Mapping[str, Member]) -> str:
    """Serialises a Dictionary. A member whose value is Boolean true is written as its bare key."""
    out = []
    for k, m in members.items():
        if not is_key(k):
            raise ValueError(f"sf: invalid key {k!r}")
        if isinstance(m, Item) and m.value is True:
            out.append(k + serialize_params(m.params))
        else:
            out.append(f"{k}={serialize_member(m)}")
    return ", ".join(out)
