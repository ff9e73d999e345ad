"""A small HTTP server on 127.0.0.1 that serves canned answers and logs every request.

    with FeedServer() as server:
        server.route("/feed.xml", body=RSS, content_type="application/rss+xml", etag='"v1"')
        fetch(server.url("/feed.xml"))
        assert server.requests_for("/feed.xml")[0].headers["if-none-match"] == ...

Routes can answer conditionally (ETag / Last-Modified → 304), wait at a barrier until
other requests arrive, hold their answer for a
while (released at once when the server closes, so no test waits on a sleeping thread),
and stream a large body chunk by chunk, recording how much the client actually took.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Route:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: str = ""
    #: Seconds to wait before answering; ``FeedServer.close`` cuts the wait short.
    delay: float = 0.0
    #: The body is sent this many times in a row: a 10 MB answer without a 10 MB bytes object.
    repeat: int = 1
    #: Send ``Transfer-Encoding: chunked`` instead of a ``Content-Length``.
    chunked: bool = False
    #: Seconds between two repeats of the body: a server that trickles its answer.
    pause: float = 0.0
    #: Answer only once this many parties wait at it (``threading.Barrier``): requests that
    #: must all be in flight together. A broken or timed-out barrier answers 503.
    barrier: threading.Barrier | None = None

    @property
    def length(self) -> int:
        return len(self.body) * self.repeat


@dataclass
class RequestRecord:
    """One request as the server saw it, and how far the answer got."""

    method: str
    path: str
    headers: dict[str, str]
    #: The request line's target as sent: an absolute URL when the client used us as a proxy.
    target: str = ""
    status: int = 0
    bytes_sent: int = 0
    completed: bool = False
    finished: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = 5.0) -> RequestRecord:
        """Block until the server has finished answering (or given up on) this request."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"{self.method} {self.path} still being answered after {timeout}s")
        return self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close joins every handler thread: nothing outlives a test

    def __init__(self, owner: FeedServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive requests wait ~40 ms on delayed ACKs
    timeout = 10  # an idle keep-alive connection does not hold the server open for ever

    def setup(self) -> None:
        super().setup()
        # A small send buffer keeps the kernel from absorbing a large body the client refused.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, FeedServer.SEND_BUFFER)
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        self.server.owner._closed(self.connection)
        with contextlib.suppress(OSError):  # the client hung up first: nothing left to flush
            super().finish()

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``FeedServer.requests`` instead of stderr."""

    def _answer(self, *, send_body: bool) -> None:
        path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = RequestRecord(self.command, path, headers, target=self.path)
        owner = self.server.owner
        owner._log(record)
        try:
            route = owner.routes.get(path)
            if route is not None and route.delay and owner._released.wait(route.delay):
                self.close_connection = True
                return
            if route is not None and route.barrier is not None and not _passed(route.barrier):
                self._send_simple(record, 503, b"the other requests never came")
                return
            self._respond(record, route, send_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            record.finished.set()

    def _respond(self, record: RequestRecord, route: Route | None, send_body: bool) -> None:
        if route is None:
            self._send_simple(record, 404, b"not found")
        elif _not_modified(route, record.headers):
            self._send_not_modified(record, route)
        else:
            self._send_route(record, route, send_body)

    def _send_simple(self, record: RequestRecord, status: int, body: bytes) -> None:
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        record.bytes_sent, record.completed = len(body), True

    def _send_not_modified(self, record: RequestRecord, route: Route) -> None:
        record.status = 304
        self.send_response(304)
        self._validators(route)
        self.end_headers()
        record.completed = True

    def _send_route(self, record: RequestRecord, route: Route, send_body: bool) -> None:
        record.status = route.status
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self._validators(route)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(route.length))
        self.end_headers()
        if send_body:
            self._send_body(record, route)
        record.completed = record.bytes_sent == route.length or not send_body

    def _send_body(self, record: RequestRecord, route: Route) -> None:
        for index in range(route.repeat):
            if index and route.pause and self.server.owner._released.wait(route.pause):
                return  # the server is closing: abandon the trickle
            if route.chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(route.body), route.body))
            else:
                self.wfile.write(route.body)
            record.bytes_sent += len(route.body)
        if route.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _validators(self, route: Route) -> None:
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)


def _passed(barrier: threading.Barrier) -> bool:
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        return False
    return True


def _not_modified(route: Route, headers: Mapping[str, str]) -> bool:
    if route.etag and "if-none-match" in headers:
        tags = {tag.strip() for tag in headers["if-none-match"].split(",")}
        return route.etag in tags or "*" in tags
    return bool(route.last_modified) and headers.get("if-modified-since") == route.last_modified


class FeedServer:
    """Serves ``routes`` on an ephemeral 127.0.0.1 port from a background thread."""

    SEND_BUFFER = 64 * 1024

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[RequestRecord] = []
        #: Connections accepted so far: keep-alive reuse shows as fewer than requests.
        self.connections_opened = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._released = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._serve, name="feed-server")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, body: bytes | str = b"", **options: Any) -> Route:
        """Answer ``path`` with ``body``; ``options`` are ``Route`` fields."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        route = Route(data, **options)
        self.routes[path] = route
        return route

    def requests_for(self, path: str) -> list[RequestRecord]:
        with self._lock:
            return [record for record in self.requests if record.path == path]

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: delayed answers are released and open connections are cut."""
        self._released.set()
        for route in self.routes.values():
            if route.barrier is not None:
                route.barrier.abort()  # a request still waiting answers 503 at once
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _serve(self) -> None:
        # shutdown() is noticed at the next poll; the default half second slows every teardown.
        self._server.serve_forever(poll_interval=0.02)

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            self.connections_opened += 1

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
