#!/usr/bin/env python3
"""crosscheck: the Python side of the cross-language test (internal/interop).

Reads JSON lines on stdin and writes one JSON line per input line on stdout,
in order, speaking the protocol of clients/js/tools/crosscheck.mjs:

  {"op":"sign","request":{"method","url","headers":[[name,value],...],"body_b64"},
   "keyId","alg","key","created","nonce"[, "components","label","expires","tag",
   "digestAlgorithm"]}
    -> {"headers":[[name,value],...],"base":"..."}        (the fields to add)
  {"op":"verify","request":{...with the signature fields...},
   "keys":{"<keyid>":{"alg","key"}},"now":<unix seconds>[, "maxAge","clockSkew",
   "requiredComponents","requiredParams","algorithms","label","tag"]}
    -> {"ok":true} or {"ok":false,"reason":"...","message":"..."}

  {"op":"presign","url","keyId","alg","key","expires","created"[, "method","nonce"]}
    -> {"url":"..."}, or {"error":"..."} when the URL cannot be presigned
  {"op":"verify_response","request":{...as sent...},"response":{"status","headers","body_b64"},
   "keys":"<the gateway's JWK set>"}
    -> {"ok":true,"tag":"..."} or {"ok":false,"reason":"...","message":"..."}

Keys are base64 HMAC secrets, PEM or JWK text. Field values in JSON are taken
as UTF-8 octets, as Go sends them. Each verify line has a nonce store of its
own: replays across lines are the servers' business. A line that cannot be
handled gives {"error":"..."} (sign) or {"ok":false,"reason":"error",...}
(verify).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import signet  # noqa: E402


def octets(s: Any) -> str:
    """A JSON string's UTF-8 octets, one character each."""
    return str(s).encode("utf-8").decode("latin-1")


def text(s: str) -> str:
    return s.encode("latin-1").decode("utf-8", "replace")


def to_request(r: Any) -> signet.Request:
    if not isinstance(r, dict):
        raise TypeError("request must be an object")
    headers: List[Tuple[str, str]] = []
    for pair in r.get("headers") or []:
        if not isinstance(pair, list) or len(pair) != 2:
            raise TypeError("headers must be [name, value] pairs")
        headers.append((pair[0], octets(pair[1])))
    body = base64.b64decode(r["body_b64"]) if r.get("body_b64") else b""
    return signet.Request(r["method"], r["url"], headers, body)


def sign(line: Dict[str, Any]) -> Dict[str, Any]:
    created = line.get("created")
    expires: Optional[int] = line.get("expires")
    signer = signet.Signer(
        key_id=line["keyId"],
        key=line["key"],
        alg=line.get("alg"),
        label=line.get("label") or signet.DEFAULT_LABEL,
        components=line.get("components"),
        tag=line.get("tag"),
        expires_in=None if expires is None else expires - created,
        digest=line.get("digestAlgorithm") or "sha-256",
    )
    out = signer.sign(to_request(line["request"]), created=created, nonce=line.get("nonce"))
    return {"headers": [[k, v] for k, v in out.headers.items()], "base": text(out.base)}


def verify(line: Dict[str, Any]) -> Dict[str, Any]:
    keys = {kid: signet.load_key(k["key"], k.get("alg")) for kid, k in (line.get("keys") or {}).items()}
    policy = signet.Policy()
    if "maxAge" in line:
        policy.max_age = line["maxAge"]
    if "clockSkew" in line:
        policy.max_skew = line["clockSkew"]
    if "requiredComponents" in line:
        policy.required_components = line["requiredComponents"]
    if "requiredParams" in line:
        policy.required_params = tuple(line["requiredParams"])
    if "algorithms" in line:
        policy.algorithms = line["algorithms"]
    if "label" in line:
        label = line["label"]
        policy.labels = label if isinstance(label, list) else [label]
    if "tag" in line:
        policy.tag = line["tag"]
    now = line.get("now")
    if not isinstance(now, (int, float)):
        raise TypeError("verify needs now")
    verifier = signet.Verifier(keys, nonces=signet.MemoryNonceStore(now=lambda: now), policy=policy, now=lambda: now)
    try:
        verifier.verify(to_request(line["request"]))
    except signet.VerifyError as e:
        return {"ok": False, "reason": e.reason.value, "message": str(e)}
    return {"ok": True}


def presign(line: Dict[str, Any]) -> Dict[str, Any]:
    url = signet.presign(
        line["url"], line["keyId"], line["key"], alg=line.get("alg"), method=line.get("method") or "GET",
        expires_in=line["expires"], created=line["created"], single_use="nonce" in line, nonce=line.get("nonce"),
    )
    return {"url": url}


def verify_response(line: Dict[str, Any]) -> Dict[str, Any]:
    r = line["response"]
    headers = [(n, octets(v)) for n, v in r.get("headers") or []]
    body = base64.b64decode(r["body_b64"]) if r.get("body_b64") else b""
    resp = signet.Response(r["status"], headers, body, request=to_request(line["request"]))
    try:
        got = signet.verify_response(resp, signet.parse_jwks(line["keys"]))
    except signet.VerifyError as e:
        return {"ok": False, "reason": e.reason.value, "message": str(e)}
    return {"ok": True, "tag": got.tag}


def handle(line: str) -> Dict[str, Any]:
    op = None
    try:
        data = json.loads(line)
        op = data.get("op") if isinstance(data, dict) else None
        if op == "sign":
            return sign(data)
        if op == "verify":
            return verify(data)
        if op == "presign":
            return presign(data)
        if op == "verify_response":
            return verify_response(data)
        raise ValueError(f"unknown op {op!r}")
    except Exception as e:  # one bad line must not stop the others
        message = f"{type(e).__name__}: {e}"
        return {"ok": False, "reason": "error", "message": message} if op in ("verify", "verify_response") else {"error": message}


def main() -> None:
    # Bytes in and ASCII JSON out, whatever the locale says.
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8")
        if line.strip():
            sys.stdout.write(json.dumps(handle(line)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
