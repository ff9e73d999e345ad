"""Persistence: SQLAlchemy Core over SQLite (default) or PostgreSQL, schema by migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from .db import make_engine, migrate


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """The database and the clock it stamps rows with (injectable, for tests)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._writer: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @classmethod
    def open(cls, url: str, clock: Callable[[], datetime] = utcnow) -> Store:
        engine = make_engine(url)
        migrate(engine)
        return cls(engine, clock)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        return self.clock()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction that the threads of this process take in turn on SQLite.

        SQLite lets one writer in at a time and makes the others poll, sleeping longer after
        each miss (up to 100 ms): under many small writes from many threads, some wait a
        second while others get in. Queued on a lock of the process first, the threads leave
        SQLite only the processes to arbitrate. PostgreSQL locks rows, and takes them as
        they come."""
        with self._writer, self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Store {self.engine.url.render_as_string(hide_password=True)}>"


__all__ = ["Store", "make_engine", "migrate", "utcnow"]
