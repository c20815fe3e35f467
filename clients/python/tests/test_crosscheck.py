"""tools/crosscheck.py, driven the way the Go cross-language test drives it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import signet

from conftest import RFC9421

TOOL = Path(__file__).resolve().parents[1] / "tools" / "crosscheck.py"
SECRET = (RFC9421 / "keys" / "test-shared-secret.b64").read_text()
REQUEST = {
    "method": "POST",
    "url": "https://api.example.com/v1/orders?customer=42&expand=items",
    "headers": [["Content-Type", "application/json"], ["X-Note", "café"]],
    "body_b64": base64.b64encode(b'{"customer":42}').decode(),
}


def run(lines: List[Any]) -> List[Any]:
    data = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines).encode()
    out = subprocess.run([sys.executable, str(TOOL)], input=data, capture_output=True, check=True, timeout=60)
    return [json.loads(l) for l in out.stdout.decode("ascii").splitlines()]


def test_sign_then_verify_and_refusals() -> None:
    private_pem, public_pem = signet.generate_key_pair()
    hmac_out, ed_out = run([
        {"op": "sign", "request": REQUEST, "keyId": "sk_test_abc", "alg": "hmac-sha256", "key": SECRET, "created": 1700000000, "nonce": "q3v0b0m5c2g3d2x1ZmZ4cA"},
        {"op": "sign", "request": REQUEST, "keyId": "pk_ed", "alg": "ed25519", "key": private_pem, "created": 1700000000, "nonce": "n2", "expires": 1700000300, "tag": "t"},
    ])
    assert [n for n, _ in hmac_out["headers"]] == ["Content-Digest", "Signature-Input", "Signature"]
    assert hmac_out["headers"][1][1] == (
        'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");'
        'created=1700000000;keyid="sk_test_abc";alg="hmac-sha256";nonce="q3v0b0m5c2g3d2x1ZmZ4cA"'
    )
    assert ed_out["headers"][1][1].endswith(';nonce="n2";expires=1700000300;tag="t"')
    assert hmac_out["base"].startswith('"@method": POST\n"@authority": api.example.com\n')

    def signed(out: Any, **extra: Any) -> Any:
        return {**REQUEST, **extra, "headers": REQUEST["headers"] + out["headers"]}

    keys = {"sk_test_abc": {"alg": "hmac-sha256", "key": SECRET}, "pk_ed": {"alg": "ed25519", "key": public_pem}}
    results = run([
        {"op": "verify", "request": signed(hmac_out), "keys": keys, "now": 1700000010},
        {"op": "verify", "request": signed(ed_out), "keys": keys, "now": 1700000010},
        {"op": "verify", "request": signed(hmac_out, method="PUT"), "keys": keys, "now": 1700000010},
        {"op": "verify", "request": signed(hmac_out, body_b64=base64.b64encode(b'{"customer":43}').decode()), "keys": keys, "now": 1700000010},
        {"op": "verify", "request": signed(hmac_out), "keys": keys, "now": 1700001000},
        {"op": "verify", "request": signed(hmac_out), "keys": {"sk_test_abc": {"alg": "ed25519", "key": public_pem}}, "now": 1700000010},
        {"op": "verify", "request": signed(hmac_out), "keys": {}, "now": 1700000010},
        {"op": "verify", "request": {**REQUEST, "headers": REQUEST["headers"] + [["Signature-Input", "sig1=(("], ["Signature", "sig1=:AA==:"]]}, "keys": keys, "now": 1},
        {"op": "verify", "request": REQUEST, "keys": keys, "now": 1},
        "this is not json",
        {"op": "frobnicate"},
        {"op": "verify", "request": {"method": "GET"}, "keys": keys},
        {"op": "sign", "request": REQUEST, "keyId": "k", "alg": "hmac-sha256", "key": "!!!"},
    ])
    assert len(results) == 13
    assert results[0] == {"ok": True} and results[1] == {"ok": True}
    assert [r["reason"] for r in results[2:9]] == [
        "bad-signature", "digest-mismatch", "expired", "algorithm-mismatch", "unknown-key", "malformed-signature", "missing-signature"]
    assert all(r["ok"] is False and isinstance(r["message"], str) for r in results[2:9])
    assert "JSON" in results[9]["error"] or "Expecting" in results[9]["error"]
    assert "unknown op" in results[10]["error"]
    assert results[11]["reason"] == "error"
    assert "base64" in results[12]["error"]


def test_non_ascii_values_travel_as_utf8_octets() -> None:
    [out] = run([{"op": "sign", "request": REQUEST, "keyId": "k", "alg": "hmac-sha256", "key": SECRET, "created": 1, "nonce": "n", "components": ["x-note"]}])
    assert out["base"].split("\n")[0] == '"x-note": café'
