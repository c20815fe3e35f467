"""The RFC 9421 and RFC 9530 examples of testdata/, which the Go and Node.js
tests read too: every signature base rebuilt byte for byte from its
message, every signature verified, the deterministic ones (HMAC B.2.5,
Ed25519 B.2.6 and B.4) re-created byte for byte, and every digest."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Dict

import pytest

import signet
from signet import sf

from conftest import RFC9421, TESTDATA, load_json, parse_http, vector_files

KNOWN_FIELDS = {
    "name", "section", "source", "message_name", "message", "request_message", "signed_message",
    "client_message", "client_signed_message", "label", "covered_components", "signature_params", "params",
    "key_id", "alg", "alg_param_present", "key", "key_encoding", "public_key", "key_files", "signature_base",
    "signature_input", "signature", "signature_value_b64", "deterministic", "notes", "variants", "signatures",
}

# Checks the signature only: the vectors are old, carry no nonce, and cover
# what the RFC chose.
def lenient(created: int) -> Dict[str, Any]:
    return {"now": lambda: created, "policy": signet.Policy(required_components=[], required_params=(), max_age=None)}


def verifying_key(v: Dict[str, Any]) -> signet.Key:
    return signet.load_key(v["public_key"] or v["key"], v["alg"])


def request_of(v: Dict[str, Any]) -> Any:
    return parse_http(v["request_message"]) if v.get("request_message") else None


def test_vector_directory() -> None:
    assert len(vector_files()) >= 11


SINGLE = [p for p in vector_files() if "signatures" not in load_json(p)]


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.name)
def test_only_known_fields(path: Path) -> None:
    assert set(load_json(path)) <= KNOWN_FIELDS


@pytest.mark.parametrize("path", SINGLE, ids=lambda p: p.name)
def test_signature_base_byte_for_byte(path: Path) -> None:
    v = load_json(path)
    message = parse_http(v.get("message") or v["signed_message"], request=request_of(v))
    base = signet.signature_base(message, v["signature_input"])
    assert base == v["signature_base"]
    # The parsed @signature-params line serialises back to what was received.
    assert base.rsplit("\n", 1)[-1] == f'"@signature-params": {v["signature_params"]}'


@pytest.mark.parametrize("path", SINGLE, ids=lambda p: p.name)
def test_signature_verifies(path: Path) -> None:
    v = load_json(path)
    try:
        key = verifying_key(v)
    except signet.KeyFormatError as e:
        pytest.fail(f"{v['alg']} key: {e}")
    sig = base64.b64decode(v["signature_value_b64"])
    data = v["signature_base"].encode("latin-1")
    assert key.verify(data, sig)
    flipped = bytearray(sig)
    flipped[len(flipped) // 2] ^= 1
    assert not key.verify(data, bytes(flipped))
    assert not key.verify(data + b" ", sig)


@pytest.mark.parametrize("path", [p for p in SINGLE if load_json(p)["deterministic"]], ids=lambda p: p.name)
def test_deterministic_signature_recreated(path: Path) -> None:
    v = load_json(path)
    key = signet.load_key(v["key"], v["alg"])
    assert base64.b64encode(key.sign(v["signature_base"].encode("latin-1"))).decode() == v["signature_value_b64"]


@pytest.mark.parametrize("path", [p for p in SINGLE if load_json(p).get("signed_message") or p.name.startswith("b4-")], ids=lambda p: p.name)
def test_verifier_accepts_signed_message(path: Path) -> None:
    v = load_json(path)
    signed = parse_http(v.get("signed_message") or v["message"], request=request_of(v))
    verifier = signet.Verifier({v["key_id"]: verifying_key(v)}, debug=True, **lenient(v["params"]["created"]))
    result = verifier.verify(signed)
    assert result.label == v["label"]
    assert result.base == v["signature_base"]


@pytest.mark.parametrize("name", ["b2.5-hmac-sha256.json", "b2.6-ed25519.json"])
def test_signer_fields_byte_for_byte(name: str) -> None:
    v = load_json(RFC9421 / name)
    signer = signet.Signer(
        key_id=v["key_id"], key=v["key"], alg=v["alg"], label=v["label"],
        components=v["covered_components"], nonce=False, include_alg=False,
    )
    out = signer.sign(parse_http(v["message"]), created=v["params"]["created"])
    assert out.base == v["signature_base"]
    assert out.headers["Signature-Input"] == v["signature_input"]
    assert out.headers["Signature"] == v["signature"]
    # Content always gets a fresh Content-Digest (sha-256 by default), covered or not.
    assert out.headers["Content-Digest"] == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


ALGS = {
    "test-key-rsa": "rsa-v1_5-sha256",
    "test-key-rsa-pss": "rsa-pss-sha512",
    "test-key-ecc-p256": "ecdsa-p256-sha256",
    "test-key-ed25519": "ed25519",
    "test-shared-secret": "hmac-sha256",
}


@pytest.mark.parametrize("key_id", sorted(ALGS))
def test_b1_keys_from_every_encoding(key_id: str) -> None:
    k = load_json(RFC9421 / "keys" / "index.json")[key_id]
    alg, data = ALGS[key_id], b"signet"
    if alg == "hmac-sha256":
        from_file = signet.load_key_file(RFC9421 / "keys" / "test-shared-secret.b64")
        assert from_file.alg == "hmac-sha256" and from_file.kind == "secret"
        assert signet.load_key(k["base64"], alg).verify(data, from_file.sign(data))
        return
    # test-key-rsa-pss's PKCS#8 file carries the RSASSA-PSS OID.
    priv = signet.load_key(k["private_pem"], alg)
    sig = priv.sign(data)
    assert signet.load_key(k["public_pem"], alg).verify(data, sig), "public PEM"
    jwk_public = {n: x for n, x in k["jwk"].items() if n not in ("d", "p", "q", "dp", "dq", "qi")}
    assert signet.load_key(jwk_public, alg).verify(data, sig), "public JWK"
    assert signet.load_key(k["jwk"], alg).verify(data, sig), "JWK"
    assert signet.load_key_file(RFC9421 / k["files"]["private_pem"], alg).can_sign


def test_b4_variants_validity() -> None:
    v = load_json(RFC9421 / "b4-transformations.json")
    key = signet.load_key(v["public_key"], v["alg"])
    assert len(v["variants"]) >= 5
    verifier = signet.Verifier({v["key_id"]: key}, **lenient(v["params"]["created"]))
    for variant in v["variants"]:
        msg = parse_http(variant["message"])
        if variant["expect_valid"]:
            verifier.verify(msg)
        else:
            with pytest.raises(signet.VerifyError) as e:
                verifier.verify(msg)
            assert e.value.reason == signet.Reason.BAD_SIGNATURE, variant["description"]


def test_multiple_signatures() -> None:
    v = load_json(RFC9421 / "s4.3-multiple-signatures.json")
    client, proxy = v["signatures"]
    client_msg = parse_http(v["client_signed_message"])
    client_base = signet.signature_base(client_msg, v["signature_input"], label="sig1")
    assert client_base == client["signature_base_derived"]
    client_key = signet.load_key(client["public_key"], client["alg"])
    assert client_key.verify(client_base.encode("latin-1"), base64.b64decode(client["signature_value_b64"]))

    # The figure has two blank lines before the body; the body is the same
    # 18 bytes as in the client's message.
    signed = parse_http(v["signed_message"].replace("\n\n\n", "\n\n"))
    assert signet.signature_base(signed, v["signature_input"], label="proxy_sig") == proxy["signature_base"]
    proxy_key = signet.load_key(proxy["key"], proxy["alg"])
    assert base64.b64encode(proxy_key.sign(proxy["signature_base"].encode())).decode() == proxy["signature_value_b64"]

    keys = {"test-key-ecc-p256": client_key, "test-key-rsa": proxy_key.public_key()}
    policy = signet.Policy(required_components=[], required_params=(), max_age=None, labels=["proxy_sig"])
    result = signet.Verifier(keys, policy=policy, now=lambda: proxy["params"]["created"]).verify(signed)
    assert result.key.alg == "rsa-v1_5-sha256" and result.expires == 1618884540
    # The client's signature does not survive the proxy's change of Host, so
    # checking every signature must fail, however good proxy_sig is.
    every = signet.Verifier(keys, **lenient(proxy["params"]["created"]))
    with pytest.raises(signet.VerifyError) as e:
        every.verify(signed)
    assert e.value.reason == "bad-signature" and e.value.label == "sig1"
    signet.Verifier(keys, **lenient(1618884475)).verify(client_msg)


COMPONENTS = load_json(RFC9421 / "components.json")


def split_line(line: str) -> str:
    """The identifier of a base line: the sf Item before the first ": " that parses as one."""
    i = line.find(": ")
    while i >= 0:
        try:
            sf.parse_item(line[:i])
            return line[:i]
        except sf.ParseError:
            i = line.find(": ", i + 1)
    raise AssertionError(f"no identifier in {line!r}")


@pytest.mark.parametrize("case", COMPONENTS["cases"], ids=lambda c: f"{c['section']} {c['title']}")
def test_components_json(case: Dict[str, Any]) -> None:
    if case["section"] == "2.3":
        parsed = sf.parse_dictionary(f"sig={case['expected']}")
        assert sf.serialize_member(parsed["sig"]) == case["expected"]
        msg = signet.Request("GET", "https://example.com/")
        assert signet.signature_base(msg, '();keyid="k"') == '"@signature-params": ();keyid="k"'
        return
    scheme = "http" if "plain HTTP" in (case["context"] or "") else "https"
    if case["message"] is None:
        message: signet.Message = signet.Request("GET", "https://www.example.com/path")
    elif "HTTP/1.1" in case["message"]:
        message = parse_http(case["message"], scheme)
    else:
        message = parse_http("GET https://www.example.com/ HTTP/1.1\n" + case["message"], scheme)
    for line in case["expected"].split("\n"):
        ident = split_line(line)
        # Example-Dict is no registered structured field: its type is declared.
        base = signet.signature_base(message, f"({ident})", structured={"example-dict": "dictionary"})
        assert base.split("\n")[0] == line


DIGESTS = load_json(TESTDATA / "rfc9530" / "digests.json")


@pytest.mark.parametrize("case", DIGESTS["cases"], ids=lambda c: c["id"])
def test_rfc9530_digests(case: Dict[str, Any]) -> None:
    content = bytes.fromhex(case["input_hex"])
    assert len(content) == case["input_length"]
    alg = case["algorithm"]
    if alg not in signet.DIGEST_ALGORITHMS:
        # Other algorithms are ignored, but one this package checks must be there.
        other = f"{alg}=:{case['computed_b64']}:"
        with pytest.raises(signet.VerifyError) as e:
            signet.check_content_digest(other, content)
        assert e.value.reason == "digest-mismatch" and "no sha-256 or sha-512" in str(e.value)
        signet.check_content_digest(f"{other.replace(':', ':AAAA', 1)}, {signet.content_digest(content)}", content)
        return
    value = signet.content_digest(content, alg)
    assert value == f"{alg}=:{case['computed_b64']}:"
    signet.check_content_digest(value, content)
    if case["matches_as_printed"]:
        signet.check_content_digest(f"{alg}=:{case['value_as_printed']}:", content)
    with pytest.raises(signet.VerifyError) as e:
        signet.check_content_digest(value, content + b"x")
    assert e.value.reason == "digest-mismatch"
