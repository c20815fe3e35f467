"""The RFC 9457 problem details a Signet server refuses a request with."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .errors import Refused

__all__ = ["DEFAULT_PROBLEM_BASE", "Problem", "raise_for_refusal", "read_problem"]

DEFAULT_PROBLEM_BASE = "https://signet.dev/problems/"
"""The base of the problem types of a Signet server; its reason code follows."""

# What is read of a refusal's body, at most, to find its reason.
MAX_PROBLEM_BYTES = 64 << 10

_REASON_SHAPE = re.compile(r"[a-z]+(?:-[a-z]+)*\Z")


@dataclass(frozen=True)
class Problem:
    """The problem details of a refused request.

    ``reason`` is the reason code: the last segment of ``type`` when it has
    the shape of one (lower-case words joined by "-"). ``signet`` reports
    whether the answer is a Signet server's own: its ``type`` starts with
    the server's problem base and, for a 401, it challenges with
    ``WWW-Authenticate: Signature``. An API behind the gateway can answer
    problems of its own, which a client must not mistake for the gateway's.
    """

    status: int
    type: str
    reason: Optional[str]
    signet: bool
    title: Optional[str] = None
    detail: Optional[str] = None
    label: Optional[str] = None
    """The label of the signature concerned, if the server named one."""
    signature_base: Optional[str] = None
    """The server's signature base, when its debug mode is on."""
    body: Dict[str, Any] = field(default_factory=dict, repr=False)

    def exception(self) -> Refused:
        """A :class:`signet.Refused` exception for this refusal."""
        return Refused(self.status, self.reason, self.body)


def _get(headers: Any, name: str) -> Optional[str]:
    v = headers(name) if callable(headers) else headers.get(name)
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v if isinstance(v, str) else None


def challenges_signature(www_authenticate: Optional[str]) -> bool:
    """Reports whether a WWW-Authenticate value holds a challenge of the
    Signature scheme."""
    if not www_authenticate:
        return False
    for part in www_authenticate.split(","):
        words = part.split(None, 1)
        if words and "=" not in words[0] and words[0].lower() == "signature":
            return True
    return False


def parse_problem(status: int, headers: Any, body: bytes, problem_base: str = DEFAULT_PROBLEM_BASE) -> Optional[Problem]:
    """Reads the problem details of a response from its parts: its status,
    its header fields (a mapping with case-insensitive ``get``, or a
    function of a name) and its body. Returns None when the response is not
    ``application/problem+json`` with a ``type``."""
    ctype = (_get(headers, "content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/problem+json" or len(body) > MAX_PROBLEM_BYTES:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        return None
    typ = doc["type"]
    tail = typ[max(typ.rfind("/"), typ.rfind("#"), typ.rfind(":")) + 1 :]
    reason = tail if _REASON_SHAPE.match(tail) else None
    own = typ.startswith(problem_base) and _REASON_SHAPE.match(typ[len(problem_base) :]) is not None
    if status == 401:
        own = own and challenges_signature(_get(headers, "www-authenticate"))

    def text(name: str) -> Optional[str]:
        v = doc.get(name)
        return v if isinstance(v, str) else None

    return Problem(
        status=status,
        type=typ,
        reason=reason,
        signet=own,
        title=text("title"),
        detail=text("detail"),
        label=text("signature"),
        signature_base=text("signature_base"),
        body=doc,
    )


def read_problem(response: Any, problem_base: str = DEFAULT_PROBLEM_BASE) -> Optional[Problem]:
    """Reads the problem details of a ``requests`` or ``httpx`` response
    (anything with ``status_code``, ``headers`` and ``content``); None when
    it holds none."""
    return parse_problem(response.status_code, response.headers, response.content, problem_base)


def raise_for_refusal(response: Any, problem_base: str = DEFAULT_PROBLEM_BASE) -> None:
    """Raises :class:`signet.Refused`, carrying the reason code, when a
    ``requests`` or ``httpx`` response is a Signet server's refusal."""
    problem = read_problem(response, problem_base)
    if problem is not None and problem.signet:
        raise problem.exception()
