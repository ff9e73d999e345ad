"""The public web app served by a real uvicorn on 127.0.0.1, in a thread, for HTTP tests.

    with WebApp(create_app(settings, store, site=SITE)) as web:
        response = web.session.post(web.url("/unsubscribe/..."), data=..., allow_redirects=False)

The socket is bound before the server starts (port 0: the OS picks a free one), and the
context manager returns once uvicorn has finished starting, signalled by an event.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from select import select as wait_for_sockets
from types import TracebackType
from typing import Any

import requests
import uvicorn
from sqlalchemy import insert, select
from starlette.types import ASGIApp

from newsletter.models import DeliveryStatus, IssueState
from newsletter.store import Store, suppressions
from newsletter.store.suppressions import Suppression
from newsletter.store.tables import events, issues, recipients
from newsletter.web import Site

#: The publication the web tests speak for.
SITE = Site(
    name="The Example Weekly",
    base_url="https://news.example.org",
    list_titles={"weekly": "Weekly digest", "daily": "Daily notes"},
)


class _Server(uvicorn.Server):
    """Sets ``ready`` once startup has finished (or failed, so the caller never hangs)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class WebApp:
    """Runs ``app`` until the ``with`` block ends; ``session`` ignores proxy settings."""

    def __init__(self, app: ASGIApp, *, lifespan: str = "off") -> None:
        """``lifespan="on"`` runs the app's start and stop (the readers' message sender)."""
        config = uvicorn.Config(
            app, lifespan=lifespan, log_level="warning", ws="none", http="h11", access_log=False
        )
        self._server = _Server(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self.session = requests.Session()
        self.session.trust_env = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> WebApp:
        self._thread.start()
        if not self._server.ready.wait(10) or not self._server.started:
            self.close()
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def raw_request(
        self, method: str, target: str, headers: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] = b"",
    ) -> RawResponse:
        """One request on a connection of its own, sent exactly as given (``target`` is not
        re-quoted), read like a careful client: a server may answer (a 413) and close before
        the body is all sent, so sending stops when the answer arrives or the peer is gone,
        and what it answered is read all the same. ``body`` as an iterable goes chunked."""
        chunked = not isinstance(body, bytes)
        fields = {"Host": f"127.0.0.1:{self.port}", "Connection": "close", **(headers or {})}
        if chunked:
            fields["Transfer-Encoding"] = "chunked"
        else:
            fields.setdefault("Content-Length", str(len(body)))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        pieces = _chunked(body) if not isinstance(body, bytes) else _pieces(body)
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as conn:
            conn.sendall(head.encode("latin-1") + b"\r\n")
            for piece in pieces:
                if wait_for_sockets([conn], [], [], 0)[0]:
                    break  # answered already: the rest would not be read
                try:
                    conn.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break
            return RawResponse.parse(_read_all(conn))

    def close(self) -> None:
        self.session.close()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()


class RawResponse:
    """The status and the raw bytes after the head of an HTTP/1.1 answer."""

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status_code = status
        self.head = head
        self.body = body

    @classmethod
    def parse(cls, data: bytes) -> RawResponse:
        head, _, body = data.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[1].isdigit():
            raise ConnectionError(f"no HTTP answer: {data[:200]!r}")
        return cls(int(status_line[1]), head, body)


def _pieces(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def _chunked(body: Iterable[bytes]) -> Iterator[bytes]:
    for piece in body:
        if piece:
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def _read_all(conn: socket.socket) -> bytes:
    """Everything until the server closes; a reset after its answer keeps what came before."""
    data = bytearray()
    while True:
        try:
            piece = conn.recv(64 * 1024)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    return bytes(data)


# -- rows the web tests read and write ------------------------------------------------------


def add_issue(
    store: Store, *, list_id: str = "weekly", state: IssueState = IssueState.SENT,
    subject: str = "An issue", web_html: str = "", started_at: datetime | None = None,
) -> int:
    now = store.now()
    with store.engine.begin() as conn:
        issue_id = conn.execute(
            insert(issues).values(
                list_id=list_id, kind="digest", state=str(state), subject=subject,
                created_at=now, updated_at=now, started_at=started_at, web_html=web_html,
            ).returning(issues.c.id)
        ).scalar_one()
    return int(issue_id)


def add_recipient(
    store: Store, issue_id: int, email: str, *, message_id: str = "", list_id: str = "weekly",
    status: DeliveryStatus = DeliveryStatus.SENT,
) -> int:
    with store.engine.begin() as conn:
        recipient_id = conn.execute(
            insert(recipients).values(
                issue_id=issue_id, email=email, list_id=list_id, status=str(status),
                provider_message_id=message_id, updated_at=store.now(),
            ).returning(recipients.c.id)
        ).scalar_one()
    return int(recipient_id)


def recipient(store: Store, recipient_id: int) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(recipients).where(recipients.c.id == recipient_id)).one()
    return dict(row._mapping)


def suppression_rows(store: Store) -> list[Suppression]:
    with store.engine.connect() as conn:
        return list(suppressions.iter_all(conn))


def event_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(events).order_by(events.c.id)).all()
    return [dict(row._mapping) for row in rows]


def basic_auth(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


PUBLICATION_TOML = """\
[publication]
name = "The Example Weekly"
base_url = "https://news.example.org"
from_email = "editor@example.org"
postal_address = "1 Example Street, Example Town"

[sources.notes]
type = "folder"
path = "articles"

[lists.weekly]
title = "Weekly digest"
members = "weekly.csv"
sources = "notes"
"""


def write_publication(home: Path) -> None:
    """A minimal valid ``subscribers/publication.toml`` (and the files it names) in ``home``."""
    (home / "subscribers").mkdir(parents=True, exist_ok=True)
    (home / "articles").mkdir(exist_ok=True)
    (home / "subscribers" / "publication.toml").write_text(PUBLICATION_TOML)
    (home / "subscribers" / "weekly.csv").write_text("email,name\nreader@example.org,Reader\n")


@contextmanager
def sqlite_store(folder: Path) -> Iterator[Store]:
    """A store on a SQLite file, for tests about HTTP and signatures rather than SQL dialects."""
    opened = Store.open(f"sqlite:///{folder / 'web.db'}")
    try:
        yield opened
    finally:
        opened.close()
