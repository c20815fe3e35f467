"""Signing for the ``httpx`` library: :class:`SignetAuth`, for ``httpx.Client``
and ``httpx.AsyncClient`` alike.

::

    import httpx
    from signet.httpx import SignetAuth

    auth = SignetAuth("sk_live_1", open("client.key").read())
    with httpx.Client(auth=auth) as client:
        r = client.post("https://api.example.com/v1/orders?customer=42", json={"sku": "A-1"})
    async with httpx.AsyncClient(auth=auth) as client:
        r = await client.get("https://api.example.com/v1/orders/7")
"""

from __future__ import annotations

import time
from typing import AsyncGenerator, Callable, Generator, Optional, Sequence, Union

import httpx

from ._client import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ORIGINS, SigningClient, origin_of
from .components import Component
from .keys import Key, Material
from .message import Request
from .problem import DEFAULT_PROBLEM_BASE
from .verify import KeyResolver

__all__ = ["SignetAuth"]


class SignetAuth(httpx.Auth):
    """Signs every request an ``httpx.Client`` or ``httpx.AsyncClient``
    sends, in Signet's default profile (or with ``components``), with a
    fresh nonce.

    ``key`` is a :class:`signet.Key`, or the text of a key file (a base64
    HMAC secret, or a PEM or JWK private key). The other keywords are those
    of :class:`signet.Signer`.

    The body: a request that already carries Content-Digest has its body
    sent as it is, unread if it is a stream, and that field signed (a
    stream is then never sent twice). Any other body is read into memory
    (at most ``max_body_bytes``) to compute its digest.

    The clock: when a Signet server refuses a signature as ``expired`` or
    ``not-yet-valid`` (its own refusal: its problem type and a
    ``WWW-Authenticate: Signature`` challenge), and the server's Date shows
    the local clock off by enough to matter, the offset is kept for that
    origin (see :meth:`clock_offset`) and, unless ``retry`` is False, the
    request is signed and sent once more. Nothing else is ever retried.

    Redirects followed by httpx are not signed again (httpx sends them
    within one turn of the auth flow); a Signet server refuses them. httpx
    does not follow redirects unless asked to.

    Signed responses: ``gateway_keys``, ``gateway_pins`` and
    ``require_signed_responses`` are those of
    :class:`signet.requests.SignetAuth`: every response's gateway signature
    is checked, its content read first; :func:`signet.verified_response`
    returns what verified; httpx's own ``Accept-Encoding`` becomes
    ``identity``.

    Safe for concurrent use, by threads or tasks.
    """

    requires_request_body = False
    requires_response_body = False

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
        self._client = SigningClient(
            key_id, key, alg=alg, label=label, components=components, tag=tag, expires_in=expires_in,
            digest=digest, retry=retry, problem_base=problem_base, max_body_bytes=max_body_bytes,
            max_origins=max_origins, now=now, gateway_keys=gateway_keys, gateway_pins=gateway_pins,
            require_signed_responses=require_signed_responses,
        )

    def clock_offset(self, url: Union[str, httpx.URL]) -> int:
        """The clock offset, in seconds, learnt for the origin of url (0 until
        a server has refused a signature for its time)."""
        u = httpx.URL(url)
        host = u.netloc.decode("ascii") if isinstance(u.netloc, bytes) else str(u.netloc)
        return self._client.clock_offset(origin_of(u.scheme, host))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = _known_content(request)
        replayable = body is not None
        if "Content-Digest" in request.headers:
            body = None  # the field is signed as it is, and the body sent as it is
        elif body is None:
            body = _take(request, _read_sync(request.stream, self._client.max_body_bytes))
            replayable = True
        self._identity(request)
        original = request.headers.copy()
        used = self._sign(request, body)
        response = yield request
        if self._client.gateway_keys is not None:
            response.read()
        own = self._check(request, response)
        if not self._client.may_be_clock_refusal(response.status_code, response.headers) or not own:
            return
        response.read()
        if self._correct(request, response, used) and replayable and self._client.retry:
            request.headers = original.copy()
            self._sign(request, body)
            response = yield request
            if self._client.gateway_keys is not None:
                response.read()
                self._check(request, response)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        body = _known_content(request)
        replayable = body is not None
        if "Content-Digest" in request.headers:
            body = None  # the field is signed as it is, and the body sent as it is
        elif body is None:
            body = _take(request, await _read_async(request.stream, self._client.max_body_bytes))
            replayable = True
        self._identity(request)
        original = request.headers.copy()
        used = self._sign(request, body)
        response = yield request
        if self._client.gateway_keys is not None:
            await response.aread()
        own = self._check(request, response)
        if not self._client.may_be_clock_refusal(response.status_code, response.headers) or not own:
            return
        await response.aread()
        if self._correct(request, response, used) and replayable and self._client.retry:
            request.headers = original.copy()
            self._sign(request, body)
            response = yield request
            if self._client.gateway_keys is not None:
                await response.aread()
                self._check(request, response)

    def _sign(self, request: httpx.Request, body: Optional[bytes]) -> int:
        signed, used = self._client.sign(_message(request, body))
        for name, value in signed.headers.items():
            request.headers[name] = value
        return used

    def _identity(self, request: httpx.Request) -> None:
        # httpx decodes content-coded bodies; the check needs them as signed.
        if self._client.gateway_keys is not None and request.headers.get("Accept-Encoding", "").startswith("gzip, deflate"):
            request.headers["Accept-Encoding"] = "identity"

    def _check(self, request: httpx.Request, response: httpx.Response) -> bool:
        """Checks the gateway's signature of response, records it, and
        reports whether the response may correct the clock."""
        verified = self._client.check_response(_message(request, None), response.status_code, response.headers, response.content) \
            if self._client.gateway_keys is not None else None
        if isinstance(response.extensions, dict):
            response.extensions["signet_verified"] = verified
        return self._client.own_answer(verified)

    def _correct(self, request: httpx.Request, response: httpx.Response, used: int) -> bool:
        host = request.headers.get("Host") or request.url.netloc.decode("ascii")
        origin = origin_of(request.url.scheme, host)
        return self._client.correction(origin, response.status_code, response.headers, response.content, used) is not None


def _message(request: httpx.Request, body: Optional[bytes]) -> Request:
    """The request as it is sent, for signing it and checking its answer."""
    host = request.headers.get("Host") or request.url.netloc.decode("ascii")
    url = f"{request.url.scheme}://{host}{request.url.raw_path.decode('ascii')}"
    headers = [(k.decode("latin-1"), v) for k, v in request.headers.raw]
    return Request(request.method, url, headers, body)


def _known_content(request: httpx.Request) -> Optional[bytes]:
    try:
        return request.content
    except httpx.RequestNotRead:
        return None


def _take(request: httpx.Request, data: bytes) -> bytes:
    # The stream is spent; what is sent is the bytes that were digested.
    request.stream = httpx.ByteStream(data)
    return data


def _too_large(limit: int) -> ValueError:
    return ValueError(
        f"signet: the request body is larger than the {limit} bytes that can be read to digest it; "
        "set its Content-Digest to send it as a stream"
    )


def _read_sync(stream: object, limit: int) -> bytes:
    out = bytearray()
    for chunk in stream:  # type: ignore[attr-defined]
        out += chunk
        if len(out) > limit:
            raise _too_large(limit)
    return bytes(out)


async def _read_async(stream: object, limit: int) -> bytes:
    out = bytearray()
    async for chunk in stream:  # type: ignore[attr-defined]
        out += chunk
        if len(out) > limit:
            raise _too_large(limit)
    return bytes(out)
