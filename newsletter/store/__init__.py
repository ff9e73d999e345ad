"""Persistence: SQLAlchemy Core over SQLite (default) or PostgreSQL, schema by migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from .db import make_engine, migrate


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """The database and the clock it stamps rows with (injectable, for tests)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

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

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Store {self.engine.url.render_as_string(hide_password=True)}>"


__all__ = ["Store", "make_engine", "migrate", "utcnow"]
