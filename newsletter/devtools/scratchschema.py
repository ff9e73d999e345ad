"""A PostgreSQL schema that exists only while it is used: for tests and benchmarks that must
leave the database they are given as they found it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy


@contextmanager
def scratch_schema(database_url: str, prefix: str = "scratch") -> Iterator[str]:
    """Yield ``database_url`` with its search path set to a new, empty schema; drop the schema
    and everything in it afterwards, whatever happened meanwhile."""
    url = sqlalchemy.make_url(database_url)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        options = f"{url.query.get('options', '')} -csearch_path={schema}".strip()
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
