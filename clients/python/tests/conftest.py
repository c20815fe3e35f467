"""Shared helpers: the repository's test data, and the HTTP message text of
the RFC 9421 vectors turned into signet messages."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import signet

REPO = Path(__file__).resolve().parents[3]
TESTDATA = REPO / "testdata"
RFC9421 = TESTDATA / "rfc9421"


def load_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _field_lines(lines: List[str]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            # obs-fold: kept raw, for the signature base code to unfold.
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
            continue
        name, sep, value = line.partition(":")
        if not sep or not name:
            raise ValueError(f"bad field line {line!r}")
        out.append((name, value))
    return out


def _dechunk(text: str) -> Tuple[str, List[Tuple[str, str]]]:
    lines = text.split("\n")
    chunks, i = [], 0
    while True:
        size = int(lines[i], 16)
        i += 1
        if size == 0:
            break
        chunks.append(lines[i])
        i += 1
    return "".join(chunks), _field_lines([l for l in lines[i:] if l])


def parse_http(text: str, scheme: str = "https", request: Optional[signet.Request] = None) -> signet.Message:
    """Turns HTTP/1.1 message text (LF line endings, as the vectors print
    it) into a signet Request or Response."""
    head, sep, body = text.partition("\n\n")
    start, *rest = head.split("\n")
    headers = _field_lines(rest)
    trailers = None
    if any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
        body, trailers = _dechunk(body)
    if start.startswith("HTTP/"):
        return signet.Response(int(start.split(" ")[1]), headers, body.encode(), trailers=trailers, request=request)
    method, target, _ = start.split(" ")
    if target.startswith("/") or target == "*":
        return signet.Request(method, target, headers, body.encode(), scheme=scheme, trailers=trailers)
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", target):
        return signet.Request(method, target, headers, body.encode(), trailers=trailers, request_target=target)
    # authority-form (CONNECT)
    return signet.Request(method, f"{scheme}://{target}", headers, body.encode(), trailers=trailers, request_target=target)


@pytest.fixture
def secret() -> str:
    """A 32-byte HMAC secret as base64 text."""
    return signet.generate_secret()


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def vector_files() -> List[Path]:
    return sorted(p for p in RFC9421.glob("*.json") if p.name != "components.json")


def signed_fields(signed: signet.Signed) -> Dict[str, str]:
    return dict(signed.headers)
