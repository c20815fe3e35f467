"""What the requests and httpx integrations share: signing with a clock
offset per origin, and the decision to correct the clock after a refusal."""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from .components import Component
from .errors import Reason, VerifyError
from .keys import Key, Material
from .message import Request, Response, normalize_authority
from .problem import DEFAULT_PROBLEM_BASE, challenges_signature, parse_problem
from .response import GATEWAY_TAG, GatewayKeys, verify_response
from .sign import Signed, Signer
from .verify import KeyResolver, Verified

DEFAULT_MAX_BODY_BYTES = 32 << 20
"""The size limit of a request body that must be read into memory to compute
its digest (a stream without Content-Digest)."""

DEFAULT_MAX_ORIGINS = 256

# The Date field has whole seconds, and the local clock is read a moment
# after the server's: a correction smaller than this is noise, not a clock
# that is off, and re-signing would change nothing.
_MIN_CORRECTION = 2

_CLOCK_REASONS = (Reason.NOT_YET_VALID.value, Reason.EXPIRED.value)


class ClockOffsets:
    """The clock offset learnt for each origin (server time minus local
    time, in whole seconds), for at most ``max_origins`` origins, the least
    recently used forgotten first. Safe for concurrent use."""

    def __init__(self, max_origins: int = DEFAULT_MAX_ORIGINS) -> None:
        self.max_origins = max(1, max_origins)
        self._offsets: "OrderedDict[str, int]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, origin: str) -> int:
        with self._lock:
            offset = self._offsets.get(origin)
            if offset is None:
                return 0
            self._offsets.move_to_end(origin)
            return offset

    def set(self, origin: str, offset: int) -> None:
        with self._lock:
            self._offsets[origin] = offset
            self._offsets.move_to_end(origin)
            while len(self._offsets) > self.max_origins:
                self._offsets.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._offsets)


def origin_of(scheme: str, host: str) -> str:
    """The origin a clock offset is kept for: scheme and normalised authority."""
    scheme = scheme.lower()
    try:
        return f"{scheme}://{normalize_authority(host, scheme)}"
    except ValueError:
        return f"{scheme}://{host.lower()}"


class SigningClient:
    """Signs outgoing requests for an HTTP client library, and decides when
    a refusal warrants correcting the clock and sending the request again."""

    def __init__(
        self,
        key_id: str,
        key: Union[Key, Material],
        *,
        alg: Optional[str] = None,
        label: str = "sig1",
        components: Optional[Sequence[Union[str, Component]]] = None,
        tag: Optional[str] = None,
        expires_in: Optional[int] = None,
        digest: str = "sha-256",
        retry: bool = True,
        problem_base: str = DEFAULT_PROBLEM_BASE,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_origins: int = DEFAULT_MAX_ORIGINS,
        now: Callable[[], float] = time.time,
        gateway_keys: Union[KeyResolver, str, None] = None,
        gateway_pins: Optional[Sequence[str]] = None,
        require_signed_responses: bool = False,
    ) -> None:
        if isinstance(gateway_keys, str):
            gateway_keys = GatewayKeys(gateway_keys, pins=gateway_pins)
        elif gateway_pins is not None:
            raise ValueError("signet: gateway_pins apply to a JWK set URL given as gateway_keys")
        if require_signed_responses and gateway_keys is None:
            raise ValueError("signet: require_signed_responses needs gateway_keys")
        self.gateway_keys = gateway_keys
        self.require_signed = require_signed_responses
        self.signer = Signer(
            key_id=key_id, key=key, alg=alg, label=label, components=components, tag=tag,
            expires_in=expires_in, digest=digest, now=now,
        )
        self.now = now
        self.retry = retry
        self.problem_base = problem_base
        self.max_body_bytes = max_body_bytes
        self.offsets = ClockOffsets(max_origins)

    def sign(self, request: Request) -> Tuple[Signed, int]:
        """Signs request with the clock offset of its origin; returns what
        was signed and the offset used."""
        assert request.host is not None
        offset = self.offsets.get(origin_of(request.scheme, request.host))
        return self.signer.sign(request, created=math.floor(self.now()) + offset), offset

    @staticmethod
    def may_be_clock_refusal(status: int, headers: Any) -> bool:
        """Reports whether a response may be a Signet server refusing a
        signature for its time, judged by its status and fields alone: then
        (and only then) its body is worth reading."""
        if status != 401:
            return False
        ctype = headers.get("content-type") or ""
        if isinstance(ctype, bytes):
            ctype = ctype.decode("latin-1")
        if ctype.split(";")[0].strip().lower() != "application/problem+json":
            return False
        return challenges_signature(headers.get("www-authenticate"))

    def correction(self, origin: str, status: int, headers: Any, body: bytes, used_offset: int) -> Optional[int]:
        """Returns the corrected clock offset for origin when the response
        is the Signet server's own refusal (its problem type base and a
        ``WWW-Authenticate: Signature`` challenge) for a clock reason
        (not-yet-valid, expired), and the offset its Date gives would change
        the outcome: it moves created, in the direction the reason asks, by
        more than the Date's precision. The offset is then kept for the
        origin. Returns None otherwise; nothing is kept.

        The Date field is not authenticated, so it is trusted no further
        than this: it can only move created, and only after a refusal that
        the server itself signed its name to.
        """
        if not self.may_be_clock_refusal(status, headers):
            return None
        problem = parse_problem(status, headers, body, self.problem_base)
        if problem is None or not problem.signet or problem.reason not in _CLOCK_REASONS:
            return None
        date = headers.get("date")
        if isinstance(date, bytes):
            date = date.decode("latin-1")
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError, IndexError):
            server = None
        if server is None:
            return None
        # Date has whole seconds: the server read its clock somewhere in
        # [date, date + 1 s).
        offset = round(server + 0.5 - self.now())
        if problem.reason == Reason.EXPIRED.value:
            changes = offset - used_offset >= _MIN_CORRECTION
        else:
            changes = used_offset - offset >= _MIN_CORRECTION
        if not changes:
            return None
        self.offsets.set(origin, offset)
        return offset

    def clock_offset(self, origin: str) -> int:
        return self.offsets.get(origin)

    def check_response(self, sent: Request, status: int, headers: Any, body: bytes) -> Optional[Verified]:
        """Checks the gateway's signature of a response to ``sent`` (the
        request as it was sent), whose content, read, is ``body``. Returns
        what verified, or None when it did not (or no gateway keys are
        set); raises when it did not and signed responses are required."""
        if self.gateway_keys is None:
            return None
        pairs = [(k, v) for k, v in _items(headers)]
        try:
            return verify_response(Response(status, pairs, body, request=sent), self.gateway_keys)
        except VerifyError:
            if self.require_signed:
                raise
            return None
        except Exception as err:
            # The key set could not be fetched: nothing is verified.
            if self.require_signed:
                raise VerifyError(Reason.UNKNOWN_KEY, f"the gateway's keys could not be had: {err}") from err
            return None

    def own_answer(self, verified: Optional[Verified]) -> bool:
        """Reports whether a response may correct the clock or cause a
        retry: any, without gateway keys; with them, only the gateway's own
        signed answer (tag signet-gateway), never one it relays."""
        if self.gateway_keys is None:
            return True
        return verified is not None and verified.tag == GATEWAY_TAG


def _items(headers: Any) -> Any:
    raw = getattr(headers, "multi_items", None)  # httpx
    if raw is not None:
        return raw()
    return headers.items()
