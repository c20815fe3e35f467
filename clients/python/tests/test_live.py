"""Live: this package signs, the real `signet serve` gateway verifies (see
the gateway fixture in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

import signet
import signet.httpx
import signet.requests

from conftest import Gateway


def send_with(client: str, auth: Any, method: str, url: str, **kw: Any) -> Any:
    if client == "requests":
        return requests.request(method, url, auth=auth, **kw)
    if client == "httpx":
        with httpx.Client(auth=auth, verify=False) as c:
            return c.request(method, url, **kw)

    async def go() -> Any:
        async with httpx.AsyncClient(auth=auth, verify=False) as c:
            return await c.request(method, url, **kw)
    return asyncio.run(go())


def auth_for(client: str, key_id: str, key: str, **kw: Any) -> Any:
    return (signet.requests.SignetAuth if client == "requests" else signet.httpx.SignetAuth)(key_id, key, **kw)


CLIENTS = ["requests", "httpx", "httpx-async"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_signed_requests_pass_the_gateway(gateway: Gateway, client: str, kind: str) -> None:
    key_id, key = gateway.keys[kind]
    auth = auth_for(client, key_id, key)
    r = send_with(client, auth, "POST", gateway.url + "/v1/orders?customer=42&expand=items", json={"sku": "B-1", "qty": 2})
    assert r.status_code == 200, r.text
    seen = gateway.upstream.seen[-1]
    assert seen["target"] == "/v1/orders?customer=42&expand=items"
    assert seen["headers"]["x-signet-key-id"] == key_id
    assert json.loads(seen["body"]) == {"sku": "B-1", "qty": 2}
    assert r.json()["owner"] == ("py-client" if kind == "hmac" else "py-ed")
    r = send_with(client, auth, "GET", gateway.url + "/v1/orders/7?x=%20y&z")
    assert r.status_code == 200 and gateway.upstream.seen[-1]["target"] == "/v1/orders/7?x=%20y&z"


def reason(r: requests.Response) -> Any:
    p = signet.read_problem(r)
    return p.reason if p else None


def test_tampered_replayed_unsigned_refused(gateway: Gateway) -> None:
    key_id, key = gateway.keys["hmac"]
    url = gateway.url + "/v1/orders"
    body = b'{"qty":1}'
    signed = signet.Signer(key_id=key_id, key=key).sign(signet.Request("POST", url, {"Content-Type": "application/json"}, body))

    def send(method: str = "POST", path: str = "/v1/orders", data: bytes = body, **extra: str) -> requests.Response:
        headers = {"Content-Type": "application/json", **signed.headers, **extra}
        return requests.request(method, gateway.url + path, headers=headers, data=data)

    # The gateway spends a nonce once the signature verifies, before it reads
    # the body: a body altered under a good signature uses up that signature,
    # so it gets one of its own.
    other = signet.Signer(key_id=key_id, key=key).sign(signet.Request("POST", url, {"Content-Type": "application/json"}, body))
    tampered = requests.post(url, headers={"Content-Type": "application/json", **other.headers}, data=b'{"qty":9}')

    n = len(gateway.upstream.seen)
    for r, want in [
        (tampered, "digest-mismatch"),
        (send(method="PUT"), "bad-signature"),
        (send(path="/v1/orders/1"), "bad-signature"),
        (send(**{"Content-Type": "text/plain"}), "bad-signature"),
        (send(**{"Signature-Input": signed.headers["Signature-Input"].replace(key_id, "sk_nobody")}), "unknown-key"),
        (send(**{"Signature-Input": signed.headers["Signature-Input"].replace("hmac-sha256", "ed25519")}), "algorithm-mismatch"),
        (send(**{"Signature": "sig1=:AAAA:"}), "bad-signature"),
    ]:
        assert (r.status_code, reason(r)) == (401, want), r.text
        assert r.headers["WWW-Authenticate"].startswith("Signature")
        with pytest.raises(signet.Refused) as e:
            signet.raise_for_refusal(r)
        assert e.value.reason == want
    assert len(gateway.upstream.seen) == n  # nothing refused reached the API
    assert send().status_code == 200
    r = send()
    assert (r.status_code, reason(r)) == (401, "replayed")
    r = requests.get(url)
    assert (r.status_code, reason(r)) == (401, "missing-signature")
    asked = signet.parse_accept_signature(r.headers["Accept-Signature"])
    assert [c.id for c in asked[0].components] == ['"@method"', '"@authority"', '"@path"']
    assert r.headers["Date"]
    old = signet.Signer(key_id=key_id, key=key, now=lambda: time.time() - 3600).sign(signet.Request("GET", url))
    r = requests.get(url, headers=old.headers)
    assert (r.status_code, reason(r)) == (401, "expired")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("skew", [-600, 600])
def test_clock_off_by_ten_minutes_is_corrected(gateway: Gateway, client: str, skew: int) -> None:
    key_id, key = gateway.keys["ed25519"]
    auth = auth_for(client, key_id, key, now=lambda: time.time() + skew)
    n = len(gateway.upstream.seen)
    r = send_with(client, auth, "POST", gateway.url + "/v1/orders/8", json={"n": 1})
    assert r.status_code == 200, r.text
    assert len(gateway.upstream.seen) == n + 1  # the refused attempt never reached the API
    assert abs(auth.clock_offset(gateway.url) + skew) <= 2


def test_revoked_key_is_refused(gateway: Gateway) -> None:
    private_pem, public_pem = signet.generate_key_pair("ed25519")
    pub = Path(gateway.db).with_name("revoke.pub")
    pub.write_text(public_pem)
    created = json.loads(gateway.cli("keys", "create", "--owner", "py-revoked", "--alg", "ed25519", "--public-key", str(pub), "--json"))
    auth = signet.requests.SignetAuth(created["key"]["id"], private_pem)
    assert requests.get(gateway.url + "/v1/x", auth=auth).status_code == 200
    gateway.cli("keys", "revoke", created["key"]["id"])
    deadline = time.monotonic() + 5
    while True:
        r = requests.get(gateway.url + "/v1/x", auth=auth)
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (r.status_code, reason(r)) == (401, "key-revoked")
