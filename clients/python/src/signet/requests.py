"""Signing for the ``requests`` library: :class:`SignetAuth`.

::

    import requests
    from signet.requests import SignetAuth

    session = requests.Session()
    session.auth = SignetAuth("sk_live_1", open("client.key").read())
    r = session.post("https://api.example.com/v1/orders?customer=42", json={"sku": "A-1"})
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar

from ._client import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ORIGINS, SigningClient, origin_of
from .components import Component
from .keys import Key, Material
from .message import Request
from .problem import DEFAULT_PROBLEM_BASE
from .verify import KeyResolver, Verified

__all__ = ["SignetAuth"]

class SignetAuth(requests.auth.AuthBase):
    """Signs every request a ``requests`` session sends, in Signet's default
    profile (or with ``components``), with a fresh nonce.

    ``key`` is a :class:`signet.Key`, or the text of a key file (a base64
    HMAC secret, or a PEM or JWK private key). The other keywords are those
    of :class:`signet.Signer`.

    The body: bytes are digested as they are; a ``str`` body is sent, and
    digested, as UTF-8. A request that already carries Content-Digest has
    its body sent as it is, unread, and that field signed. Otherwise a file
    or iterator body is read into memory first (at most ``max_body_bytes``),
    since its digest must be in the header fields.

    The clock: when a Signet server refuses a signature as ``expired`` or
    ``not-yet-valid`` (its own refusal: its problem type and a
    ``WWW-Authenticate: Signature`` challenge), and the server's Date shows
    the local clock off by enough to matter, the offset is kept for that
    origin (see :meth:`clock_offset`) and, unless ``retry`` is False and if
    the body can be sent again, the request is signed and sent once more.
    Nothing else is ever retried.

    Redirects: ``requests`` does not apply an auth object to the requests
    of a redirect, which carry the first request's fields; a Signet server
    refuses them. Pass ``allow_redirects=False`` where a redirect may occur.

    Signed responses: with ``gateway_keys`` (the URL of the gateway's JWK
    set, ``https://gateway/.well-known/signet-keys``, fetched once and
    kept, with ``gateway_pins`` to pin its keys; or a resolver, as
    :class:`signet.Verifier` takes), every response's gateway signature is
    checked, its content read into memory first (also with
    ``stream=True``): :func:`signet.verified_response` returns what
    verified. A response without a valid signature is returned as it is,
    unless ``require_signed_responses``, when :class:`signet.VerifyError`
    is raised instead. The clock is then corrected, and a request sent
    again, only on a refusal the gateway signed as its own. Requests' own
    ``Accept-Encoding`` is replaced by ``identity``: the content must reach
    the check as it was signed, not decoded.

    Safe for concurrent use by several threads.
    """

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

    def clock_offset(self, url: str) -> int:
        """The clock offset, in seconds, learnt for the origin of url (0 until
        a server has refused a signature for its time)."""
        u = urlsplit(url)
        return self._client.clock_offset(origin_of(u.scheme, u.netloc.rpartition("@")[2]))

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._client.gateway_keys is not None and r.headers.get("Accept-Encoding") == requests.utils.DEFAULT_ACCEPT_ENCODING:
            r.headers["Accept-Encoding"] = "identity"
        replay = self._prepare_body(r)
        original = r.headers.copy()
        used = self._sign(r)
        r.register_hook("response", _RetryHook(self, original, replay, used))  # type: ignore[no-untyped-call]
        return r

    def _prepare_body(self, r: requests.PreparedRequest) -> Optional[Callable[[], Any]]:
        """Makes r's body something that can be digested, and returns a
        function that gives it again for a retry (None if it cannot)."""
        body = r.body
        if body is None:
            return lambda: None
        if isinstance(body, str):
            # http.client would send a str as Latin-1; send (and sign) UTF-8.
            body = body.encode("utf-8")
            _set_body(r, body)
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            return lambda: data
        has_digest = "Content-Digest" in r.headers
        seekable = _seekable(body)
        if has_digest:
            if seekable:
                start = body.tell()

                def rewind() -> Any:
                    body.seek(start)
                    return body

                return rewind
            return None
        data = _read_bounded(body, self._client.max_body_bytes)
        _set_body(r, data)
        return lambda: data

    def _sign(self, r: requests.PreparedRequest) -> int:
        signed, used = self._client.sign(_message(r))
        for name, value in signed.headers.items():
            r.headers[name] = value
        return used

    def _check(self, resp: requests.Response) -> Optional[Verified]:
        """Checks the gateway's signature of resp, and records it."""
        if self._client.gateway_keys is None or resp.request is None:
            return None
        verified = self._client.check_response(_message(resp.request), resp.status_code, resp.headers, resp.content)
        resp.signet_verified = verified  # type: ignore[attr-defined]
        return verified


def _message(r: requests.PreparedRequest) -> Request:
    """The request as it is sent, for signing it and checking its answer."""
    assert r.url is not None and r.method is not None
    u = urlsplit(r.url)
    host = u.netloc.rpartition("@")[2]
    url = f"{u.scheme}://{host}{r.path_url}"
    headers: List[Tuple[str, Union[str, bytes]]] = list(r.headers.items())
    body = r.body if isinstance(r.body, (bytes, bytearray)) else b""
    return Request(r.method, url, headers, bytes(body))


class _RetryHook:
    """The response hook that corrects the clock and sends a request once more."""

    def __init__(self, auth: SignetAuth, original: Any, replay: Optional[Callable[[], Any]], used: int) -> None:
        self.auth = auth
        self.original = original
        self.replay = replay
        self.used = used

    def __call__(self, resp: requests.Response, **kwargs: Any) -> requests.Response:
        client = self.auth._client
        verified = self.auth._check(resp)
        if resp.request is None or not client.may_be_clock_refusal(resp.status_code, resp.headers):
            return resp
        if not client.own_answer(verified):
            return resp
        u = urlsplit(resp.request.url or "")
        origin = origin_of(u.scheme, resp.request.headers.get("Host") or u.netloc.rpartition("@")[2])
        if client.correction(origin, resp.status_code, resp.headers, resp.content, self.used) is None:
            return resp
        if self.replay is None or not client.retry:
            return resp
        resp.close()
        prep = resp.request.copy()
        prep.headers = self.original.copy()
        prep.body = self.replay()
        extract_cookies_to_jar(prep._cookies, resp.request, resp.raw)  # type: ignore[attr-defined,no-untyped-call]
        prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        self.auth._sign(prep)
        again: requests.Response = resp.connection.send(prep, **kwargs)  # type: ignore[attr-defined]
        again.history.append(resp)
        again.request = prep
        self.auth._check(again)
        return again


def _set_body(r: requests.PreparedRequest, data: bytes) -> None:
    r.body = data
    r.headers.pop("Transfer-Encoding", None)
    r.headers["Content-Length"] = str(len(data))


def _seekable(body: Any) -> bool:
    try:
        return bool(body.seekable()) if hasattr(body, "seekable") else False
    except (OSError, ValueError):
        return False


def _read_bounded(body: Any, limit: int) -> bytes:
    buf = io.BytesIO()
    chunks: Iterable[Any]
    if hasattr(body, "read"):
        chunks = iter(lambda: body.read(64 << 10), b"")
    else:
        chunks = body
    for chunk in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if not chunk:
            break
        buf.write(chunk)
        if buf.tell() > limit:
            raise ValueError(
                f"signet: the request body is larger than the {limit} bytes that can be read to digest it; "
                "set its Content-Digest to send it as a stream"
            )
    return buf.getvalue()
