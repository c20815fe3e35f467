"""The Python examples of README.md, run in order against the real
`signet serve` (the gateway fixture): the blocks that send have
https://api.example.com pointed at the gateway, the key id sk_live_1 is a
key made in its store, and client.key holds its secret."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import Gateway

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_examples() -> None:
    assert len(blocks()) >= 5


def test_readme_examples_run(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_id, secret = gateway.keys["hmac"]
    (tmp_path / "client.key").write_text(secret)
    monkeypatch.chdir(tmp_path)
    namespace: Dict[str, Any] = {"__name__": "readme"}
    sent = len(gateway.upstream.seen)
    out = io.StringIO()
    for i, code in enumerate(blocks()):
        code = code.replace("sk_live_1", key_id)
        if re.search(r"^(import|from) (requests|httpx)|signet\.(requests|httpx)", code, re.M):
            code = code.replace("https://api.example.com", gateway.url)
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
        if "r" in namespace and i < 2:
            assert namespace["r"].status_code == 200, (i, namespace["r"].text)
    # Three requests went through the gateway, as the examples' key.
    seen = gateway.upstream.seen[sent:]
    assert [s["target"] for s in seen] == ["/v1/orders?customer=42", "/v1/orders/7", "/v1/orders"]
    assert all(s["headers"]["x-signet-key-id"] == key_id for s in seen)
    printed = out.getvalue()
    assert "'Signature-Input': 'sig1=(" in printed and '"@method": POST\n"@authority": api.example.com\n' in printed
    assert f"{key_id} " in printed  # the verifier's result
    assert namespace["result"].key_id == key_id
