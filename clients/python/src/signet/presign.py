"""Presigned URLs (docs/presigned-urls.md): an RFC 9421 signature carried in
the query of the URL it signs, for clients that cannot add header fields (a
browser's ``<img>``, ``<a href>`` or WebSocket). The same inputs give the
same URL, byte for byte, as the Go package, the Node.js package and the
``signet presign`` command."""

from __future__ import annotations

import math
import re
from typing import Optional, Union

from .keys import Key, Material
from .message import Request
from .sign import DEFAULT_LABEL, Signer

__all__ = ["PRESIGN_INPUT_PARAM", "PRESIGN_SIGNATURE_PARAM", "PRESIGN_TAG", "presign"]

PRESIGN_INPUT_PARAM = "signet-input"
"""The query parameter holding the Signature-Input member."""
PRESIGN_SIGNATURE_PARAM = "signet-sig"
"""The query parameter holding the Signature member."""
PRESIGN_TAG = "signet-presign"
"""The tag of every presigned signature."""

_COMPONENTS = ["@method", "@authority", "@path", "@query"]
_URL = re.compile(r"(?i)(https?)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?\Z", re.S)
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+\Z")


def _escape(s: str) -> str:
    # Every byte but the unreserved ones, upper-case hex: the one encoding
    # every implementation writes.
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in s.encode("ascii"))


def _bad_char(s: str, query: bool) -> int:
    """The index of the first character a client would send otherwise than
    written, or -1."""
    i = 0
    while i < len(s):
        c = s[i]
        if ord(c) < 128 and ord(c) in _UNRESERVED:
            pass
        elif c == "%":
            if len(s) < i + 3 or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                return i
            i += 2
        elif c == "'":
            if query:
                return i
        elif c in "!$&()*+,;=:@/":
            pass
        elif c == "?" and query:
            pass
        else:
            return i
        i += 1
    return -1


def _form_decode(s: str) -> Optional[str]:
    if re.search(r"%(?![0-9A-Fa-f]{2})", s):
        return None
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "+":
            out.append(0x20)
        elif c == "%":
            out.append(int(s[i + 1 : i + 3], 16))
            i += 2
        else:
            out += c.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def _is_presign_name(name: str) -> bool:
    decoded = _form_decode(name) if ("%" in name or "+" in name) else name
    return decoded is not None and decoded.lower() in (PRESIGN_INPUT_PARAM, PRESIGN_SIGNATURE_PARAM)


def presign(
    url: str,
    key_id: str,
    key: Union[Key, Material],
    *,
    expires_in: float,
    method: str = "GET",
    single_use: bool = False,
    nonce: Optional[str] = None,
    created: Optional[int] = None,
    alg: Optional[str] = None,
    label: str = DEFAULT_LABEL,
    include_alg: bool = True,
) -> str:
    """Returns ``url`` with a signature in its query, as the presigned-URL
    profile specifies: the parameters ``signet-input`` and ``signet-sig``
    are appended, the query otherwise kept byte for byte, as is the rest of
    the URL. The signature covers ``@method``, ``@authority``, ``@path`` and
    ``@query`` (the query without the two parameters), with the parameters
    created, keyid, alg, a nonce when ``single_use`` (a server with a
    replay cache then accepts the URL once), expires (``expires_in``
    seconds later, rounded up) and tag ``signet-presign``.

    ``url`` must be an absolute http or https URL without user information,
    whose path and query are written the way every client sends them
    (unreserved characters, sub-delimiters, ``:``, ``@``, ``/``, ``%XX``;
    no ``.`` or ``..`` path segment; no ``'`` in the query); anything else
    is a ``ValueError`` saying what to percent-encode.
    """
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or not expires_in > 0 or math.isinf(expires_in):
        raise ValueError("signet: presign needs expires_in, a positive number of seconds")
    if not _TOKEN.match(method):
        raise ValueError(f"signet: {method!r} is not an HTTP method")
    if nonce is not None and not single_use:
        raise ValueError("signet: a nonce is for a single-use URL")
    m = _URL.match(url)
    if not m:
        raise ValueError(f"signet: {url!r} is not an absolute http or https URL")
    scheme, authority, path, query, fragment = m.groups()
    if "@" in authority:
        raise ValueError("signet: a presigned URL cannot carry user information (user@host): clients do not send it")
    if not authority or not re.fullmatch(r"[A-Za-z0-9\-._~:\[\]]+", authority):
        raise ValueError(f"signet: the host {authority!r} is not one clients send as written")
    i = _bad_char(path, False)
    if i >= 0:
        raise ValueError(f"signet: the path has {path[i]!r} at {i}, which clients send differently; percent-encode it")
    for seg in path.split("/"):
        if re.sub("(?i)%2e", ".", seg) in (".", ".."):
            raise ValueError(f"signet: the path has a {seg!r} segment, which browsers resolve before sending")
    has_query = query is not None
    if has_query:
        i = _bad_char(query, True)
        if i >= 0:
            raise ValueError(f"signet: the query has {query[i]!r} at {i}, which clients send differently; percent-encode it")
        for piece in query.split("&"):
            if _is_presign_name(piece.split("=", 1)[0]):
                raise ValueError(f"signet: the URL already has a {PRESIGN_INPUT_PARAM} or {PRESIGN_SIGNATURE_PARAM} parameter")

    signer = Signer(
        key_id=key_id, key=key, alg=alg, label=label, components=_COMPONENTS, tag=PRESIGN_TAG,
        expires_in=math.ceil(expires_in), nonce=single_use, include_alg=include_alg,
    )
    target = f"{scheme.lower()}://{authority}{path or '/'}{'?' + query if has_query else ''}"
    signed = signer.sign(Request(method, target, []), created=created, nonce=nonce)
    before = url if fragment is None else url[: len(url) - len(fragment)]
    sep = "?" if not has_query else ("" if query == "" else "&")
    return (
        f"{before}{sep}{PRESIGN_INPUT_PARAM}={_escape(signed.headers['Signature-Input'])}"
        f"&{PRESIGN_SIGNATURE_PARAM}={_escape(signed.headers['Signature'])}{fragment or ''}"
    )
