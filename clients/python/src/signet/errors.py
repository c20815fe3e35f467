"""Reason codes and the exceptions of refused messages."""

from __future__ import annotations

import enum
from typing import Any, Mapping, Optional

__all__ = ["Reason", "Refused", "SignetError", "VerifyError"]


class Reason(str, enum.Enum):
    """The stable reason codes of a refused message (Signet's DESIGN.md).

    A Signet server puts one at the end of the ``type`` of its
    ``application/problem+json`` answer; :class:`VerifyError` carries one.
    Members compare equal to their code: ``Reason.EXPIRED == "expired"``.
    """

    MISSING_SIGNATURE = "missing-signature"
    MALFORMED_SIGNATURE = "malformed-signature"
    UNKNOWN_KEY = "unknown-key"
    KEY_REVOKED = "key-revoked"
    KEY_EXPIRED = "key-expired"
    ALGORITHM_MISMATCH = "algorithm-mismatch"
    MISSING_COMPONENT = "missing-component"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REPLAYED = "replayed"
    DIGEST_MISMATCH = "digest-mismatch"
    BAD_SIGNATURE = "bad-signature"
    INSUFFICIENT_SCOPE = "insufficient-scope"

    def __str__(self) -> str:
        return self.value

    @property
    def status(self) -> int:
        """The HTTP status a server answers with: 403 for insufficient-scope, else 401."""
        return 403 if self is Reason.INSUFFICIENT_SCOPE else 401


class SignetError(Exception):
    """The base class of this package's errors."""


class VerifyError(SignetError):
    """A message that was refused.

    ``reason`` says why in one stable word (a :class:`Reason`); ``label``
    names the signature concerned, if any; ``detail`` is for people. None of
    them ever holds key material. ``base`` is the signature base the
    verifier built, when its debug mode is on and the failure came after
    building it.

    A key resolver raises ``VerifyError(Reason.KEY_REVOKED, ...)`` or
    ``VerifyError(Reason.KEY_EXPIRED, ...)`` for a key it knows but that
    cannot be used.
    """

    def __init__(self, reason: Reason | str, detail: str = "", *, label: Optional[str] = None, base: Optional[str] = None) -> None:
        super().__init__(reason, detail)
        self.reason = Reason(reason)
        self.detail = detail
        self.label = label
        self.base = base

    def __str__(self) -> str:
        msg = f"signet: {self.reason.value}"
        if self.label:
            msg += f" ({self.label})"
        if self.detail:
            msg += f": {self.detail}"
        return msg


class Refused(SignetError):
    """A response in which a Signet server refused a request.

    ``reason`` is the reason code at the end of the problem ``type`` (a
    :class:`Reason`, or the text of a code this package does not know, such
    as ``body-too-large`` or ``unavailable``); ``status`` is the HTTP status;
    ``problem`` the RFC 9457 problem details as received.
    """

    def __init__(self, status: int, reason: Optional[str], problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.reason: Optional[Reason | str]
        try:
            self.reason = Reason(reason) if reason is not None else None
        except ValueError:
            self.reason = reason
        detail = problem.get("detail")
        msg = f"signet: refused with {status}"
        if self.reason is not None:
            msg += f" {self.reason}"
        if isinstance(detail, str) and detail:
            msg += f": {detail}"
        super().__init__(msg)
