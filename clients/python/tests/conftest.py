"""Shared helpers: the repository's test data, and the HTTP message text of
the RFC 9421 vectors turned into signet messages."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

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


class Upstream:
    def __init__(self) -> None:
        self.seen: List[Dict[str, Any]] = []
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                up.seen.append({"method": self.command, "target": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                out = json.dumps({"owner": self.headers.get("X-Signet-Owner")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"signet serve exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("signet serve did not start listening")


class Gateway:
    def __init__(self, signet_bin: str, db: str, url: str, keys: Dict[str, Tuple[str, str]], upstream: Upstream, admin_url: str = "") -> None:
        self.bin, self.db, self.url, self.keys, self.upstream = signet_bin, db, url, keys, upstream
        self.admin_url = admin_url

    def cli(self, *args: str) -> str:
        return subprocess.run([self.bin, *args, "--db", self.db], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    """The real `signet serve`, built from this repository (Go is needed;
    without it the tests that use it skip, or fail under CI=true;
    SIGNET_BIN names a binary built already), with keys made in a fresh
    SQLite key store by `signet keys create`, in front of an upstream on
    127.0.0.1 that records what it receives. Everything stops at the end."""
    go = shutil.which("go")
    tmp = tempfile.mkdtemp(prefix="signet-py-live-")
    try:
        bin_path = os.environ.get("SIGNET_BIN") or os.path.join(tmp, "signet")
        if not os.environ.get("SIGNET_BIN"):
            try:
                if go is None:
                    raise FileNotFoundError("go is not installed")
                subprocess.run([go, "build", "-o", bin_path, "./cmd/signet"], cwd=REPO, check=True, capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as e:
                if in_ci():
                    pytest.fail(f"cannot build signet (CI=true requires it): {e}")
                pytest.skip(f"cannot build signet with go: {e}")
        db = os.path.join(tmp, "keys.db")

        def create(*args: str) -> Dict[str, Any]:
            out = subprocess.run([bin_path, "keys", "create", "--db", db, "--json", *args], check=True, capture_output=True, text=True)
            return json.loads(out.stdout)  # type: ignore[no-any-return]

        h = create("--owner", "py-client", "--scopes", "orders:read")
        private_pem, public_pem = signet.generate_key_pair("ed25519")
        Path(tmp, "ed.pub").write_text(public_pem)
        e = create("--owner", "py-ed", "--alg", "ed25519", "--public-key", os.path.join(tmp, "ed.pub"))
        keys = {"hmac": (h["key"]["id"], h["secret"]), "ed25519": (e["key"]["id"], private_pem)}
        upstream = Upstream()
        port, admin = free_port(), free_port()
        proc = subprocess.Popen(
            [bin_path, "serve", "--upstream", upstream.url, "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}", "--db", db, "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        try:
            wait_for(port, proc)
            wait_for(admin, proc)
            yield Gateway(bin_path, db, f"http://127.0.0.1:{port}", keys, upstream, f"http://127.0.0.1:{admin}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            upstream.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
