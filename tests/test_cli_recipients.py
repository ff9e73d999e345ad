"""``issue recipients`` lists every recipient of an issue, streamed; ``issue show`` says how
many problems it leaves out. On SQLite and PostgreSQL, ledgers written straight into the tables.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from click.testing import CliRunner, Result
from sqlalchemy import insert

from newsletter.cli import cli
from newsletter.models import BatchState, DeliveryStatus, IssueState
from newsletter.store import Store
from newsletter.store.tables import batches, recipients
from tests.servers.webapp import add_issue

SENT, FAILED, UNKNOWN = DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN


@pytest.fixture
def db_home(home: Path, database_url: str) -> Path:
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n", encoding="utf-8")
    return home


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> str:
    result = invoke(home, *args)
    assert result.exit_code == 0, result.output
    return result.output


def add_batch(
    store: Store, issue_id: int, seq: int, rows: list[tuple[str, DeliveryStatus, str]],
    state: BatchState = BatchState.SENT, batch_message_id: str = "",
) -> None:
    """One batch of ``rows`` (address, row status, error), written in one statement."""
    now = store.now()
    with store.engine.begin() as conn:
        batch_id = conn.execute(
            insert(batches).values(
                issue_id=issue_id, seq=seq, state=str(state), size=len(rows),
                idempotency_key=f"{issue_id}-{seq}", provider_batch_id=batch_message_id,
                updated_at=now,
            ).returning(batches.c.id)
        ).scalar_one()
        conn.execute(insert(recipients), [
            {"issue_id": issue_id, "batch_id": batch_id, "email": email, "list_id": "weekly",
             "status": str(status), "error": error, "updated_at": now}
            for email, status, error in rows
        ])


def add_unbatched(store: Store, issue_id: int, email: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(recipients).values(
            issue_id=issue_id, email=email, list_id="weekly",
            status=str(DeliveryStatus.SUPPRESSED), updated_at=store.now(),
        ))


def many(prefix: str, n: int, status: DeliveryStatus, error: str = "") -> list[
    tuple[str, DeliveryStatus, str]
]:
    return [(f"{prefix}{i:06d}@example.org", status, error) for i in range(n)]


@pytest.fixture
def small(store: Store) -> int:
    """Sent whole (rows left queued), one failure, one unknown, one suppressed."""
    issue_id = add_issue(store, state=IssueState.PARTIALLY_FAILED)
    add_batch(store, issue_id, 1, [
        ("ann@example.org", DeliveryStatus.QUEUED, ""),
        ("bob@example.org", FAILED, "550 no such user"),
    ], batch_message_id="batch-1@mg")
    add_batch(store, issue_id, 2, [("cy@example.org", UNKNOWN, "connection lost")],
              state=BatchState.UNKNOWN)
    add_unbatched(store, issue_id, "dee@example.org")
    return issue_id


def test_recipients_lists_everyone_with_the_status_the_ledger_means(
    db_home: Path, small: int
) -> None:
    text = ok(db_home, "issue", "recipients", str(small))
    only_problems = ok(db_home, "issue", "recipients", str(small), "--status", "failed",
                       "--status", "unknown")

    assert text.splitlines() == [
        "ann@example.org  sent  (batch 1)",
        "bob@example.org  failed  (batch 1)  550 no such user",
        "cy@example.org  unknown  (batch 2)  connection lost",
        "dee@example.org  suppressed",
    ]
    assert [line.split()[0] for line in only_problems.splitlines()] == [
        "bob@example.org", "cy@example.org"
    ]


def test_recipients_as_csv_and_as_json_lines(db_home: Path, small: int) -> None:
    as_csv = list(csv.DictReader(io.StringIO(ok(db_home, "issue", "recipients", str(small),
                                                "--csv"))))
    lines = ok(db_home, "issue", "recipients", str(small), "--json").splitlines()
    as_json = [json.loads(line) for line in lines]

    assert [(r["email"], r["status"], r["batch"], r["message_id"]) for r in as_csv] == [
        ("ann@example.org", "sent", "1", "batch-1@mg"),
        ("bob@example.org", "failed", "1", "batch-1@mg"),
        ("cy@example.org", "unknown", "2", ""),
        ("dee@example.org", "suppressed", "", ""),
    ]
    assert [(r["email"], r["status"], r["batch"], r["error"]) for r in as_json] == [
        ("ann@example.org", "sent", 1, ""),
        ("bob@example.org", "failed", 1, "550 no such user"),
        ("cy@example.org", "unknown", 2, "connection lost"),
        ("dee@example.org", "suppressed", None, ""),
    ]
    assert set(as_json[0]) == {"email", "status", "batch", "error", "message_id", "updated_at"}
    assert as_json[0]["updated_at"].startswith("20")  # ISO 8601


def test_no_recipients_unknown_issues_and_both_formats(db_home: Path, small: int) -> None:
    none = invoke(db_home, "issue", "recipients", str(small), "--status", "clicked")
    missing = invoke(db_home, "issue", "recipients", "9999", "--csv")
    both = invoke(db_home, "issue", "recipients", str(small), "--csv", "--json")

    assert (none.exit_code, none.stdout) == (0, "")
    assert f"Issue {small} has no recipients with status clicked." in none.stderr
    assert (missing.exit_code, missing.output) == (1, "Error: no issue 9999\n")
    assert both.exit_code == 2 and "give --json or --csv, not both" in both.output


ROWS = 20_000


def test_twenty_thousand_rows_come_out_whole(store: Store, db_home: Path) -> None:
    issue_id = add_issue(store)
    add_batch(store, issue_id, 1, many("sent", ROWS - 500, DeliveryStatus.QUEUED))
    add_batch(store, issue_id, 2, many("lost", 500, UNKNOWN, "timeout"), BatchState.UNKNOWN)

    rows = list(csv.DictReader(io.StringIO(ok(db_home, "issue", "recipients", str(issue_id),
                                              "--csv"))))
    unknown = ok(db_home, "issue", "recipients", str(issue_id), "--json", "--status", "unknown")

    assert len(rows) == ROWS
    assert len({r["email"] for r in rows}) == ROWS
    assert {r["status"] for r in rows} == {"sent", "unknown"}
    assert len(unknown.splitlines()) == 500
    assert all(json.loads(line)["status"] == "unknown" for line in unknown.splitlines())


def test_show_says_how_many_problems_it_leaves_out_and_spreads_the_rest(
    store: Store, db_home: Path
) -> None:
    """The run that prompted this: 1,910 unknown in two batches, and 50 shown from one."""
    issue_id = add_issue(store, state=IssueState.PARTIALLY_FAILED)
    add_batch(store, issue_id, 1, many("first", 1_000, UNKNOWN, "timeout"), BatchState.UNKNOWN)
    add_batch(store, issue_id, 2, many("second", 910, UNKNOWN, "timeout"), BatchState.UNKNOWN)
    add_batch(store, issue_id, 3, many("ok", 100, SENT) + many("bad", 5, FAILED, "550"))

    text = ok(db_home, "issue", "show", str(issue_id))
    shown = json.loads(ok(db_home, "issue", "show", str(issue_id), "--json"))

    assert "  Not delivered: 5 failed in 1 batch, 1910 unknown in 2 batches\n" in text
    listed = [line for line in text.splitlines() if "@example.org" in line]
    assert len(listed) == 50
    batches_listed = [line.split("(batch ")[1].split(")")[0] for line in listed]
    assert batches_listed.count("3") == 5  # every failure, from the batch with few
    assert abs(batches_listed.count("1") - batches_listed.count("2")) <= 1
    assert (f"    … and 1865 more; all of them: `newsletter issue recipients {issue_id} "
            "--status failed --status unknown`\n") in text
    assert shown["problems_not_shown"] == 1_865
    assert shown["problem_counts"] == {
        "failed": {"recipients": 5, "batches": 1}, "unknown": {"recipients": 1910, "batches": 2}
    }
    assert len(shown["problems"]) == 50


def test_show_lists_every_problem_when_there_are_few(db_home: Path, small: int) -> None:
    text = ok(db_home, "issue", "show", str(small))

    assert "  Not delivered: 1 failed in 1 batch, 1 unknown in 1 batch\n" in text
    assert "    bob@example.org  failed  (batch 1) 550 no such user\n" in text
    assert "more; all of them" not in text
    assert f"`newsletter issue retry {small} --unknown`" in text


# -- streaming, seen from PostgreSQL ---------------------------------------------------------


@pytest.fixture
def postgres_home(home: Path, database_url: str) -> Iterator[tuple[Path, str]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("server-side cursors are PostgreSQL's")
    name = f"recipients-stream-{time.monotonic_ns()}"
    url = sqlalchemy.make_url(database_url).update_query_dict({"application_name": name})
    rendered = url.render_as_string(hide_password=False)
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={rendered}\n", encoding="utf-8")
    yield home, name


def backend_of(store: Store, application: str) -> tuple[str, str] | None:
    with store.engine.connect() as conn:
        row = conn.execute(sqlalchemy.text(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = :name"
        ), {"name": application}).first()
    return None if row is None else (str(row.state), str(row.query))


def test_the_list_is_fetched_from_a_cursor_while_it_is_written(
    store: Store, postgres_home: tuple[Path, str]
) -> None:
    """A reader that stops reading blocks the command mid-list: its connection is then
    waiting between two FETCHes of a server-side cursor, not holding every row it read."""
    home, application = postgres_home
    issue_id = add_issue(store)
    add_batch(store, issue_id, 1, many("reader", ROWS, SENT))
    command = [sys.executable, "-m", "newsletter", "--home", str(home), "issue", "recipients",
               str(issue_id), "--csv"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"email,status,batch,error,message_id,updated_at\n"
        seen = None
        deadline = time.monotonic() + 60
        # Until the child's query has run and its connection waits: on a FETCH while the child
        # waits on the full pipe, or, if it read every row at once, on the SELECT itself.
        while time.monotonic() < deadline:
            seen = backend_of(store, application)
            if seen is not None and seen[0] == "idle in transaction" and (
                seen[1].startswith("FETCH")
                or (seen[1].startswith("SELECT") and "FROM recipients" in seen[1])
            ):
                break
            time.sleep(0.05)
        rest = child.stdout.read()
        assert child.wait(60) == 0, child.stderr.read() if child.stderr else ""

    assert seen is not None and seen[0] == "idle in transaction", seen
    assert seen[1].startswith("FETCH FORWARD"), seen
    assert rest.count(b"\n") == ROWS


def test_a_reader_that_stops_early_ends_the_list_without_a_traceback(
    store: Store, db_home: Path
) -> None:
    """``newsletter issue recipients 3 | head``: the pipe closes while rows are written."""
    if not store.engine.url.drivername.startswith("sqlite"):
        pytest.skip("the same on PostgreSQL; SQLite is enough")
    issue_id = add_issue(store)
    add_batch(store, issue_id, 1, many("reader", ROWS, SENT))
    command = [sys.executable, "-m", "newsletter", "--home", str(db_home), "issue",
               "recipients", str(issue_id)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()
        child.stdout.close()
        status = child.wait(60)
        errors = child.stderr.read()

    assert first == b"reader000000@example.org  sent  (batch 1)\n"
    assert (status, errors) == (1, b"")
