"""A real HTTP server on 127.0.0.1 for the zoo tests, and its pytest fixture.

``routes[path] = (body, mode)``; a path not in ``routes`` is a 404. Modes: ``ok``; ``short``
(announces the full Content-Length, sends half, closes); ``unsized-short`` (no Content-Length,
half the body, close); ``stall`` (headers, then nothing); ``drip`` (one byte every 0.3 s);
``slow`` (the body in 8 pieces 0.1 s apart); ``redirect-ftp`` (a 302 to ftp://). Hits are
counted per path.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

PATH = "/tiny/checkpoint.pth"


class ZooServer:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path = urlsplit(self.path).path
                server.hits[path] = server.hits.get(path, 0) + 1
                if path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                body, mode = server.routes[path]
                try:
                    self._serve(body, mode)
                except OSError:  # the client gave up: expected in the stall tests
                    pass
                self.close_connection = True

            def _serve(self, body: bytes, mode: str) -> None:
                if mode == "redirect-ftp":
                    self.send_response(302)
                    self.send_header("Location", "ftp://127.0.0.1/c.pth")  # urllib would follow
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "drip-headers":  # the status line and headers, a byte at a time
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                        if server.stop.wait(0.3):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                self.send_response(200)
                if mode != "unsized-short":
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(body)
                elif mode in ("short", "unsized-short"):
                    self.wfile.write(body[:len(body) // 2])
                elif mode == "stall":
                    server.stop.wait(30)
                elif mode == "drip":
                    for byte in body:
                        if server.stop.wait(0.3):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                elif mode == "slow":
                    step = -(-len(body) // 8)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(0.1)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = PATH) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = ZooServer()
    yield srv
    srv.close()
