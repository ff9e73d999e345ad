"""Engine creation and schema migration, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from ..errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while a send writes; NORMAL sync is still crash-safe under WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _check_sqlite_path(database: str) -> None:
    """Refuse a SQLite file whose folder is missing rather than create it: a mistyped path
    would start a fresh, empty database, and the next collect would mail the last week again.
    (The default folder, ``var/``, is created by ``load_settings``.)"""
    path = Path(database)
    where = f"NEWSLETTER_DATABASE_URL: the SQLite database {path}"
    if path.is_dir():
        raise StoreError(f"{where} is a folder; name a file in it, like {path}/newsletter.db")
    folder = path.parent
    if folder.is_dir():
        return
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise StoreError(f"{where} cannot be created: {existing} is a file, not a folder")
    raise StoreError(
        f"{where} cannot be created: the folder {folder} does not exist; create it first "
        "(only the default var/ is created for you)"
    )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get safe pragmas, in a folder that must exist."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"NEWSLETTER_DATABASE_URL is not a database URL: {exc}") from exc
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _check_sqlite_path(parsed.database)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use database {parsed.render_as_string()}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def database_failure(exc: BaseException) -> str | None:
    """What to tell of the database failing under a command (a lost connection, a lock wait
    that timed out, a full disk), or None for any other exception, which is a bug and keeps
    its traceback. Everything a command commits is consistent on its own, so running the
    command again is the remedy."""
    if not isinstance(exc, OperationalError):
        return None
    reason = _first_line(exc)
    return (
        f"the database failed: {reason}. Nothing committed is lost: run the command again "
        "(a send continues where it stopped)."
    )


#: The newest migration. Checked against the migrations folder by a test: it lets a process
#: whose database is current skip importing Alembic (a tenth of a second at each start).
HEAD_REVISION = "0016"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    """The database's migration, read from Alembic's own table (None before the first)."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:  # no such table yet
            return None


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command

        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:  # no connection: the server, the address or the login
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(
            f"NEWSLETTER_DATABASE_URL={where}: cannot open the database: {_first_line(exc)}"
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database migration failed: {_first_line(exc)}") from exc


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own reason, without SQLAlchemy's statement and "Background" link."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def dialect_insert(conn: Connection, table: Table) -> PgInsert | SqliteInsert:
    """An INSERT into ``table`` that takes ``on_conflict_do_nothing`` / ``_do_update``:
    both databases spell it the same, each through its own dialect's statement."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def delete_some(conn: Connection, table: Table, *where: ColumnElement[bool], limit: int) -> int:
    """Delete at most ``limit`` rows of ``table`` matching ``where``; how many. Housekeeping
    deletes a bounded number per transaction, so it never holds the writer for long; the
    bound goes through a sub-select of ids, since neither database limits a DELETE itself."""
    chosen = select(table.c.id).where(*where).limit(limit)
    return int(conn.execute(delete(table).where(table.c.id.in_(chosen.scalar_subquery()))).rowcount)
