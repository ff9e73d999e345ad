"""The fake provider's HTTP side: a keep-alive HTTP/1.1 server on the loopback interface.

All six providers answer on one port under their real paths, so a provider configured with
``<PROVIDER>_BASE_URL=http://127.0.0.1:PORT`` talks to it unchanged. ``/_fake/…`` lets
another process inject faults, read the record and reset it.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import struct
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ...config import VARIABLES, Secret
from ...errors import ConfigError
from .brevo import BrevoApi
from .core import (
    Context,
    Credentials,
    FakeApi,
    FakeRequest,
    FakeResponse,
    Fault,
    FaultBook,
    FaultKind,
    IdempotencyStore,
    Outcome,
    Pipeline,
    Recorder,
)
from .mailgun import MailgunApi
from .postmark import PostmarkApi
from .resend import ResendApi
from .sendgrid import SendGridApi
from .ses import SesApi

POLL_SECONDS = 0.02
API_CLASSES: Sequence[type[FakeApi]] = (
    MailgunApi, PostmarkApi, SendGridApi, ResendApi, SesApi, BrevoApi,
)


class FakeProviderServer:
    """Start with ``start()`` (a background thread), or as a context manager; stop with
    ``stop()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Credentials | None = None,
        details: bool = True,
        latency: tuple[float, float] | None = None,
    ) -> None:
        #: Seconds each provider request is held before its answer, drawn evenly between
        #: the two: the round trip and the provider's own work that loopback does not have.
        self.latency = latency
        self.credentials = credentials or Credentials()
        self.context = Context(self.credentials, Recorder(details), FaultBook(), IdempotencyStore())
        self.apis = {cls.name: cls(self.context) for cls in API_CLASSES}
        self.pipeline = Pipeline(self.context)
        self.stopping = threading.Event()
        #: Set by ``POST /_fake/release`` (or stopping): every held answer goes out now, and a
        #: later slow fault holds no more. Tests use it to end a hold on a condition, not a clock.
        self.released = threading.Event()
        self._httpd = _HttpServer((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> FaultBook:
        return self.context.faults

    @property
    def recorder(self) -> Recorder:
        return self.context.recorder

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProviderServer:
        # A short poll keeps stop() quick: shutdown() waits for the loop to look again.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_SECONDS,), name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.released.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        self.stopping.set()
        self.released.set()
        self._httpd.drop_connections()
        self._httpd.server_close()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.context.recorder.reset()
        self.context.faults.clear()
        self.context.idempotency.reset()

    def environment(self) -> dict[str, str]:
        """Variables that point every provider at this server with accepted credentials."""
        c = self.credentials
        env = {f"{p}_BASE_URL": self.url for p in ("MAILGUN", "POSTMARK", "SENDGRID", "RESEND",
                                                   "SES", "BREVO")}
        env.update({
            "MAILGUN_API_KEY": c.mailgun_api_key, "MAILGUN_DOMAIN": c.mailgun_domain,
            "POSTMARK_SERVER_TOKEN": c.postmark_server_token,
            "SENDGRID_API_KEY": c.sendgrid_api_key, "RESEND_API_KEY": c.resend_api_key,
            "SES_REGION": c.ses_region, "SES_ACCESS_KEY_ID": c.ses_access_key_id,
            "SES_SECRET_ACCESS_KEY": c.ses_secret_access_key, "BREVO_API_KEY": c.brevo_api_key,
        })
        return env

    def settings_values(self) -> dict[str, Any]:
        """``environment()`` as ``Settings`` keyword arguments."""
        by_name = {v.name: v for v in VARIABLES}
        return {
            by_name[k].attr: Secret(v) if by_name[k].secret else v
            for k, v in self.environment().items()
        }

    # -- requests --------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> Outcome:
        if request.path.startswith("/_fake/"):
            return Outcome(self._control(request))
        for api in self.apis.values():
            if request.method == "POST" and api.send_path(request.path):
                return self.pipeline.run(api, request)
            for method, pattern, handler in api.queries:
                if request.method == method and re.fullmatch(pattern, request.path):
                    return Outcome(getattr(api, handler)(request))
        return Outcome(FakeResponse.json(404, {"message": f"no route for {request.path}"}))

    def _control(self, request: FakeRequest) -> FakeResponse:
        route = (request.method, request.path)
        if route == ("POST", "/_fake/faults"):
            return self._push_faults(request.body)
        if route == ("GET", "/_fake/record"):
            provider = request.param("provider") or None
            summary = request.param("summary") in ("1", "true", "yes")
            data = self.recorder.summary() if summary else self.recorder.to_json(provider)
            return FakeResponse.json(200, data)
        if route == ("POST", "/_fake/release"):
            self.released.set()
            return FakeResponse.json(200, {"released": True})
        if route == ("POST", "/_fake/reset"):
            self.reset()
            return FakeResponse.json(200, {"reset": True})
        return FakeResponse.json(404, {"message": f"no control route {request.path}"})

    def _push_faults(self, body: bytes) -> FakeResponse:
        try:
            raw = json.loads(body or b"null")
            items = raw if isinstance(raw, list) else [raw]
            pushed = [(str(item["provider"]), Fault.from_json(item)) for item in items]
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            return FakeResponse.json(400, {"message": f"bad fault: {exc}"})
        unknown = [p for p, _ in pushed if p not in self.apis]
        if unknown:
            return FakeResponse.json(400, {"message": f"unknown provider {unknown[0]!r}"})
        for provider, fault in pushed:
            self.faults.push(provider, fault)
        return FakeResponse.json(201, {"faults": [f.to_json() for _, f in pushed]})


class _HttpServer(ThreadingHTTPServer):
    # Join handler threads on close, after cutting their keep-alive connections.
    daemon_threads = False
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[_Handler],
                 app: FakeProviderServer) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            for sock in self._open:
                _quietly_shutdown(sock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, Nagle's algorithm and delayed ACKs cost ~40 ms per keep-alive request.
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark makes thousands of requests."""

    def _dispatch(self) -> None:
        request = self._read_request()
        app = self.server.app
        outcome = app.handle(request)
        if app.latency is not None and not request.path.startswith("/_fake/"):
            app.stopping.wait(random.uniform(*app.latency))
        fault = outcome.fault
        if fault is not None and fault.kind is FaultKind.SLOW:
            self.server.app.released.wait(fault.delay)
        if fault is not None and fault.kind in (FaultKind.RESET, FaultKind.CLOSE):
            self._drop(reset=fault.kind is FaultKind.RESET)
            return
        self._write(outcome.response)

    def _read_request(self) -> FakeRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        return FakeRequest(self.command, url.path, parse_qs(url.query), headers, body,
                           host=headers.get("host", ""))

    def _write(self, response: FakeResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. after its timeout)

    def _drop(self, reset: bool) -> None:
        """End the connection without an answer, as a provider that crashed mid-reply."""
        self.close_connection = True
        if reset:
            # SO_LINGER with a zero timeout turns close() into a TCP RST; closing here, before
            # the server's orderly shutdown, keeps a FIN from going out first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()


def _quietly_shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may have closed it already
        sock.shutdown(socket.SHUT_RDWR)
