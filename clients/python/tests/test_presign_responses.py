"""Presigned URLs (the vectors of testdata/signet/presign.json, made by the
Go package, byte for byte) and signed responses: the vectors of
testdata/signet/responses.json judged as Go judges them, and the requests
and httpx integrations with gateway_keys against a server on 127.0.0.1 that
signs its responses as the gateway does (the same components, made here
with signet.Signer)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

import signet
import signet.httpx
import signet.requests

from conftest import TESTDATA, load_json

PRESIGN = load_json(TESTDATA / "signet" / "presign.json")
RESPONSES = load_json(TESTDATA / "signet" / "responses.json")


@pytest.mark.parametrize("v", PRESIGN, ids=[v["name"] for v in PRESIGN])
def test_presign_vectors(v: Dict[str, Any]) -> None:
    def make() -> str:
        return signet.presign(
            v["url"], v["key_id"], v["key"], alg=v["alg"], method=v.get("method") or "GET", expires_in=v["expires"],
            created=v["created"], single_use="nonce" in v, nonce=v.get("nonce"),
        )
    if "want" not in v:
        with pytest.raises(ValueError):
            make()
        return
    assert make() == v["want"]


def test_presign_verifies() -> None:
    priv, pub = signet.generate_key_pair("ed25519")
    now = math.floor(time.time())
    for single_use in (False, True):
        u = signet.presign("https://api.example.com/v1/img/7.png?size=large#top", "pk_1", priv, expires_in=90.5, single_use=single_use)
        assert u.endswith("#top")
        u = u.split("#")[0]
        base, _, query = u.partition("?")
        pieces = query.split("&")
        kept = [p for p in pieces if not p.startswith("signet-")]
        params = dict(p.split("=", 1) for p in pieces if p.startswith("signet-"))
        req = signet.Request("GET", base + "?" + "&".join(kept), [
            ("Signature-Input", unquote(params["signet-input"])), ("Signature", unquote(params["signet-sig"])),
        ])
        policy = signet.Policy(required_components=["@method", "@authority", "@path", "@query"],
                               required_params=("created", "keyid", "expires"), tag=signet.PRESIGN_TAG)
        got = signet.Verifier({"pk_1": signet.load_key(pub)}, policy=policy).verify(req)
        assert got.expires == (got.created or 0) + 91 and abs((got.created or 0) - now) <= 2
        assert (got.nonce is not None) == single_use


def test_presign_refuses() -> None:
    for kw in [{}, {"expires_in": -1}, {"expires_in": 60, "method": "GE T"}, {"expires_in": 60, "nonce": "n"}]:
        with pytest.raises((ValueError, TypeError)):
            signet.presign("https://a.example/x", "k", signet.generate_secret(), **kw)


@pytest.mark.parametrize("v", RESPONSES, ids=[v["name"] for v in RESPONSES])
def test_response_vectors(v: Dict[str, Any]) -> None:
    keys = signet.parse_jwks(v["keys"])
    req = signet.Request(v["request"]["method"], v["request"]["url"], [tuple(h) for h in v["request"]["headers"]])
    body = base64.b64decode(v["response"].get("body_b64", ""))
    resp = signet.Response(v["response"]["status"], [tuple(h) for h in v["response"]["headers"]], body, request=req)
    if v["want"]:
        with pytest.raises(signet.VerifyError) as e:
            signet.verify_response(resp, keys)
        assert e.value.reason == v["want"]
    else:
        assert signet.verify_response(resp, keys).tag == v["tag"]


def test_jwk_thumbprint() -> None:
    # RFC 8037 A.3.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert signet.jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    for bad in ['{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}', '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"}]}', "{}"]:
        with pytest.raises(ValueError):
            signet.parse_jwks(bad)


GW_PRIV, GW_PUB = signet.generate_key_pair("ed25519")
_RAW = load_pem_public_key(GW_PUB.encode()).public_bytes(Encoding.Raw, PublicFormat.Raw)
GW_JWK = {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "x": base64.urlsafe_b64encode(_RAW).rstrip(b"=").decode()}
GW_KID = signet.jwk_thumbprint(GW_JWK)
CLIENT = signet.generate_secret()


class SigningServer:
    """Signs every response as the gateway does; paths choose the answer:
    /forged (the API's 401, dressed as the gateway's, relayed), /unsigned,
    /keys (the JWK set); a signature whose created is over 300 s from the
    server's clock (which runs ``skew`` ahead) gets the gateway's own
    signed refusal. ``alter`` changes each response after it is signed."""

    def __init__(self) -> None:
        self.skew = 0.0
        self.api_hits = 0
        self.key_fetches = 0
        self.alter: Callable[[int, Dict[str, str], bytes], Tuple[int, Dict[str, str], bytes]] = lambda s, h, b: (s, h, b)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.handle_any()

            def do_POST(self) -> None:
                self.handle_any()

            def handle_any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                outer.respond(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def sign(self, h: BaseHTTPRequestHandler, status: int, headers: Dict[str, str], body: bytes, tag: str) -> Dict[str, str]:
        now = time.time() + self.skew
        headers = {**headers, "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))}
        req = signet.Request(h.command, f"http://{h.headers['Host']}{h.path}", list(h.headers.items()))
        comps = ["@status"] + (["content-type"] if "Content-Type" in headers else []) + (["content-digest"] if body else [])
        comps += ["date", '"@method";req', '"@path";req'] + (['"@query";req'] if "?" in h.path else [])
        comps += ['"signature";req'] if "Signature" in h.headers else []
        s = signet.Signer(key_id=GW_KID, key=GW_PRIV, label="signet", components=comps, tag=tag, nonce=False)
        signed = s.sign(signet.Response(status, list(headers.items()), body, request=req), created=math.floor(now))
        return {**headers, **signed.headers}

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        status, headers, body = 200, {"Content-Type": "application/json"}, b'{"id":"order-7"}'
        tag = signet.RESPONSE_TAG
        m = __import__("re").search(r"created=(\d+)", h.headers.get("Signature-Input") or "")
        if path == "/keys":
            self.key_fetches += 1
            headers, body = {"Content-Type": "application/jwk-set+json"}, json.dumps({"keys": [{**GW_JWK, "kid": GW_KID}]}).encode()
            signed = headers
        elif m and abs(int(m.group(1)) - (time.time() + self.skew)) > 300:
            status, tag = 401, signet.GATEWAY_TAG
            headers = {"Content-Type": "application/problem+json", "WWW-Authenticate": 'Signature realm="signet"'}
            body = b'{"type":"https://signet.dev/problems/expired","status":401}'
            signed = self.sign(h, status, headers, body, tag)
        else:
            self.api_hits += 1
            if path == "/forged":
                status = 401
                headers = {"Content-Type": "application/problem+json", "WWW-Authenticate": 'Signature realm="signet"'}
                body = b'{"type":"https://signet.dev/problems/expired","status":401}'
            signed = headers if path == "/unsigned" else self.sign(h, status, headers, body, tag)
        status, signed, body = self.alter(status, dict(signed), body)
        h.send_response_only(status)
        for k, v in signed.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gw() -> Iterator[SigningServer]:
    s = SigningServer()
    yield s
    s.close()


KEYS = {GW_KID: signet.load_key(GW_PUB)}
CLIENTS = ["requests", "httpx", "httpx-async"]


def send(client: str, method: str, url: str, **auth_kw: Any) -> Any:
    if client == "requests":
        auth: Any = signet.requests.SignetAuth("sk_c", CLIENT, **auth_kw)
        r = requests.request(method, url, auth=auth, data=b"{}" if method == "POST" else None)
        return r, auth
    auth = signet.httpx.SignetAuth("sk_c", CLIENT, **auth_kw)
    if client == "httpx":
        with httpx.Client(auth=auth, verify=False) as c:
            return c.request(method, url, content=b"{}" if method == "POST" else None), auth

    async def go() -> Any:
        async with httpx.AsyncClient(auth=auth, verify=False) as c:
            return await c.request(method, url, content=b"{}" if method == "POST" else None)
    return asyncio.run(go()), auth


@pytest.mark.parametrize("client", CLIENTS)
def test_signed_responses_verify(gw: SigningServer, client: str) -> None:
    r, _ = send(client, "GET", gw.url + "/v1/orders/7?expand=items", gateway_keys=KEYS, require_signed_responses=True)
    v = signet.verified_response(r)
    assert r.status_code == 200 and v is not None and v.tag == signet.RESPONSE_TAG and v.key_id == GW_KID
    r, _ = send(client, "GET", gw.url + "/unsigned", gateway_keys=KEYS)
    assert r.status_code == 200 and signet.verified_response(r) is None
    with pytest.raises(signet.VerifyError) as e:
        send(client, "GET", gw.url + "/unsigned", gateway_keys=KEYS, require_signed_responses=True)
    assert e.value.reason == "missing-signature"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("what,reason", [
    ("body", "digest-mismatch"), ("status", "bad-signature"), ("date", "bad-signature"), ("content-type", "bad-signature"),
])
def test_altered_responses(gw: SigningServer, client: str, what: str, reason: str) -> None:
    def alter(s: int, h: Dict[str, str], b: bytes) -> Tuple[int, Dict[str, str], bytes]:
        if what == "body":
            return s, h, b.replace(b"7", b"8")
        if what == "status":
            return 202, h, b
        if what == "date":
            return s, {**h, "Date": "Mon, 01 Jan 2001 00:00:00 GMT"}, b
        return s, {**h, "Content-Type": "text/html"}, b
    gw.alter = alter
    r, _ = send(client, "GET", gw.url + "/v1/orders/7", gateway_keys=KEYS)
    assert signet.verified_response(r) is None
    with pytest.raises(signet.VerifyError) as e:
        send(client, "GET", gw.url + "/v1/orders/7", gateway_keys=KEYS, require_signed_responses=True)
    assert e.value.reason == reason


@pytest.mark.parametrize("client", CLIENTS)
def test_forged_refusal_not_retried(gw: SigningServer, client: str) -> None:
    # The API's 401 in the gateway's clothes, its Date moved an hour on the
    # way: relayed, so neither the clock nor a retry follows.
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    gw.alter = lambda s, h, b: (s, {**h, "Date": later}, b)
    r, auth = send(client, "POST", gw.url + "/forged", gateway_keys=KEYS)
    assert r.status_code == 401 and gw.api_hits == 1
    assert auth.clock_offset(gw.url) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_clock_only_from_signed_refusals(gw: SigningServer, client: str) -> None:
    gw.skew = 600
    r, auth = send(client, "POST", gw.url + "/v1/orders", gateway_keys=KEYS)
    assert r.status_code == 200 and gw.api_hits == 1 and abs(auth.clock_offset(gw.url) - 600) <= 1
    # The same refusal with its Date moved on the way: ignored.
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    gw.alter = lambda s, h, b: (s, {**h, "Date": later} if s == 401 else h, b)
    r, auth = send(client, "POST", gw.url + "/v1/orders", gateway_keys=KEYS)
    assert r.status_code == 401 and auth.clock_offset(gw.url) == 0


def test_gateway_keys(gw: SigningServer) -> None:
    keys = signet.GatewayKeys(gw.url + "/keys")
    for _ in range(3):
        r, _ = send("requests", "GET", gw.url + "/v1/orders/7", gateway_keys=keys, require_signed_responses=True)
        assert signet.verified_response(r) is not None
    assert gw.key_fetches == 1
    r, _ = send("httpx", "GET", gw.url + "/v1/orders/7", gateway_keys=gw.url + "/keys", gateway_pins=[GW_KID], require_signed_responses=True)
    assert signet.verified_response(r) is not None
    with pytest.raises(signet.VerifyError) as e:
        send("requests", "GET", gw.url + "/v1/orders/7", gateway_keys=gw.url + "/keys", gateway_pins=["other"], require_signed_responses=True)
    assert e.value.reason == "unknown-key"
    with pytest.raises(ValueError):
        signet.GatewayKeys("http://gateway.example/.well-known/signet-keys")
    clock = [0.0]
    keys = signet.GatewayKeys(gw.url + "/keys", now=lambda: clock[0])
    gw.key_fetches = 0
    assert keys("rotated-away") is None
    clock[0] = 30
    assert keys("rotated-away") is None and gw.key_fetches == 1
    clock[0] = 61
    keys("rotated-away")
    assert gw.key_fetches == 2
    with pytest.raises(ValueError):
        signet.requests.SignetAuth("k", CLIENT, require_signed_responses=True)
