"""Issues are numbered per list: a list's first issue is 1 whatever other lists sent, numbers
are never handed out twice, drafts made at the same time get distinct numbers (SQLite and
PostgreSQL), and the masthead shows the list's number, not the database id."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from click.testing import CliRunner
from sqlalchemy import Connection, delete, insert, select, text

from newsletter.cli import cli
from newsletter.models import IssueKind
from newsletter.store import Store, db
from newsletter.store import issues as issue_store
from newsletter.store.tables import issue_events, issues

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _draft(conn: Connection, list_id: str) -> int:
    return issue_store.create(
        conn,
        list_id=list_id,
        kind=IssueKind.DIGEST,
        subject="S",
        preheader="",
        intro_md="",
        article_ids=[],
        at=NOW,
    )


def _number(store: Store, issue_id: int) -> int | None:
    with store.engine.connect() as conn:
        return issue_store.get(conn, issue_id).number


def test_each_list_counts_its_own_issues(store: Store) -> None:
    with store.engine.begin() as conn:
        drafted = [(name, _draft(conn, name)) for name in ("daily", "weekly", "daily", "weekly")]
        drafted.append(("daily", _draft(conn, "daily")))
    assert [(name, _number(store, i)) for name, i in drafted] == [
        ("daily", 1), ("weekly", 1), ("daily", 2), ("weekly", 2), ("daily", 3),
    ]


def test_a_number_is_not_handed_out_again_after_its_issue_is_gone(store: Store) -> None:
    with store.engine.begin() as conn:
        _draft(conn, "weekly")
        second = _draft(conn, "weekly")
    with store.engine.begin() as conn:  # as an operator cleaning up by hand would
        conn.execute(delete(issue_events).where(issue_events.c.issue_id == second))
        conn.execute(delete(issues).where(issues.c.id == second))
    with store.engine.begin() as conn:
        third = _draft(conn, "weekly")
    assert _number(store, third) == 3


def _backend_pid(conn: Connection) -> int | None:
    if conn.dialect.name != "postgresql":
        return None
    return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def _waiting_on_a_lock(store: Store, pid: int) -> bool:
    with store.engine.connect() as conn:
        state = conn.execute(
            text("select wait_event_type from pg_stat_activity where pid = :pid"), {"pid": pid}
        ).scalar()
    return state == "Lock"


def test_drafts_made_at_the_same_time_get_distinct_numbers(store: Store) -> None:
    """One draft's transaction is open, holding its number, while a second is drafted; on
    PostgreSQL the test waits until the second really waits for the first."""
    second_number: list[int] = []
    errors: list[BaseException] = []
    ready, done = threading.Event(), threading.Event()
    pid: list[int | None] = []

    def draft_second() -> None:
        try:
            with store.engine.begin() as conn:
                pid.append(_backend_pid(conn))
                ready.set()
                second_number.append(_number_in(conn, _draft(conn, "weekly")))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            ready.set()
        finally:
            done.set()

    with store.engine.begin() as conn:
        first = _draft(conn, "weekly")
        first_number = _number_in(conn, first)
        worker = threading.Thread(target=draft_second)
        worker.start()
        ready.wait()
        if pid and pid[0] is not None:
            # Until the second draft waits on the first's lock, or (if it never needs to)
            # has finished: either way the first then commits.
            while not done.is_set() and not _waiting_on_a_lock(store, pid[0]):
                done.wait(0.01)
    worker.join()
    assert errors == []
    assert sorted([first_number, *second_number]) == [1, 2]


def _number_in(conn: Connection, issue_id: int) -> int:
    number = conn.execute(select(issues.c.number).where(issues.c.id == issue_id)).scalar_one()
    return int(number)


def test_many_drafts_in_parallel_are_numbered_one_to_n(store: Store) -> None:
    threads, each = 4, 5
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def draft_some() -> None:
        try:
            start.wait()
            for _ in range(each):
                with store.engine.begin() as conn:
                    _draft(conn, "weekly")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=draft_some) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with store.engine.connect() as conn:
        numbers = conn.execute(select(issues.c.number).order_by(issues.c.number)).scalars().all()
    assert numbers == list(range(1, threads * each + 1))


def test_existing_issues_are_numbered_by_the_migration(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = db.alembic_config(engine)
    command.upgrade(config, "0007")
    row = {"kind": "digest", "state": "sent", "subject": "S", "created_at": NOW,
           "updated_at": NOW}
    with engine.begin() as conn:
        for list_id in ("weekly", "daily", "weekly", "weekly", "daily"):
            conn.execute(insert(issues).values(list_id=list_id, **row))
    command.upgrade(config, "head")
    store = Store(engine)
    with engine.connect() as conn:
        found = conn.execute(select(issues.c.list_id, issues.c.number).order_by(issues.c.id))
        assert [tuple(r) for r in found] == [
            ("weekly", 1), ("daily", 1), ("weekly", 2), ("weekly", 3), ("daily", 2),
        ]
    with engine.begin() as conn:
        assert _number_in(conn, _draft(conn, "weekly")) == 4
        assert _number_in(conn, _draft(conn, "daily")) == 3
    store.close()


def _ok(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_first_digest_of_a_list_says_issue_1(home: Path) -> None:
    """Another list's issues come first in the database; the digest is still its list's 1."""
    _ok(home, "collect")
    others = json.loads(_ok(home, "issue", "draft", "every-article", "--json"))["drafted"]
    (digest,) = json.loads(_ok(home, "issue", "draft", "weekly", "--json"))["drafted"]
    assert digest > len(others)
    _ok(home, "issue", "preview", str(digest), "--to", "preview@example.org")
    html = (home / "var" / "preview" / f"issue-{digest}.html").read_text()
    txt = (home / "var" / "preview" / f"issue-{digest}.txt").read_text()
    assert "Issue 1 &nbsp;&middot;" in html or "Issue 1 \u00a0\u00b7" in html
    assert f"Issue {digest}" not in html
    assert " | Issue 1 | " in txt
    shown = json.loads(_ok(home, "issue", "show", str(digest), "--json"))
    assert (shown["id"], shown["number"]) == (digest, 1)
    assert "  Number:   1 in weekly" in _ok(home, "issue", "show", str(digest))
