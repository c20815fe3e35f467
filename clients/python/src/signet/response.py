"""Signed responses (docs/signed-responses.md): a Signet gateway signs every
response it sends, binding it to the request it answers, with tag
``signet-gateway`` for its own answers (refusals, its errors) and
``signet-response`` for the answers it relays from the API behind it.

:func:`verify_response` checks one, with its content in memory (the
requests and httpx integrations read the body first: this client does not
stream-check content, unlike the Go and Node.js ones). :class:`GatewayKeys`
fetches the gateway's published JWK set; :func:`parse_jwks` and
:func:`jwk_thumbprint` read and name its keys.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

from .errors import Reason, VerifyError
from .keys import Key, load_key
from .message import Request, Response
from .signatures import parse_signatures
from .verify import KeyResolver, Policy, Verified, Verifier

__all__ = [
    "GATEWAY_TAG",
    "KEYS_PATH",
    "RESPONSE_TAG",
    "GatewayKeys",
    "jwk_thumbprint",
    "parse_jwks",
    "response_components",
    "verify_response",
]

RESPONSE_TAG = "signet-response"
"""The tag of a response the gateway relays from the API behind it."""
GATEWAY_TAG = "signet-gateway"
"""The tag of a response the gateway makes itself: only these speak for it."""
KEYS_PATH = "/.well-known/signet-keys"
"""Where a gateway publishes its response keys, as a JWK set."""

MAX_KEY_SET_BYTES = 64 << 10
REFETCH_SECONDS = 60


def response_components(response: Response) -> List[str]:
    """The components a gateway's signature of ``response`` must cover:
    ``@status``, ``date``, ``content-type`` when present, and of its
    request ``@method``, ``@path``, ``@query`` when it has a query, and
    ``signature`` when it was signed."""
    req = response.request
    if req is None:
        raise ValueError("signet: the response needs its request, whose method, path and signature it covers")
    out = ["@status", "date"]
    if "content-type" in response.fields:
        out.append("content-type")
    out += ['"@method";req', '"@path";req']
    if req.split_target.has_query:
        out.append('"@query";req')
    if "signature" in req.fields:
        out.append('"signature";req')
    return out


def verify_response(response: Response, keys: KeyResolver, *, tags: Optional[Sequence[str]] = None) -> Verified:
    """Verifies the gateway's signature of ``response`` (a
    :class:`signet.Response` whose ``request`` is the request as it was
    sent, Signature field and all, and whose ``body`` is its content).
    Raises :class:`signet.VerifyError` when it is refused: no signature with
    one of ``tags`` (both by default), one that does not verify or does not
    cover what the profile demands, content that does not match its
    Content-Digest, or content no signature covers. The time is not
    checked: the client's clock may be the one that is off, and the response
    is bound to its one request by the request's signature.
    """
    tags = list(tags) if tags is not None else [RESPONSE_TAG, GATEWAY_TAG]
    policy = Policy(
        required_components=response_components(response), required_params=("created", "keyid"),
        max_age=None, tags=tags, check_time=False,
    )
    result = Verifier(keys, policy=policy).verify(response)
    if response.body:
        sigs = parse_signatures(response.fields.get("signature-input", []), response.fields.get("signature", []))
        if not any(s.params.get("tag") in tags and any(c.id == '"content-digest"' for c in s.components) for s in sigs):
            raise VerifyError(Reason.MISSING_COMPONENT, "the response has content, and its signature does not cover content-digest", label=result.label)
    return result


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (SHA-256, base64url): a name
    for the key that anyone can compute from it, to pin it."""
    kty = jwk.get("kty")
    if kty == "OKP":
        members = {"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}
    elif kty == "EC":
        members = {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
    elif kty == "RSA":
        members = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
    else:
        raise ValueError(f"signet: no thumbprint for kty {kty!r}")
    text = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(text.encode("utf-8")).digest())


def parse_jwks(data: Union[str, bytes, Mapping[str, Any]], pins: Optional[Sequence[str]] = None) -> Dict[str, Key]:
    """Reads a JWK set of public keys into keys by kid. Keys of an unknown
    kty, or whose ``use`` is not ``sig``, are skipped; a key without a kid,
    a kid used twice, or a private or secret key is a ``ValueError``. With
    ``pins`` (RFC 7638 thumbprints), only those keys are kept."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_KEY_SET_BYTES:
            raise ValueError("signet: JWK set too large")
        data = json.loads(data)
    keys = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError('signet: not a JWK set (an object with a "keys" array)')
    out: Dict[str, Key] = {}
    for jwk in keys:
        if not isinstance(jwk, Mapping) or jwk.get("kty") not in ("OKP", "EC", "RSA", "oct"):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("signet: a key of the JWK set has no kid")
        if jwk.get("kty") == "oct" or "d" in jwk:
            raise ValueError(f"signet: key {kid} of the JWK set is private or secret")
        if kid in out:
            raise ValueError(f"signet: kid {kid} is used twice in the JWK set")
        if pins is not None and jwk_thumbprint(jwk) not in pins:
            continue
        out[kid] = load_key(dict(jwk))
    return out


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GatewayKeys:
    """The response keys of a gateway, from the JWK set it publishes at
    ``url`` (``https://gateway/.well-known/signet-keys``): fetched on first
    use and kept; fetched again, at most once a minute, for a keyid it does
    not know (a rotated key). The set is only as trustworthy as the way it
    is fetched: ``url`` must be https, or http to a loopback address, unless
    ``pins`` (RFC 7638 thumbprints, see :func:`jwk_thumbprint`) name the
    keys to accept. A resolver for :class:`signet.Verifier`; safe for
    concurrent use."""

    def __init__(
        self,
        url: str,
        *,
        pins: Optional[Sequence[str]] = None,
        fetch: Optional[Callable[[str], bytes]] = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        u = urlsplit(url)
        if u.scheme != "https" and not pins and not (u.scheme == "http" and _loopback(u.hostname or "")):
            raise ValueError(f"signet: the JWK set at {u.scheme}://{u.netloc} would come over plain http: use https, or pin its keys")
        self.url = url
        self.pins = list(pins) if pins else None
        self._fetch = fetch or _fetch
        self._now = now
        self._lock = threading.Lock()
        self._keys: Optional[Dict[str, Key]] = None
        self._fetched = 0.0

    def __call__(self, key_id: str) -> Optional[Key]:
        with self._lock:
            if self._keys is not None and key_id in self._keys:
                return self._keys[key_id]
            if self._keys is None or self._now() - self._fetched >= REFETCH_SECONDS:
                self._keys = parse_jwks(self._fetch(self.url), self.pins)
                self._fetched = self._now()
            return self._keys.get(key_id)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (https or loopback, checked above)
        if r.status != 200:
            raise OSError(f"signet: fetching the gateway's keys from {url}: {r.status}")
        data: bytes = r.read(MAX_KEY_SET_BYTES + 1)
    if len(data) > MAX_KEY_SET_BYTES:
        raise ValueError("signet: the gateway's key set is too large")
    return data
