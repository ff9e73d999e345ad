"""A reader's events, as ``subscribers show`` and ``forget`` find them: exactly theirs, and
found through the events' indexes rather than by reading every event of the publication.
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, text

from newsletter.store import Store, reader_rows
from newsletter.store.tables import events

AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
READER = "ann@example.org"
OTHERS = 20_000  # enough for PostgreSQL's planner to prefer an index to reading the table


def event(number: int, email: str, message_id: str) -> dict[str, object]:
    return {"provider": "mailgun", "event_id": f"ev-{number}", "type": "delivered",
            "email": email, "provider_message_id": message_id, "issue_id": 1, "at": AT,
            "detail": ""}


def seed(store: Store) -> None:
    """Other readers' events, some without an address; then Ann's: two with her address,
    one without an address naming her message (bare, as providers send it), one without an
    address naming another's message, and one with another address naming her message."""
    rows = [event(n, f"reader{n}@example.org" if n % 10 else "", f"<m{n}@mg.example>")
            for n in range(OTHERS)]
    rows += [
        event(OTHERS + 1, READER, "<ann-1@mg.example>"),
        event(OTHERS + 2, READER, ""),
        event(OTHERS + 3, "", "ann-1@mg.example"),
        event(OTHERS + 4, "", "<m7@mg.example>"),
        event(OTHERS + 5, "bo@example.org", "<ann-1@mg.example>"),
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(events), rows)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE events")


def plan(conn: Connection) -> str:
    query = reader_rows.events_of(READER, ["<ann-1@mg.example>"])
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in conn.execute(text(explain + sql)))


def test_a_readers_events_are_theirs_and_found_through_the_indexes(store: Store) -> None:
    seed(store)
    with store.engine.connect() as conn:
        found = reader_rows.event_rows(conn, READER, ["<ann-1@mg.example>"])
        shown = plan(conn)

    assert sorted(row.event_id for row in found) == [
        f"ev-{OTHERS + 1}", f"ev-{OTHERS + 2}", f"ev-{OTHERS + 3}"]
    if store.engine.dialect.name == "sqlite":
        # Each term a search of the index, the bare events by address and message id both.
        assert "SCAN" not in shown, shown
        assert "USING INDEX ix_events_email_message (email=?)" in shown, shown
        assert "USING INDEX ix_events_email_message (email=? AND provider_message_id=?)" in shown
    else:
        assert "Seq Scan on events" not in shown, shown
        assert "ix_events_email_message" in shown, shown
