#!/usr/bin/env python3
"""Sign and verify throughput over Signet's reference request (POST with a
1 KiB JSON body, the default profile), for hmac-sha256 and ed25519, beside
the raw cost they cannot avoid (SHA-256 of the body, and the MAC or
signature of the base). Verify runs without a nonce store, to time the
checks alone. A few seconds; run it on a quiet machine and compare ratios."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

import signet  # noqa: E402

BODY = (b'{"items":[' + b",".join(b'{"sku":"SKU-%05d","qty":%d}' % (i, i % 9) for i in range(40)) + b"]}")[:1024].ljust(1024, b" ")
URL = "https://api.example.com/v1/orders?customer=42&expand=items"


def rate(name: str, f: Callable[[], object], seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            f()
        n += 100
    per = elapsed / n * 1e6
    print(f"{name:<34} {n / elapsed:>10,.0f} ops/s {per:>8.1f} µs/op")
    return per


def main() -> None:
    print(f"python {sys.version.split()[0]}, body {len(BODY)} bytes")
    request = signet.Request("POST", URL, {"Content-Type": "application/json"}, BODY)
    for alg in ("hmac-sha256", "ed25519"):
        if alg == "hmac-sha256":
            key = public = signet.load_key(signet.generate_secret())
        else:
            private_pem, public_pem = signet.generate_key_pair()
            key, public = signet.load_key(private_pem), signet.load_key(public_pem)
        signer = signet.Signer(key_id="sk_bench", key=key)
        signed = signer.sign(request)
        received = signet.Request(
            "POST", "/v1/orders?customer=42&expand=items",
            [("Host", "api.example.com"), ("Content-Type", "application/json"), *signed.headers.items()], BODY,
        )
        verifier = signet.Verifier({"sk_bench": public}, policy=signet.Policy(required_params=("created", "keyid")))
        base = signed.base.encode("latin-1")
        sig = key.sign(base)
        sign_floor = rate(f"{alg} floor: sha-256 + sign", lambda: (hashlib.sha256(BODY).digest(), key.sign(base)))
        s = rate(f"{alg} Signer.sign", lambda: signer.sign(request))
        verify_floor = rate(f"{alg} floor: sha-256 + verify", lambda: (hashlib.sha256(BODY).digest(), public.verify(base, sig)))
        v = rate(f"{alg} Verifier.verify", lambda: verifier.verify(received))
        print(f"{alg}: sign {s / sign_floor:.1f}x its floor, verify {v / verify_floor:.1f}x its floor\n")

if __name__ == "__main__":
    main()
