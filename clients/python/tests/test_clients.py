"""The requests and httpx integrations against a verifying server on
127.0.0.1: what they send verifies, bodies of every kind, and the clock
correction (retried only for the server's own clock refusal, only when the
correction changes the outcome, once)."""

from __future__ import annotations

import asyncio
import io
from typing import Any, Callable, Dict, Iterator, List

import httpx
import pytest
import requests

import signet
import signet.httpx
import signet.requests
from signet._client import ClockOffsets

from verifying_server import VerifyingServer

SECRET = signet.generate_secret()
PRIVATE_PEM, PUBLIC_PEM = signet.generate_key_pair("ed25519")
KEYS = {"sk_test": signet.load_key(SECRET), "pk_test": signet.load_key(PUBLIC_PEM)}
CREDENTIALS = [("sk_test", SECRET), ("pk_test", PRIVATE_PEM)]


@pytest.fixture
def server() -> Iterator[VerifyingServer]:
    s = VerifyingServer(KEYS)
    yield s
    s.close()


Send = Callable[..., Any]


def requests_send(auth: Any) -> Send:
    def send(method: str, url: str, **kw: Any) -> Any:
        with requests.Session() as s:
            return s.request(method, url, auth=auth, **kw)
    return send


def httpx_send(auth: Any) -> Send:
    def send(method: str, url: str, **kw: Any) -> Any:
        # verify=False: plain HTTP on loopback, and no CA bundle to load.
        with httpx.Client(auth=auth, verify=False) as c:
            return c.request(method, url, **kw)
    return send


def httpx_async_send(auth: Any) -> Send:
    def send(method: str, url: str, **kw: Any) -> Any:
        async def go() -> Any:
            async with httpx.AsyncClient(auth=auth, verify=False) as c:
                return await c.request(method, url, **kw)
        return asyncio.run(go())
    return send


CLIENTS = {
    "requests": (signet.requests.SignetAuth, requests_send),
    "httpx": (signet.httpx.SignetAuth, httpx_send),
    "httpx-async": (signet.httpx.SignetAuth, httpx_async_send),
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("key_id,key", CREDENTIALS, ids=["hmac", "ed25519"])
def test_requests_verify(server: VerifyingServer, client: str, key_id: str, key: str) -> None:
    make, sender = CLIENTS[client]
    send = sender(make(key_id, key))
    r = send("POST", server.url + "/v1/orders?customer=42&expand=items", json={"sku": "B-1", "qty": 2})
    assert r.status_code == 200, r.text
    entry = server.log[-1]
    assert entry["target"] == "/v1/orders?customer=42&expand=items"
    assert entry["headers"]["Signature-Input"].startswith(
        'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");')
    for kw in ({}, {"params": {"q": "a b/ü"}}, {"content": "café ✓"} if "httpx" in client else {"data": "café ✓"},
               {"data": {"a": "1", "b": "x y"}}, {"headers": {"Content-Type": "text/plain", "X-Note": "n"}}):
        r = send("PUT", server.url + "/v1/p%2Fq/~x", **kw)
        assert r.status_code == 200, (kw, r.text)
    assert "café ✓".encode() in [e["body"] for e in server.log]
    r = send("DELETE", server.url + "/v1/orders/7")
    assert r.status_code == 200 and server.log[-1]["body"] == b""


def test_requests_stream_bodies(server: VerifyingServer) -> None:
    auth = signet.requests.SignetAuth("sk_test", SECRET)
    url = server.url + "/upload"
    # A file: read and digested; an iterator: read into memory first.
    r = requests.post(url, data=io.BytesIO(b"file body" * 100), auth=auth)
    assert r.status_code == 200 and server.log[-1]["body"] == b"file body" * 100
    r = requests.post(url, data=iter([b"chunk one, ", b"chunk two"]), auth=auth)
    assert r.status_code == 200 and server.log[-1]["body"] == b"chunk one, chunk two"
    # With its Content-Digest set, a stream is sent as it is, unread.
    chunks = [b"streamed ", b"as it is"]
    digest = signet.content_digest(chunks)
    r = requests.post(url, data=iter(chunks), headers={"Content-Digest": digest}, auth=auth)
    assert r.status_code == 200 and server.log[-1]["body"] == b"streamed as it is"
    assert "chunked" in server.log[-1]["headers"].get("Transfer-Encoding", "")
    # A wrong digest set by the caller is signed as it is, and refused.
    r = requests.post(url, data=iter(chunks), headers={"Content-Digest": signet.content_digest(b"x")}, auth=auth)
    assert r.status_code == 401 and server.log[-1]["reason"] == "digest-mismatch"
    small = signet.requests.SignetAuth("sk_test", SECRET, max_body_bytes=10)
    with pytest.raises(ValueError, match="larger than the 10 bytes"):
        requests.post(url, data=iter([b"0123456789", b"!"]), auth=small)


def test_httpx_stream_bodies(server: VerifyingServer) -> None:
    auth = signet.httpx.SignetAuth("sk_test", SECRET)
    url = server.url + "/upload"

    def gen() -> Iterator[bytes]:
        yield b"part one, "
        yield b"part two"

    with httpx.Client(auth=auth, verify=False) as c:
        assert c.post(url, content=gen()).status_code == 200
        assert server.log[-1]["body"] == b"part one, part two"
        digest = signet.content_digest([b"part one, ", b"part two"])
        assert c.post(url, content=gen(), headers={"Content-Digest": digest}).status_code == 200
    small = signet.httpx.SignetAuth("sk_test", SECRET, max_body_bytes=10)
    with httpx.Client(auth=small, verify=False) as c, pytest.raises(ValueError, match="larger than the 10 bytes"):
        c.post(url, content=gen())

    async def agen() -> Any:
        yield b"async "
        yield b"parts"

    async def go() -> int:
        async with httpx.AsyncClient(auth=auth, verify=False) as c:
            return (await c.post(url, content=agen())).status_code
    assert asyncio.run(go()) == 200 and server.log[-1]["body"] == b"async parts"


def attempts(server: VerifyingServer, since: int) -> List[Dict[str, Any]]:
    return server.log[since:]


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("skew,reason", [(600, "expired"), (-600, "not-yet-valid")])
def test_clock_corrected_once(server: VerifyingServer, client: str, skew: int, reason: str) -> None:
    make, sender = CLIENTS[client]
    auth = make("sk_test", SECRET)
    send = sender(auth)
    server.skew = skew
    n = len(server.log)
    r = send("POST", server.url + "/v1/orders", json={"n": 1})
    assert r.status_code == 200, r.text
    tries = attempts(server, n)
    assert [t.get("reason") for t in tries] == [reason, None]
    assert tries[0]["body"] == tries[1]["body"] == b'{"n": 1}' or tries[0]["body"] == tries[1]["body"] == b'{"n":1}'
    assert abs(auth.clock_offset(server.url + "/other") - skew) <= 2
    # The offset is kept for the origin: the next request passes at once.
    n = len(server.log)
    assert send("GET", server.url + "/v1/orders/7").status_code == 200
    assert len(attempts(server, n)) == 1
    # Other origins keep their own offset.
    assert auth.clock_offset("http://localhost:1/") == 0


API_REFUSALS = [
    ("https://api.example/errors/expired", False),
    ("https://api.example/errors/expired", True),
    (signet.DEFAULT_PROBLEM_BASE + "expired", False),
]


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("refusal", API_REFUSALS, ids=["other-type", "other-type-challenge", "signet-type-no-challenge"])
def test_no_retry_for_the_apis_own_refusal(server: VerifyingServer, client: str, refusal: Any) -> None:
    # The API behind the gateway answers its own 401 "expired" problem. It
    # is not the gateway's unless it has both the gateway's problem type
    # and a Signature challenge, so the POST is sent once, though the
    # server's Date is 200 s ahead (within the gateway's 300 s, so its
    # verifier lets the request through).
    make, sender = CLIENTS[client]
    auth = make("sk_test", SECRET)
    server.api_refusal = refusal
    server.skew = 200
    n = len(server.log)
    r = sender(auth)("POST", server.url + "/v1/orders", json={"n": 1})
    assert r.status_code == 401 and [t.get("ok") for t in attempts(server, n)] == [True]
    assert auth.clock_offset(server.url) == 0


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_no_retry_when_the_clock_is_right(server: VerifyingServer, client: str) -> None:
    # The gateway refuses a stale signature as expired, but the clocks
    # agree: a corrected offset would change nothing, so nothing is resent.
    make, sender = CLIENTS[client]
    auth = make("sk_test", SECRET, expires_in=-5)  # expired at once, whatever the clock
    n = len(server.log)
    r = sender(auth)("POST", server.url + "/v1/orders", json={"n": 1})
    assert r.status_code == 401 and [t.get("reason") for t in attempts(server, n)] == ["expired"]
    assert auth.clock_offset(server.url) == 0


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_no_retry_when_disabled_or_stream(server: VerifyingServer, client: str) -> None:
    make, sender = CLIENTS[client]
    auth = make("sk_test", SECRET, retry=False)
    server.skew = 600
    n = len(server.log)
    r = sender(auth)("GET", server.url + "/v1/orders/7")
    assert r.status_code == 401 and len(attempts(server, n)) == 1
    # The offset is learnt all the same, for the next request.
    assert abs(auth.clock_offset(server.url) - 600) <= 2
    assert sender(auth)("GET", server.url + "/v1/orders/7").status_code == 200


def test_no_retry_of_a_stream_sent_as_it_is(server: VerifyingServer) -> None:
    auth = signet.requests.SignetAuth("sk_test", SECRET)
    server.skew = 600
    chunks = [b"a", b"b"]
    n = len(server.log)
    r = requests.post(server.url + "/up", data=iter(chunks), headers={"Content-Digest": signet.content_digest(chunks)}, auth=auth)
    assert r.status_code == 401 and len(attempts(server, n)) == 1
    assert abs(auth.clock_offset(server.url) - 600) <= 2


def test_retry_replays_a_seekable_stream(server: VerifyingServer) -> None:
    auth = signet.requests.SignetAuth("sk_test", SECRET)
    server.skew = -600
    data = io.BytesIO(b"0123456789")
    n = len(server.log)
    r = requests.post(server.url + "/up", data=data, headers={"Content-Digest": signet.content_digest(b"0123456789")}, auth=auth)
    assert r.status_code == 200
    assert [t["body"] for t in attempts(server, n)] == [b"0123456789", b"0123456789"]


def test_clock_offsets_are_bounded() -> None:
    offsets = ClockOffsets(max_origins=3)
    for i in range(5):
        offsets.set(f"https://h{i}", i)
    assert len(offsets) == 3 and offsets.get("https://h0") == 0 and offsets.get("https://h4") == 4
    offsets.get("https://h2")  # recently used: kept
    offsets.set("https://h5", 5)
    assert offsets.get("https://h2") == 2 and offsets.get("https://h3") == 0
