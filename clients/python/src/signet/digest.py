"""The Content-Digest field of RFC 9530, with sha-256 and sha-512."""

from __future__ import annotations

import hashlib
import hmac
from typing import Dict, Iterable, Union

from . import sf
from .errors import Reason, VerifyError

__all__ = ["DIGEST_ALGORITHMS", "Digester", "check_content_digest", "content_digest"]

DIGEST_ALGORITHMS = ("sha-256", "sha-512")
"""The digest algorithms this package computes and checks. Others found in a
received field are ignored, as RFC 9530 §2 allows."""

_HASHES = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}

Content = Union[bytes, bytearray, memoryview]


def _hash(alg: str):  # type: ignore[no-untyped-def]
    try:
        return _HASHES[alg]()
    except KeyError:
        raise ValueError(f"signet: unsupported digest algorithm {alg!r} (use sha-256 or sha-512)") from None


class Digester:
    """Computes a Content-Digest value over content written to it piece by
    piece, so that a large body is hashed as it streams by."""

    __slots__ = ("alg", "_h")

    def __init__(self, alg: str = "sha-256") -> None:
        self._h = _hash(alg)
        self.alg = alg

    def update(self, data: Content) -> None:
        self._h.update(data)

    def value(self) -> str:
        """The Content-Digest field value of the content so far, such as ``sha-256=:…:``."""
        return f"{self.alg}={sf.serialize_bare_item(self._h.digest())}"


def content_digest(content: Union[Content, Iterable[Content]], alg: str = "sha-256") -> str:
    """Returns the Content-Digest field value for content (bytes, or an
    iterable of byte chunks), such as ``sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:``."""
    d = Digester(alg)
    if isinstance(content, (bytes, bytearray, memoryview)):
        d.update(content)
    else:
        for chunk in content:
            d.update(chunk)
    return d.value()


def _refuse(detail: str) -> VerifyError:
    return VerifyError(Reason.DIGEST_MISMATCH, detail)


def check_content_digest(field: str, content: Content) -> None:
    """Checks a Content-Digest field value against content.

    Every member whose algorithm is sha-256 or sha-512 must match; others are
    ignored; a field with neither is refused. Raises :class:`VerifyError`
    with reason ``digest-mismatch``; digests are compared in constant time.
    """
    try:
        members = sf.parse_dictionary(field)
    except sf.ParseError as e:
        raise _refuse(f"Content-Digest is not a valid Dictionary: {e}") from None
    wanted: Dict[str, bytes] = {}
    for alg, m in members.items():
        if alg not in _HASHES:
            continue
        if not isinstance(m, sf.Item) or not isinstance(m.value, bytes):
            raise _refuse(f"Content-Digest {alg} is not a Byte Sequence")
        wanted[alg] = m.value
    if not wanted:
        raise _refuse("Content-Digest has no sha-256 or sha-512 member")
    for alg, want in wanted.items():
        if not hmac.compare_digest(want, _HASHES[alg](content).digest()):
            raise _refuse(f"the content does not match Content-Digest {alg}")
