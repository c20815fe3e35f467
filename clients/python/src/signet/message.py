"""The HTTP messages that signatures cover: :class:`Request` and :class:`Response`.

A message keeps what RFC 9421 derives components from exactly as it travels:
the method as sent, the request target raw (percent-encoding untouched), and
field values as byte strings. A field value given as ``str`` holds one octet
per character (code points up to U+00FF, as WSGI and ``http.client`` hold
them); one given as ``bytes`` is taken as it is.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

__all__ = ["Fields", "HeadersLike", "Request", "Response", "normalize_authority"]

FieldValue = Union[str, bytes]
HeadersLike = Union[
    Mapping[str, Union[FieldValue, Sequence[FieldValue]]],
    Iterable[Tuple[Union[str, bytes], FieldValue]],
]
Fields = Dict[str, List[str]]
"""Lower-case field name → its field line values, in order."""

_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_ABSOLUTE_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?\Z", re.S)
_ABOVE_LATIN1 = re.compile(r"[^\x00-\xff]")
_NOT_VISIBLE = re.compile(r"[^\x21-\x7e]")


def _octets(value: object, what: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, str):
        if _ABOVE_LATIN1.search(value):
            raise ValueError(f"signet: {what} has a character above U+00FF; give field values as bytes (UTF-8 or whatever is sent)")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"signet: {what} must be str or bytes, not {type(value).__name__}")


def _add(table: Fields, name: object, value: object) -> None:
    n = _octets(name, "a field name")
    if not _FIELD_NAME.match(n):
        raise ValueError(f"signet: invalid field name {n!r}")
    table.setdefault(n.lower(), []).append(_octets(value, f"the value of {n}"))


def field_table(headers: Optional[HeadersLike]) -> Fields:
    """Builds the field table of a message.

    ``headers`` is a mapping (whose values may be lists, for a field sent on
    several lines), or an iterable of ``(name, value)`` pairs in which a name
    may repeat. Names are matched without regard to case.
    """
    table: Fields = {}
    if headers is None:
        return table
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if isinstance(value, (list, tuple)):
                for v in value:
                    _add(table, name, v)
            else:
                _add(table, name, value)
        return table
    for pair in headers:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError("signet: headers must be a mapping or (name, value) pairs")
        _add(table, pair[0], pair[1])
    return table


def _body(body: Union[bytes, bytearray, memoryview, str, None]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError("signet: a body must be bytes or str (encoded as UTF-8); read a stream first, or set Content-Digest")


class ComponentError(ValueError):
    """A covered component that has no value in a message.

    ``absent`` is set when the message lacks what the component names (a
    field, a query parameter, a dictionary member), as opposed to an
    identifier that cannot apply to this message at all.
    """

    def __init__(self, component: str, message: str, absent: bool) -> None:
        super().__init__(f"component {component}: {message}")
        self.absent = absent


_DEFAULT_PORTS = {"https": "443", "http": "80"}


def normalize_authority(host: str, scheme: str) -> str:
    """Normalises an authority as RFC 9110 §4.2.3 says (RFC 9421 §2.2.3).

    Lower case, no default port for the scheme, no empty port, the port
    without leading zeros, and no IPv6 zone (which is never sent). A
    non-ASCII host is an error: its A-label (punycode) form is what is sent,
    and what must be signed. This is the Go package's normalisation, byte
    for byte.
    """
    name, port = host, ""
    i = host.rfind(":")
    if i >= 0 and "]" not in host[i:]:
        name, port = host[:i], host[i + 1 :]
    z = name.find("%25")
    if z >= 0 and name.startswith("["):
        name = name[:z] + "]"
    if not name.isascii():
        raise ValueError(f"the host {name!r} is not ASCII; sign its punycode (A-label) form, which is what is sent")
    while len(port) > 1 and port[0] == "0":
        port = port[1:]
    if _DEFAULT_PORTS.get(scheme) == port:
        port = ""
    out = f"{name}:{port}" if port else name
    return out.translate(_UPPER_TO_LOWER)


_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Target:
    """A request target split into the parts components need."""

    __slots__ = ("target", "path", "query", "has_path", "has_query")

    def __init__(self, target: str, method: str) -> None:
        self.target = target
        self.path = ""
        self.query = ""
        self.has_path = False
        self.has_query = False
        if target == "*" or (method == "CONNECT" and not target.startswith("/")):
            return
        pq = target
        if not target.startswith("/"):
            # absolute-form: skip scheme "://" authority
            i = target.find("://")
            if i >= 0:
                pq = target[i + 3 :]
                j = min((k for k in (pq.find(c) for c in "/?#") if k >= 0), default=-1)
                pq = pq[j:] if j >= 0 else ""
        hash_at = pq.find("#")
        if hash_at >= 0:
            pq = pq[:hash_at]
        path, sep, query = pq.partition("?")
        self.path = path or "/"
        self.query = query
        self.has_query = bool(sep)
        self.has_path = True


class Request:
    """An HTTP request, as it is sent or as it was received.

    ``url`` is an absolute URL (``https://api.example.com/v1/orders?x=1``)
    or, as a server receives it, an origin-form target (``/v1/orders?x=1``),
    whose authority is then the ``Host`` field and whose scheme is
    ``scheme`` (https unless given). A fragment is never part of the
    target. The path and query are taken raw, percent-encoding and all: pass
    them as they are sent. ``request_target`` overrides the target the
    ``@request-target`` component sees (for an absolute-form request line,
    say). ``body`` is the content (``str`` is encoded as UTF-8); ``trailers``
    serve components with the ``tr`` parameter.
    """

    __slots__ = ("method", "scheme", "host", "target", "fields", "trailers", "body", "_split")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Optional[HeadersLike] = None,
        body: Union[bytes, bytearray, memoryview, str, None] = None,
        *,
        scheme: Optional[str] = None,
        trailers: Optional[HeadersLike] = None,
        request_target: Optional[str] = None,
    ) -> None:
        if not isinstance(method, str) or not method:
            raise ValueError("signet: a request needs a method")
        if not isinstance(url, str):
            raise TypeError("signet: a request URL must be a str")
        self.method = method
        self.fields = field_table(headers)
        self.trailers = field_table(trailers) if trailers is not None else None
        self.body = _body(body)
        hosts = self.fields.get("host")
        if url.startswith("/") or url == "*":
            if not hosts or len(hosts) != 1:
                raise ValueError("signet: a request with an origin-form target needs exactly one Host field")
            self.scheme = (scheme or "https").lower()
            self.host: Optional[str] = hosts[0].strip(" \t")
            self.target = url
        else:
            if _NOT_VISIBLE.search(url):
                raise ValueError("signet: the URL has characters that cannot be sent as they are; percent-encode them")
            m = _ABSOLUTE_URL.match(url)
            if not m:
                raise ValueError(f"signet: the URL must be absolute or origin-form: {url!r}")
            self.scheme = m.group(1).lower()
            if hosts:
                if len(hosts) != 1:
                    raise ValueError("signet: a request has one Host field at most")
                self.host = hosts[0].strip(" \t")
            else:
                self.host = m.group(2)[m.group(2).rfind("@") + 1 :]
            query = m.group(4)
            self.target = (m.group(3) or "/") + ("" if query is None else "?" + query)
        if request_target is not None:
            self.target = request_target
        self._split: Optional[Target] = None

    @property
    def split_target(self) -> Target:
        if self._split is None:
            self._split = Target(self.target, self.method)
        return self._split

    def header(self, name: str) -> Optional[str]:
        """Returns the field's lines combined with ", ", or None when it is absent."""
        lines = self.fields.get(name.lower())
        return None if lines is None else ", ".join(lines)

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.scheme}://{self.host}{self.target})"


class Response:
    """An HTTP response; ``request``, if given, serves components with the ``req`` parameter."""

    __slots__ = ("status", "fields", "trailers", "body", "request")

    def __init__(
        self,
        status: int,
        headers: Optional[HeadersLike] = None,
        body: Union[bytes, bytearray, memoryview, str, None] = None,
        *,
        request: Optional[Request] = None,
        trailers: Optional[HeadersLike] = None,
    ) -> None:
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError("signet: a response status must be an int")
        self.status = status
        self.fields = field_table(headers)
        self.trailers = field_table(trailers) if trailers is not None else None
        self.body = _body(body)
        self.request = request

    def header(self, name: str) -> Optional[str]:
        """Returns the field's lines combined with ", ", or None when it is absent."""
        lines = self.fields.get(name.lower())
        return None if lines is None else ", ".join(lines)

    def __repr__(self) -> str:
        return f"Response({self.status})"


Message = Union[Request, Response]


def with_fields(message: Message, fields: Fields) -> Message:
    """A shallow copy of message with another field table."""
    copy = cast(Message, object.__new__(type(message)))
    for name in type(message).__slots__:
        object.__setattr__(copy, name, getattr(message, name))
    copy.fields = fields
    return copy
