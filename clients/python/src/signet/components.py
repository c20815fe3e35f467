"""Component identifiers, component values and the signature base (RFC 9421 §2)."""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import sf
from .message import ComponentError, Message, Request, Response, normalize_authority

__all__ = [
    "Component",
    "FieldType",
    "parse_component",
    "parse_components",
    "signature_base",
]

FieldType = str
"""The top-level type of a structured field: ``"item"``, ``"list"`` or ``"dictionary"``."""

# The derived components of RFC 9421 §2.2.
_DERIVED = frozenset(
    ["@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query", "@query-param", "@status"]
)
_FIELD_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")
_FLAGS = ("sf", "bs", "req", "tr")

# Fields registered with a structured type in the IANA HTTP Field Name
# Registry: the same table as the Go and Node.js packages'.
KNOWN_STRUCTURED: Mapping[str, FieldType] = {
    "accept-ch": "list",
    "accept-signature": "dictionary",
    "cache-groups": "list",
    "cache-status": "list",
    "capsule-protocol": "item",
    "cdn-cache-control": "dictionary",
    "client-cert": "item",
    "client-cert-chain": "list",
    "content-digest": "dictionary",
    "cross-origin-embedder-policy": "item",
    "cross-origin-opener-policy": "item",
    "origin-agent-cluster": "item",
    "priority": "dictionary",
    "proxy-status": "list",
    "repr-digest": "dictionary",
    "reporting-endpoints": "dictionary",
    "signature": "dictionary",
    "signature-input": "dictionary",
    "want-content-digest": "dictionary",
    "want-repr-digest": "dictionary",
}


class Component:
    """A component identifier (RFC 9421 §2): a derived component such as
    ``@method``, or an HTTP field by its lower-case name, with the
    parameters that say how to take its value.

    Parameters keep the order they were parsed in, because the signature
    base repeats them verbatim. Two identifiers are equal when they name the
    same component, whatever the order of their parameters.
    """

    __slots__ = ("name", "params", "key", "param", "sf", "bs", "req", "tr", "_id")

    def __init__(self, name: str, params: Optional[Mapping[str, sf.BareItem]] = None) -> None:
        self.name = name
        self.params: Dict[str, sf.BareItem] = dict(params or {})
        self.key: Optional[str] = None
        self.param: Optional[str] = None
        self.sf = self.bs = self.req = self.tr = False
        for k, v in self.params.items():
            if k in ("key", "name"):
                if not isinstance(v, str) or isinstance(v, sf.Token):
                    raise ValueError(f"component {name!r}: parameter {k} must be a String")
                if k == "key":
                    self.key = v
                else:
                    self.param = v
            elif k in _FLAGS:
                if v is not True:
                    raise ValueError(f"component {name!r}: parameter {k} must be the Boolean true")
                setattr(self, k, True)
            else:
                raise ValueError(f"component {name!r}: unknown parameter {k!r}")
        self._validate()
        self._id = sf.serialize_item(sf.Item(name, self.params))

    def _validate(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise ValueError("empty component name")
        if name[0] == "@":
            if name == "@signature-params":
                raise ValueError('"@signature-params" cannot be a covered component')
            if name not in _DERIVED:
                raise ValueError(f"unknown derived component {name!r}")
            if name == "@query-param":
                if not self.param:
                    raise ValueError('component "@query-param" needs a name parameter')
            elif self.param is not None:
                raise ValueError(f"component {name!r} takes no name parameter")
            if self.key is not None or self.sf or self.bs or self.tr:
                raise ValueError(f"component {name!r} takes only the req parameter")
            if name == "@status" and self.req:
                raise ValueError('"@status";req names nothing: a request has no status')
            return
        if any(c not in _FIELD_NAME_CHARS for c in name):
            raise ValueError(f"component {name!r} is not a lower-case field name")
        if self.param is not None:
            raise ValueError(f"field component {name!r} takes no name parameter")
        if self.bs and (self.sf or self.key is not None):
            raise ValueError(f"component {name!r}: bs cannot be combined with sf or key")

    @property
    def id(self) -> str:
        """The serialised identifier, as in a base line or a Signature-Input field."""
        return self._id

    def _identity(self) -> Tuple[object, ...]:
        return (self.name, self.key, self.param, self.sf, self.bs, self.req, self.tr)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Component) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __str__(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"Component({self._id})"

    @classmethod
    def from_item(cls, item: sf.Item) -> "Component":
        """Makes a component from a parsed sf Item (a String with parameters)."""
        if not isinstance(item.value, str) or isinstance(item.value, sf.Token):
            raise ValueError("a component identifier must be a String")
        return cls(item.value, item.params)


def parse_component(text: Union[str, Component]) -> Component:
    """Parses a component identifier such as ``"content-type"`` or
    ``"@query-param";name="id"``. A bare name without quotes, such as
    ``@method`` or ``example-dict;key="a"``, is accepted too.
    """
    if isinstance(text, Component):
        return text
    s = text
    if not s.startswith('"'):
        name, sep, rest = s.partition(";")
        s = f'"{name}"' + (";" + rest if sep else "")
    try:
        item = sf.parse_item(s, reject_duplicates=True)
    except sf.ParseError as e:
        raise ValueError(f"component {text}: {e}") from None
    return Component.from_item(item)


def parse_components(components: Union[Iterable[Union[str, Component]], str]) -> List[Component]:
    """Parses component identifiers: an iterable of them, or one string of
    identifiers separated by spaces or commas (``'@method @path "content-type"'``).
    A component given twice is an error.
    """
    items: List[Union[str, Component]] = list(_split_outside_quotes(components) if isinstance(components, str) else components)
    out = [parse_component(c) for c in items]
    check_duplicates(out)
    return out


def check_duplicates(components: Sequence[Component]) -> None:
    seen = set()
    for c in components:
        if c in seen:
            raise ValueError(f"component {c.id} is covered twice")
        seen.add(c)


def _split_outside_quotes(s: str) -> List[str]:
    out: List[str] = []
    start, quoted, i = -1, False, 0
    while i < len(s):
        c = s[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c in " ,\t":
            if start >= 0:
                out.append(s[start:i])
                start = -1
            i += 1
            continue
        if start < 0:
            start = i
        i += 1
    if start >= 0:
        out.append(s[start:])
    return out


def _field_line(v: str) -> str:
    """One field line with surrounding whitespace trimmed and obsolete line
    folding replaced by a single space. A bare line break is kept, for the
    base builder to refuse."""
    v = v.strip(" \t")
    if "\n" not in v:
        return v
    out: List[str] = []
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        if c not in "\r\n":
            out.append(c)
            i += 1
            continue
        j = i
        if c == "\r" and j + 1 < n and v[j + 1] == "\n":
            j += 1
        if j + 1 < n and v[j + 1] in " \t":
            # obs-fold = OWS CRLF RWS: drop the whitespace on both sides.
            while out and out[-1] in " \t":
                out.pop()
            while j + 1 < n and v[j + 1] in " \t":
                j += 1
            out.append(" ")
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def form_reencode(s: str) -> str:
    """Decodes s as the WHATWG application/x-www-form-urlencoded parser does
    ('+' is a space, %XX a byte, the result UTF-8 with invalid sequences
    replaced) and percent-encodes it again with that format's encode set,
    space as %20 (RFC 9421 §2.2.8)."""
    raw = s.encode("latin-1")
    decoded = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x2B:  # "+"
            c = 0x20
        elif c == 0x25 and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            c = int(raw[i + 1 : i + 3], 16)
            i += 2
        decoded.append(c)
        i += 1
    text = decoded.decode("utf-8", "replace").encode("utf-8")
    return "".join(chr(b) if b in _FORM_SAFE else f"%{b:02X}" for b in text)


class _BaseBuilder:
    def __init__(self, message: Message, structured: Optional[Mapping[str, FieldType]]) -> None:
        self.message = message
        self.structured = structured or {}

    def request_for(self, c: Component) -> Request:
        m = self.message
        if c.req and not isinstance(m, Response):
            raise ComponentError(c.id, "the req parameter applies only to responses", False)
        if isinstance(m, Response):
            if not c.req and c.name != "@status" and c.name[0] == "@":
                raise ComponentError(c.id, f"a response has no {c.name}; use the req parameter", False)
            if m.request is None:
                raise ComponentError(c.id, "no request to take it from", True)
            return m.request
        return m

    def lines(self, c: Component) -> List[str]:
        if c.name == "@query-param":
            return self.query_param(c)
        value = self.derived(c) if c.name[0] == "@" else self.field(c)
        return [f"{c.id}: {value}"]

    def derived(self, c: Component) -> str:
        if c.name == "@status":
            if not isinstance(self.message, Response):
                raise ComponentError(c.id, "a request has no status", False)
            code = self.message.status
            if not 100 <= code <= 999:
                raise ComponentError(c.id, f"status {code} is not three digits", False)
            return str(code)
        r = self.request_for(c)
        t = r.split_target
        if c.name == "@method":
            return r.method
        if c.name == "@scheme":
            return r.scheme
        if c.name == "@authority":
            return self.authority(c, r)
        if c.name == "@request-target":
            return t.target
        if c.name == "@path":
            if not t.has_path:
                raise ComponentError(c.id, f"request target {t.target!r} has no path", False)
            return t.path
        if c.name == "@query":
            return "?" + t.query
        if c.name == "@target-uri":
            if not t.has_path:
                raise ComponentError(c.id, f"request target {t.target!r} has no path", False)
            return f"{r.scheme}://{self.authority(c, r)}{t.path}" + (f"?{t.query}" if t.has_query else "")
        raise ComponentError(c.id, "unknown derived component", False)

    @staticmethod
    def authority(c: Component, r: Request) -> str:
        if not r.host:
            raise ComponentError(c.id, "the request has no host", True)
        try:
            return normalize_authority(r.host, r.scheme)
        except ValueError as e:
            raise ComponentError(c.id, str(e), False) from None

    def query_param(self, c: Component) -> List[str]:
        r = self.request_for(c)
        out = []
        for pair in r.split_target.query.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            if form_reencode(name) == c.param:
                out.append(f"{c.id}: {form_reencode(value)}")
        if not out:
            raise ComponentError(c.id, f"the query has no parameter {c.param!r}", True)
        return out

    def field(self, c: Component) -> str:
        m = self.message
        source: Message = m
        if c.req:
            if not isinstance(m, Response):
                raise ComponentError(c.id, "the req parameter applies only to responses", False)
            if m.request is None:
                raise ComponentError(c.id, "no request to take it from", True)
            source = m.request
        table = source.trailers if c.tr else source.fields
        lines = None if table is None else table.get(c.name)
        if lines is None:
            where = "trailer" if c.tr else "header"
            raise ComponentError(c.id, f"the message has no such {where} field", True)
        if c.bs:
            return ", ".join(sf.serialize_bare_item(_field_line(v).encode("latin-1")) for v in lines)
        if c.key is not None or c.sf:
            return self.structured_value(c, lines)
        return ", ".join(_field_line(v) for v in lines)

    def structured_value(self, c: Component, lines: List[str]) -> str:
        typ = self.structured.get(c.name) or KNOWN_STRUCTURED.get(c.name)
        if c.key is not None:
            if typ is not None and typ != "dictionary":
                raise ComponentError(c.id, "the key parameter needs a Dictionary field", False)
            typ = "dictionary"
        if typ is None:
            raise ComponentError(c.id, "the structured type of this field is not known", False)
        joined = ", ".join(_field_line(v) for v in lines)
        try:
            if typ == "item":
                return sf.serialize_item(sf.parse_item(joined))
            if typ == "list":
                return sf.serialize_list(sf.parse_list(joined))
            if typ != "dictionary":
                raise ComponentError(c.id, f"unknown structured type {typ!r}", False)
            members = sf.parse_dictionary(joined)
        except (sf.ParseError, ValueError) as e:
            if isinstance(e, ComponentError):
                raise
            raise ComponentError(c.id, f"the field is not a valid structured field: {e}", False) from None
        if c.key is None:
            return sf.serialize_dictionary(members)
        member = members.get(c.key)
        if member is None:
            raise ComponentError(c.id, f"the dictionary has no member {c.key!r}", True)
        return sf.serialize_member(member)


def signature_base(
    message: Message,
    components: Sequence[Component],
    signature_params: str,
    *,
    structured: Optional[Mapping[str, FieldType]] = None,
) -> str:
    """Returns the signature base of message for the covered components and
    the serialised ``@signature-params`` value (RFC 9421 §2.5), as a string
    of octets (one character per byte). Raises :class:`ComponentError` when
    a component has no value.
    """
    b = _BaseBuilder(message, structured)
    out: List[str] = []
    for c in components:
        for line in b.lines(c):
            value = line[len(c.id) + 2 :]
            if "\n" in value or "\r" in value:
                raise ComponentError(c.id, "value contains a line break", False)
            out.append(line)
    out.append(f'"@signature-params": {signature_params}')
    return "\n".join(out)


def base_bytes(base: str) -> bytes:
    """The signature base as the bytes that are signed."""
    return base.encode("latin-1")
