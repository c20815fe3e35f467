"""Verification (RFC 9421 §3.2) against a policy, and replay protection.

The checks, their order and their reason codes are the Go package's
(``httpsig.Verifier``), so that both refuse the same message for the same
reason.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

from . import sf
from .components import Component, FieldType, base_bytes, parse_component, signature_base
from .digest import check_content_digest
from .errors import Reason, SignetError, VerifyError
from .keys import ALGORITHMS, Key, load_key
from .message import ComponentError, Message, Request
from .sign import default_components
from .signatures import ParsedSignature, parse_signatures

__all__ = [
    "DEFAULT_REQUIRED_PARAMS",
    "MAX_SIGNATURES",
    "KeyResolver",
    "MemoryNonceStore",
    "NonceStore",
    "NonceStoreFull",
    "Policy",
    "Verified",
    "Verifier",
]

MAX_SIGNATURES = 8
"""At most this many signatures of one message are checked."""

DEFAULT_REQUIRED_PARAMS = ("created", "keyid", "nonce")

# How long a nonce is remembered when neither a maximum age nor an expires
# parameter bounds its signature.
_UNBOUNDED_NONCE_TTL = 24 * 3600


class NonceStore(Protocol):
    """Remembers the nonces of accepted signatures, so that a replayed
    message is refused. Implementations must be safe for concurrent use.

    ``remember`` atomically records the pair (key_id, nonce) until the Unix
    time ``until`` and returns True, or returns False if the pair is
    recorded already. ``created`` is the signature's created time (None if
    it has none). Raising means the store cannot answer: the verifier lets
    the exception through, and a server must refuse the request (fail
    closed, 503).
    """

    def remember(self, key_id: str, nonce: str, created: Optional[int], until: float) -> bool: ...


KeyResolver = Union[Mapping[str, Key], Callable[[str], Optional[Key]]]
"""A mapping of keyid to :class:`Key`, or a function returning the key of a
keyid, None when there is none. A function raises
``VerifyError(Reason.KEY_REVOKED, ...)`` or ``VerifyError(Reason.KEY_EXPIRED,
...)`` for a key that exists but cannot be used; any other exception means
it could not find out, and goes through verify: fail closed."""


class NonceStoreFull(SignetError):
    """A :class:`MemoryNonceStore` with no room for a new nonce. Not a
    refusal of the message: a server answers 503, and the store needs a
    larger bound."""


class MemoryNonceStore:
    """An in-process :class:`NonceStore`, bounded in memory.

    It holds at most ``max_entries`` pairs, and at most ``max_per_key`` for
    any one keyid (by default an eighth of the whole), so that one key's
    traffic cannot fill the store for every other key. A full store never
    drops a live pair to make room, which would let a replay through: it
    raises :class:`NonceStoreFull`. Pairs are kept as keyed 128-bit hashes
    (BLAKE2b under a secret drawn when the store is made), so a client
    cannot make an entry large, nor aim for a collision. ``now`` is the
    clock. Safe for concurrent use by several threads.
    """

    def __init__(self, max_entries: int = 1 << 20, max_per_key: Optional[int] = None, now: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("signet: max_entries must be positive")
        self.max_entries = max_entries
        self.max_per_key = max(1, max_entries // 8) if max_per_key is None else max_per_key
        self._now = now
        self._secret = secrets.token_bytes(32)
        self._until: Dict[bytes, float] = {}
        self._per_key: Dict[str, int] = {}
        self._expiry: List[Tuple[float, bytes, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)

    def _pair(self, key_id: str, nonce: str) -> bytes:
        h = hashlib.blake2b(key=self._secret, digest_size=16)
        k = key_id.encode("utf-8", "surrogatepass")
        h.update(len(k).to_bytes(8, "little"))
        h.update(k)
        h.update(nonce.encode("utf-8", "surrogatepass"))
        return h.digest()

    def _drop_expired(self, now: float) -> None:
        exp = self._expiry
        while exp and exp[0][0] < now:
            until, pair, key_id = heapq.heappop(exp)
            if self._until.get(pair) == until:
                del self._until[pair]
                n = self._per_key[key_id] - 1
                if n:
                    self._per_key[key_id] = n
                else:
                    del self._per_key[key_id]

    def remember(self, key_id: str, nonce: str, created: Optional[int], until: float) -> bool:
        now = self._now()
        if until < now:
            # No signature that old passes the time checks anyway.
            return True
        pair = self._pair(key_id, nonce)
        with self._lock:
            self._drop_expired(now)
            if pair in self._until:
                return False
            if len(self._until) >= self.max_entries:
                raise NonceStoreFull("signet: the nonce store is full")
            if self._per_key.get(key_id, 0) >= self.max_per_key:
                raise NonceStoreFull("signet: the nonce store holds as many nonces of this key as it may")
            self._until[pair] = until
            self._per_key[key_id] = self._per_key.get(key_id, 0) + 1
            heapq.heappush(self._expiry, (until, pair, key_id))
        return True


@dataclass
class Policy:
    """What a verifier demands of a signature beyond its being valid. The
    defaults are Signet's default profile.

    ``required_components``: what each signature must cover; None means the
    default profile of the request (``@method @authority @path``, ``@query``
    when it has a query, ``content-type`` when it has that field,
    ``content-digest`` when it has content); nothing for a response.
    ``required_params``: the signature parameters each must carry.
    ``max_age``: how old ``created`` may be, in seconds (None: no limit).
    ``max_skew``: how far in the future ``created`` may be.
    ``algorithms``: the only algorithms accepted, if set. ``tag``: only the
    signatures with this tag are examined; ``tags``: only those with one of
    these. ``labels``: only these, which must all be there; otherwise every
    signature is checked (at most :data:`MAX_SIGNATURES`) and all must pass:
    a bad signature never rides on a good one. ``check_time`` False skips
    the checks of ``created`` and ``expires`` (for the responses of a
    gateway, bound to their request by its signature; see
    :func:`signet.verify_response`).
    """

    required_components: Optional[Sequence[Union[str, Component]]] = None
    required_params: Sequence[str] = DEFAULT_REQUIRED_PARAMS
    max_age: Optional[float] = 300
    max_skew: float = 30
    algorithms: Optional[Sequence[str]] = None
    tag: Optional[str] = None
    labels: Optional[Sequence[str]] = None
    tags: Optional[Sequence[str]] = None
    check_time: bool = True


@dataclass(frozen=True)
class Verified:
    """A verified message: the first of its checked signatures, and how many were checked."""

    label: str
    key_id: str
    key: Key
    created: Optional[int]
    expires: Optional[int]
    nonce: Optional[str]
    tag: Optional[str]
    components: List[str]
    signatures: int
    base: Optional[str] = field(default=None, repr=False)
    """The signature base of the first signature, in debug mode."""


def _present(p: Mapping[str, sf.BareItem], name: str) -> bool:
    # An empty string parameter counts as absent, as in the Go package.
    return name in p and p[name] != ""


class Verifier:
    """Checks the signatures of messages against a :class:`Policy`.

    ``keys`` resolves keyids (see :data:`KeyResolver`). ``nonces`` is
    required, unless the policy does not require the ``nonce`` parameter:
    without it a replayed request would pass. ``structured`` adds field
    types for the ``sf`` parameter. ``debug`` keeps the signature base in
    results and errors, to explain failures to the people debugging a
    client; never set it where signatures cross a trust boundary you do not
    control. ``now`` is the clock (Unix seconds). A Verifier is safe for
    concurrent use if its resolver and nonce store are.
    """

    def __init__(
        self,
        keys: KeyResolver,
        *,
        nonces: Optional[NonceStore] = None,
        policy: Optional[Policy] = None,
        structured: Optional[Mapping[str, FieldType]] = None,
        debug: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        if nonces is None and "nonce" in self.policy.required_params:
            raise ValueError(
                "signet: a Verifier needs a nonce store (nonces=MemoryNonceStore(), say), "
                "or a policy whose required_params leave out 'nonce'"
            )
        self.keys = keys
        self.nonces = nonces
        self.structured = structured
        self.debug = debug
        self.now = now
        p = self.policy
        self._required = None if p.required_components is None else [parse_component(c) for c in p.required_components]
        for a in p.algorithms or ():
            if a not in ALGORITHMS:
                raise ValueError(f"signet: unknown algorithm {a!r}")

    def verify(self, message: Message) -> Verified:
        """Verifies the signatures of a :class:`signet.Request` (or
        :class:`signet.Response`), whose ``body`` is its content. Returns
        what was verified; raises :class:`VerifyError`, with a reason code,
        when the message is refused. Any other exception comes from the key
        resolver or the nonce store and means the message cannot be checked
        now: refuse it all the same."""
        sigs = parse_signatures(message.fields.get("signature-input", []), message.fields.get("signature", []))
        selected = self._select(sigs)
        now = math.floor(self.now())
        if self._required is not None:
            required = self._required
        elif isinstance(message, Request):
            required = default_components(message, len(message.body) > 0)
        else:
            required = []
        result: Optional[Verified] = None
        for s in selected:
            key, base = self._check_one(message, s, required, now)
            if result is None:
                result = Verified(
                    label=s.label,
                    key_id=s.key_id or "",
                    key=key,
                    created=s.created,
                    expires=s.expires,
                    nonce=s.nonce,
                    tag=s.tag,
                    components=[c.id for c in s.components],
                    signatures=len(selected),
                    base=base if self.debug else None,
                )
        # Nonces are spent only once every signature has verified, so that a
        # forged companion signature cannot burn a genuine nonce.
        if self.nonces is not None:
            for s in selected:
                if not s.nonce:
                    continue
                if not self.nonces.remember(s.key_id or "", s.nonce, s.created, self._nonce_until(s, now)):
                    raise VerifyError(Reason.REPLAYED, "this nonce was already used", label=s.label)
        assert result is not None
        return result

    def _select(self, sigs: List[ParsedSignature]) -> List[ParsedSignature]:
        p = self.policy
        selected = sigs
        if p.labels is not None:
            by_label = {s.label: s for s in sigs}
            selected = []
            for label in p.labels:
                if label not in by_label:
                    raise VerifyError(Reason.MISSING_SIGNATURE, "the message has no signature with this label", label=label)
                selected.append(by_label[label])
        if p.tag is not None:
            selected = [s for s in selected if s.params.get("tag") == p.tag]
            if not selected:
                raise VerifyError(Reason.MISSING_SIGNATURE, f"the message has no signature with tag {p.tag!r}")
        if p.tags is not None:
            selected = [s for s in selected if s.params.get("tag") in p.tags]
            if not selected:
                raise VerifyError(Reason.MISSING_SIGNATURE, "the message has no signature with tag " + " or ".join(map(repr, p.tags)))
        if not selected:
            raise VerifyError(Reason.MISSING_SIGNATURE, "the Signature-Input field holds no signature")
        if len(selected) > MAX_SIGNATURES:
            raise VerifyError(Reason.MALFORMED_SIGNATURE, f"the message carries more than {MAX_SIGNATURES} signatures")
        return selected

    def _nonce_until(self, s: ParsedSignature, now: int) -> float:
        until: Optional[int] = None
        max_age = self.policy.max_age
        if max_age is not None and s.created is not None:
            # The age check compares whole seconds: a signature passes
            # until created + max_age + 1, and its nonce must be held as long.
            until = s.created + math.floor(max_age) + 1
        if s.expires is not None and (until is None or s.expires < until):
            until = s.expires
        return float(now + _UNBOUNDED_NONCE_TTL if until is None else until)

    def _check_params(self, s: ParsedSignature, now: int) -> None:
        label, policy = s.label, self.policy
        for name in policy.required_params:
            if not _present(s.params, name):
                raise VerifyError(Reason.MALFORMED_SIGNATURE, f"the signature has no {name} parameter, which this server requires", label=label)
        if s.alg is not None and s.alg not in ALGORITHMS:
            raise VerifyError(Reason.ALGORITHM_MISMATCH, f"unknown algorithm {s.alg!r}", label=label)
        if not policy.check_time:
            return
        created = s.created
        if created is not None:
            skew = max(0, math.floor(policy.max_skew))
            if created > now + skew:
                raise VerifyError(
                    Reason.NOT_YET_VALID,
                    f"created is {created - now} s in the future; check the client's clock against the Date header",
                    label=label,
                )
            if policy.max_age is not None and now - created > math.floor(policy.max_age):
                raise VerifyError(Reason.EXPIRED, f"created is {now - created} s ago, more than the {policy.max_age} s allowed", label=label)
        if s.expires is not None and now >= s.expires:
            raise VerifyError(Reason.EXPIRED, f"the signature expired {now - s.expires} s ago", label=label)

    def _resolve(self, key_id: str, label: str) -> Key:
        keys = self.keys
        found = keys.get(key_id) if isinstance(keys, Mapping) else keys(key_id)
        if found is None:
            raise VerifyError(Reason.UNKNOWN_KEY, "no key has this keyid", label=label)
        return found if isinstance(found, Key) else load_key(found)

    def _check_one(self, message: Message, s: ParsedSignature, required: Sequence[Component], now: int) -> Tuple[Key, str]:
        label = s.label
        self._check_params(s, now)
        covered = set(s.components)
        for r in required:
            if r not in covered:
                raise VerifyError(Reason.MISSING_COMPONENT, f"the signature must cover {r.id}", label=label)
        if not s.key_id:
            raise VerifyError(Reason.UNKNOWN_KEY, "the signature has no keyid parameter", label=label)
        try:
            key = self._resolve(s.key_id, label)
        except VerifyError as e:
            if e.label is None:
                e.label = label
            raise
        if s.alg is not None and s.alg != key.alg:
            raise VerifyError(Reason.ALGORITHM_MISMATCH, f"the key is bound to {key.alg}, the signature says {s.alg!r}", label=label)
        if self.policy.algorithms is not None and key.alg not in self.policy.algorithms:
            raise VerifyError(Reason.ALGORITHM_MISMATCH, f"algorithm {key.alg} is not accepted here", label=label)
        try:
            base = signature_base(message, s.components, s.signature_params, structured=self.structured)
            data = base_bytes(base)
        except ComponentError as e:
            if e.absent:
                raise VerifyError(Reason.MISSING_COMPONENT, str(e), label=label, base=None) from None
            raise VerifyError(Reason.MALFORMED_SIGNATURE, str(e), label=label) from None
        except ValueError as e:
            raise VerifyError(Reason.MALFORMED_SIGNATURE, str(e), label=label) from None
        debug_base = base if self.debug else None
        if not key.verify(data, s.value):
            raise VerifyError(Reason.BAD_SIGNATURE, "the signature does not match the message", label=label, base=debug_base)
        if _CONTENT_DIGEST in covered:
            try:
                check_content_digest(", ".join(message.fields.get("content-digest", [])), message.body)
            except VerifyError as e:
                e.label = label
                raise
        return key, base


_CONTENT_DIGEST = Component("content-digest")
