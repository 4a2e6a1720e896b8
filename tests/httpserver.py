"""A real HTTP server on 127.0.0.1 for tests of ``url`` reading: files, redirects, slowness.

Routes map a path to a :class:`Route`; every request is logged (path and headers)
so tests can see what the reader sent, e.g. ``If-None-Match``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    # Seconds to wait before answering, and between chunks of the body.
    delay: float = 0.0
    chunk_delay: float = 0.0


@dataclass
class FileServer:
    routes: dict[str, Route]
    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def serve(self, path: str, text: str | bytes, **options: Any) -> str:
        body = text.encode() if isinstance(text, str) else text
        self.routes[path] = Route(body=body, **options)
        return self.url(path)


@contextmanager
def file_server(routes: dict[str, Route] | None = None) -> Iterator[FileServer]:
    server_state = FileServer(routes=dict(routes or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append((self.path, dict(self.headers)))
            route = server_state.routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.delay:
                time.sleep(route.delay)
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            if route.etag:
                self.send_header("ETag", route.etag)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            try:
                if route.chunk_delay:
                    for start in range(0, len(route.body), 16):
                        self.wfile.write(route.body[start : start + 16])
                        self.wfile.flush()
                        time.sleep(route.chunk_delay)
                else:
                    self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the reader gave up (timeouts, size limits): expected in those tests

        def log_message(self, *args: Any) -> None:
            pass

    with running(Handler) as port:
        server_state.port = port
        yield server_state


@contextmanager
def running(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on a free loopback port in a background thread; yield the port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
