"""Key files, key binding, Accept-Signature and problem details."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import signet

RAW = bytes(range(32))


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(RAW).decode(),
        base64.b64encode(RAW).decode().rstrip("="),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        "  " + base64.b64encode(RAW).decode()[:20] + "\n" + base64.b64encode(RAW).decode()[20:] + "\n",
    ],
)
def test_base64_secret_files(text: str) -> None:
    key = signet.load_key(text)
    assert key.alg == "hmac-sha256" and key.kind == "secret"
    assert key.sign(b"x") == signet.hmac_key(RAW).sign(b"x")
    assert signet.load_key(text.encode()).sign(b"x") == key.sign(b"x")


@pytest.mark.parametrize("text", ["", "   ", "not base64!", "YQ", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "{", '{"kty":"oct"}', "[1]"])
def test_bad_key_files(text: str) -> None:
    with pytest.raises(signet.KeyFormatError):
        signet.load_key(text)


def test_errors_never_show_key_material(tmp_path: Path) -> None:
    secret = base64.b64encode(b"s" * 16).decode()  # too short
    with pytest.raises(signet.KeyFormatError) as e:
        signet.load_key(secret)
    assert secret not in str(e.value) and "16 bytes" in str(e.value)
    private_pem, _ = signet.generate_key_pair()
    key = signet.load_key(private_pem)
    assert repr(key) == "Key(alg='ed25519', kind='private')"
    with pytest.raises(signet.KeyFormatError) as e:
        signet.load_key(private_pem.replace("MC4C", "MC4D"))
    assert "MC4" not in str(e.value)


def test_ed25519_files_and_jwk(tmp_path: Path) -> None:
    private_pem, public_pem = signet.generate_key_pair("ed25519")
    (tmp_path / "client.key").write_text(private_pem)
    priv = signet.load_key_file(tmp_path / "client.key")
    pub = signet.load_key(public_pem)
    assert (priv.alg, priv.kind, pub.kind) == ("ed25519", "private", "public")
    assert priv.public_key().public_pem() == public_pem == pub.public_pem()
    sig = priv.sign(b"data")
    assert pub.verify(b"data", sig) and not pub.verify(b"datA", sig) and not pub.verify(b"data", sig[:-1])
    assert not pub.can_sign
    with pytest.raises(TypeError):
        pub.sign(b"data")
    raw = serialization.load_pem_public_key(public_pem.encode()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode().rstrip("="), "alg": "EdDSA"}
    assert signet.load_key(jwk).verify(b"data", sig)
    assert signet.load_key(json.dumps(jwk)).verify(b"data", sig)
    with pytest.raises(signet.KeyFormatError, match="names ed25519"):
        signet.load_key(jwk, "hmac-sha256")


def test_keys_are_bound_to_one_algorithm() -> None:
    private_pem, _ = signet.generate_key_pair("ecdsa-p256-sha256")
    assert signet.load_key(private_pem).alg == "ecdsa-p256-sha256"
    for alg in ("ed25519", "ecdsa-p384-sha384", "hmac-sha256", "rsa-pss-sha512"):
        with pytest.raises(signet.KeyFormatError, match="cannot be used"):
            signet.load_key(private_pem, alg)
    with pytest.raises(signet.KeyFormatError, match="cannot be used"):
        signet.load_key(signet.generate_secret(), "ed25519")
    key = signet.load_key(signet.generate_secret())
    assert signet.load_key(key) is key
    with pytest.raises(signet.KeyFormatError, match="bound to"):
        signet.load_key(key, "ed25519")
    with pytest.raises(signet.KeyFormatError, match="unknown algorithm"):
        signet.load_key(signet.generate_secret(), "hmac-md5")
    with pytest.raises(AttributeError):
        key.alg = "ed25519"  # type: ignore[misc]


def test_ecdsa_signatures_are_raw_r_s() -> None:
    for alg, size in (("ecdsa-p256-sha256", 64), ("ecdsa-p384-sha384", 96)):
        private_pem, public_pem = signet.generate_key_pair(alg)
        sig = signet.load_key(private_pem).sign(b"data")
        assert len(sig) == size
        assert signet.load_key(public_pem).verify(b"data", sig)


def test_accept_signature() -> None:
    got = signet.parse_accept_signature(
        'sig1=("@method" "@target-uri" "@authority" "content-digest" "cache-control");keyid="test-key-rsa-pss";created;tag="app-123", '
        'sig2=("@query-param";name="id");nonce="abc";alg="ed25519";expires'
    )
    assert [a.label for a in got] == ["sig1", "sig2"]
    assert [c.id for c in got[0].components] == ['"@method"', '"@target-uri"', '"@authority"', '"content-digest"', '"cache-control"']
    assert (got[0].key_id, got[0].tag, got[0].created, got[0].expires) == ("test-key-rsa-pss", "app-123", True, False)
    assert (got[1].nonce, got[1].alg, got[1].expires) == ("abc", "ed25519", True)
    # What a Signet server asks for can be given to a Signer as it is.
    asked = signet.parse_accept_signature('sig1=("@method" "@authority" "@path")')[0]
    out = signet.Signer(key_id="k", key=signet.generate_secret(), components=asked.components).sign(signet.Request("GET", "https://a.example/p?x=1"))
    assert out.signature_params.startswith('("@method" "@authority" "@path");')
    for bad in ('sig1="x"', "sig1=(", 'sig1=("@nope")', 'sig1=("a");created=1', 'sig1=("a");keyid=k', 'sig1=("a"), sig1=("b")'):
        with pytest.raises(ValueError):
            signet.parse_accept_signature(bad)


class FakeResponse:
    def __init__(self, status: int, headers: dict, body: bytes) -> None:
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.content = body


def gateway_refusal(reason: str, base: str = signet.DEFAULT_PROBLEM_BASE, challenge: str = 'Signature realm="signet"') -> FakeResponse:
    body = json.dumps({"type": base + reason, "title": "t", "status": 401, "detail": "why", "signature": "sig1"}).encode()
    headers = {"Content-Type": "application/problem+json", "Date": "Mon, 23 Nov 2026 09:33:29 GMT"}
    if challenge:
        headers["WWW-Authenticate"] = challenge
    return FakeResponse(401, headers, body)


def test_read_problem() -> None:
    p = signet.read_problem(gateway_refusal("expired"))
    assert p is not None and p.reason == "expired" and p.signet and p.label == "sig1" and p.detail == "why"
    e = p.exception()
    assert isinstance(e, signet.Refused) and e.reason == signet.Reason.EXPIRED and e.status == 401
    with pytest.raises(signet.Refused) as raised:
        signet.raise_for_refusal(gateway_refusal("replayed"))
    assert raised.value.reason == "replayed"
    # The API's own problems are not the gateway's.
    assert not signet.read_problem(gateway_refusal("expired", "https://api.example/errors/")).signet  # type: ignore[union-attr]
    assert not signet.read_problem(gateway_refusal("expired", challenge="Bearer")).signet  # type: ignore[union-attr]
    assert signet.read_problem(gateway_refusal("expired", challenge='Bearer realm="x", Signature realm="signet"')).signet  # type: ignore[union-attr]
    signet.raise_for_refusal(gateway_refusal("expired", challenge=""))
    assert signet.read_problem(FakeResponse(401, {"Content-Type": "application/json"}, b"{}")) is None
    assert signet.read_problem(FakeResponse(401, {"Content-Type": "application/problem+json"}, b"nope")) is None
    unavailable = FakeResponse(503, {"Content-Type": "application/problem+json"}, json.dumps({"type": signet.DEFAULT_PROBLEM_BASE + "unavailable"}).encode())
    with pytest.raises(signet.Refused) as raised:
        signet.raise_for_refusal(unavailable)
    assert raised.value.reason == "unavailable" and raised.value.status == 503
