"""The Python example of the verify API in the repository's README.md, run
as written against the real `signet serve` (the gateway fixture): its
service key is a key with the verify scope made in the gateway's store, and
http://127.0.0.1:9090 is the gateway's admin listener."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

import signet

from conftest import Gateway, free_port

README = Path(__file__).resolve().parents[3] / "README.md"


def example() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.S | re.M)
    found = [b for b in blocks if "def authenticate(" in b]
    assert len(found) == 1, "README.md has no Python example of the verify API"
    return found[0]


def load(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin_url: str) -> Callable[..., Tuple[int, Dict[str, Any]]]:
    made = json.loads(gateway.cli("keys", "create", "--owner", "orders-service", "--scopes", "verify", "--json"))
    (tmp_path / "verify.key").write_text(made["secret"])
    monkeypatch.chdir(tmp_path)
    code = example().replace("sk_orders_service", made["key"]["id"]).replace("http://127.0.0.1:9090", admin_url)
    namespace: Dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, "README.md verify API example", "exec"), namespace)  # noqa: S102
    return namespace["authenticate"]  # type: ignore[no-any-return]


def received(gateway: Gateway, body: bytes) -> List[Tuple[str, str]]:
    key_id, secret = gateway.keys["hmac"]
    signed = signet.Signer(key_id=key_id, key=signet.load_key(secret)).sign(signet.Request(
        "POST", "https://api.example.com/v1/orders?customer=42", headers=[("Content-Type", "application/json")], body=body))
    return [("Host", "api.example.com"), ("Content-Type", "application/json"), *signed.headers.items()]


def test_readme_verify_api_example(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    authenticate = load(gateway, tmp_path, monkeypatch, gateway.admin_url)
    body = b'{"sku":"A-1"}'
    fields = received(gateway, body)
    status, verdict = authenticate("POST", "/v1/orders?customer=42", "api.example.com", "https", fields, body)
    assert status == 200, verdict
    assert verdict["key_id"] == gateway.keys["hmac"][0] and verdict["owner"] == "py-client"

    # The same request again: the gateway's replay cache refuses it.
    status, problem = authenticate("POST", "/v1/orders?customer=42", "api.example.com", "https", fields, body)
    assert status == 401 and problem["type"].endswith("/replayed"), problem

    # A body other than the one signed: refused here, against the digest named.
    status, problem = authenticate("POST", "/v1/orders?customer=42", "api.example.com", "https", received(gateway, body), b'{"sku":"A-9"}')
    assert status == 401 and problem["type"].endswith("/digest-mismatch"), problem

    # Unsigned: the gateway's refusal, to be answered as it is.
    status, problem = authenticate("GET", "/v1/orders/7", "api.example.com", "https", [("Host", "api.example.com")], b"")
    assert status == 401 and problem["type"].endswith("/missing-signature"), problem


def test_readme_verify_api_example_fails_closed(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    authenticate = load(gateway, tmp_path, monkeypatch, f"http://127.0.0.1:{free_port()}")
    body = b'{"sku":"A-1"}'
    status, problem = authenticate("POST", "/v1/orders?customer=42", "api.example.com", "https", received(gateway, body), body)
    assert status == 503 and problem["type"].endswith("/unavailable"), problem
