"""A loopback HTTP server for tests: real ccxt / downloader code talks to 127.0.0.1 only.

Routes map ``(METHOD, "/<original-host>/<original-path>")`` to a JSON value, raw bytes, or a
handler ``fn(query: dict, body: bytes) -> value | (status, value)``. Unknown routes answer 404
and are recorded in ``misses`` so a test can assert nothing was missed. ``fail_next`` injects
transient HTTP errors to exercise retry logic.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Handler = Callable[[dict[str, str], bytes], Any]


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.misses: list[tuple[str, str]] = []
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def fail_next(self, path: str, *statuses: int) -> None:
        """The next requests to ``path`` answer these HTTP statuses, in order."""
        with self._lock:
            self._failures.setdefault(path, []).extend(statuses)

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [q for (_, p, q) in self.log if p == path]

    def __enter__(self) -> LoopbackServer:
        outer = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.log.append((method, url.path, query))
                    pending = outer._failures.get(url.path)
                    injected = pending.pop(0) if pending else None
                if injected is not None:
                    result: Any = (injected, {"code": -1, "msg": "injected failure"})
                else:
                    target = outer.routes.get((method, url.path))
                    if target is None:
                        outer.misses.append((method, self.path))
                        result = (404, {"error": "no route"})
                    else:
                        result = target(query, body) if callable(target) else target
                status, payload = result if isinstance(result, tuple) else (200, result)
                if isinstance(payload, bytes | bytearray):
                    raw, ctype = bytes(payload), "application/octet-stream"
                elif isinstance(payload, str):
                    raw, ctype = payload.encode(), "text/plain"
                else:
                    raw, ctype = json.dumps(payload).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve("HEAD")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
