"""Hostile input, seeded: altered Signature-Input, Signature and other
fields make verify refuse with a reason code, and nothing else; the other
parsers raise their documented errors only."""

from __future__ import annotations

import random

import signet

NOW = 1700000000
SECRET = signet.hmac_key(b"k" * 32)
ALPHABET = list('abcsig1=()";:,*-?0123456789 \t@\\/+%&#é') + ['"@method"', "sig1=", ";created=", ":AAAA:", "(", ")", "\x00", "\n"]


def mutate(rng: random.Random, s: str) -> str:
    chars = list(s)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        i = rng.randrange(len(chars) + 1)
        if op == 0:
            chars.insert(i, rng.choice(ALPHABET))
        elif op == 1 and chars:
            del chars[min(i, len(chars) - 1)]
        elif chars:
            chars[min(i, len(chars) - 1)] = rng.choice(ALPHABET)
    return "".join(chars)


def test_verify_refuses_altered_fields_with_a_reason() -> None:
    rng = random.Random(9421)
    request = signet.Request("POST", "https://api.example.com/v1/orders?x=1", {"Content-Type": "application/json"}, b"{}")
    signed = signet.Signer(key_id="key-1", key=SECRET, now=lambda: NOW, tag="t").sign(request)
    verifier = signet.Verifier({"key-1": SECRET}, nonces=signet.MemoryNonceStore(now=lambda: NOW), now=lambda: NOW)
    reasons = set()
    for _ in range(1000):
        fields = dict(signed.headers)
        name = rng.choice(list(fields))
        fields[name] = mutate(rng, fields[name])
        headers = [("Host", "api.example.com"), ("Content-Type", "application/json"), *fields.items()]
        msg = signet.Request("POST", "/v1/orders?x=1", [(k, v.encode("utf-8")) for k, v in headers], b"{}")
        try:
            verifier.verify(msg)
        except signet.VerifyError as e:
            reasons.add(e.reason.value)
    assert {"malformed-signature", "bad-signature"} <= reasons


def test_other_parsers_raise_their_errors_only() -> None:
    rng = random.Random(8941)
    samples = ['sig1=("@method" "@path");keyid="k";created', 'sha-256=:AAAA:', "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", '{"kty":"OKP","crv":"Ed25519","x":"AAAA"}']
    for _ in range(1000):
        text = mutate(rng, rng.choice(samples))
        with _any_of(ValueError):
            signet.parse_accept_signature(text)
        with _any_of(signet.VerifyError):
            signet.check_content_digest(text, b"")
        with _any_of(signet.KeyFormatError, ValueError):
            signet.load_key(text)
        with _any_of(ValueError):
            signet.parse_component(text)


class _any_of:
    """Lets the block pass, or raise one of the given types; anything else fails."""

    def __init__(self, *types: type) -> None:
        self.types = types

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, value: object, tb: object) -> bool:
        if typ is None:
            return False
        if isinstance(value, self.types):
            return True
        raise AssertionError(f"unexpected {typ}: {value}") from value  # type: ignore[misc]
