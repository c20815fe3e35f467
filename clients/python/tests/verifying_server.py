"""A small HTTP server on 127.0.0.1 that verifies requests with this package
and answers as a Signet server does: 200 with what it verified, or 401
problem+json with Date, WWW-Authenticate and Accept-Signature."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

import signet


class VerifyingServer:
    """``skew`` is the server's clock minus the real one, in seconds.
    ``api_refusal``, if set, makes the API behind answer its own 401
    problem, after the signature verified: (its problem type, whether it
    challenges with WWW-Authenticate: Signature)."""

    def __init__(self, keys: Dict[str, signet.Key]) -> None:
        self.keys = keys
        self.skew = 0.0
        self.api_refusal: Optional[Tuple[str, bool]] = None
        self.log: List[Dict[str, Any]] = []
        self.nonces = signet.MemoryNonceStore(now=self.now)
        self.verifier = signet.Verifier(keys, nonces=self.nonces, now=self.now)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def handle_any(self) -> None:
                body = self.body()
                entry: Dict[str, Any] = {"method": self.command, "target": self.path, "body": body, "headers": dict(self.headers.items())}
                server.log.append(entry)
                msg = signet.Request(self.command, self.path, list(self.headers.items()), body, scheme="http")
                try:
                    result = server.verifier.verify(msg)
                except signet.VerifyError as e:
                    entry["reason"] = e.reason.value
                    self.problem(signet.DEFAULT_PROBLEM_BASE + e.reason.value, e.reason.status, signature=True)
                    return
                entry["ok"] = True
                entry["created"] = result.created
                if server.api_refusal:
                    self.problem(server.api_refusal[0], 401, signature=server.api_refusal[1])
                    return
                self.answer(200, "application/json", json.dumps({"key_id": result.key_id, "body": body.decode("latin-1")}).encode())

            def problem(self, typ: str, status: int, signature: bool) -> None:
                headers = {"Accept-Signature": 'sig1=("@method" "@authority" "@path")'}
                if signature:
                    headers["WWW-Authenticate"] = 'Signature realm="signet"'
                body = json.dumps({"type": typ, "title": typ, "status": status}).encode()
                self.answer(status, "application/problem+json", body, headers)

            def answer(self, status: int, ctype: str, body: bytes, headers: Optional[Dict[str, str]] = None) -> None:
                self.send_response_only(status)
                self.send_header("Date", email.utils.formatdate(server.now(), usegmt=True))
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def now(self) -> float:
        return time.time() + self.skew

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
