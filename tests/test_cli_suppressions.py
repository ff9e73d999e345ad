"""``newsletter suppressions …`` through click's runner, on a real database."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.models import SuppressionReason
from newsletter.store import Store, suppressions
from newsletter.store.events import soft_bounce_count
from newsletter.store.tables import soft_bounces

Run = Callable[..., Result]


@pytest.fixture
def run(home: Path, database_url: str) -> Run:
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home), "suppressions", *args])

    return invoke


@pytest.fixture
def seeded(database_url: str) -> Iterator[Store]:
    """Two suppressions already in the database the command line will open."""
    store = Store.open(database_url)
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    with store.engine.begin() as conn:
        suppressions.add(conn, "bounced@example.com", SuppressionReason.BOUNCED_HARD,
                         source="webhook:mailgun", detail="550 no such user", at=at)
        suppressions.add(conn, "leaver@example.com", SuppressionReason.UNSUBSCRIBED,
                         scope="weekly", source="one-click", at=at)
    yield store
    store.close()


def test_list_as_json(run: Run, seeded: Store) -> None:
    result = run("list", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["email"], r["scope"], r["reason"], r["source"]) for r in rows] == [
        ("bounced@example.com", "*", "bounced-hard", "webhook:mailgun"),
        ("leaver@example.com", "weekly", "unsubscribed", "one-click"),
    ]
    assert rows[0]["created_at"].startswith("2026-11-20T09:30:00")
    assert rows[0]["detail"] == "550 no such user"


def test_list_as_a_table_and_by_list(run: Run, seeded: Store) -> None:
    table = run("list")
    weekly = run("list", "--list", "weekly", "--json")

    assert table.exit_code == 0, table.output
    assert "bounced@example.com" in table.output and "leaver@example.com" in table.output
    assert "2026-11-20 09:30" in table.output
    assert [r["email"] for r in json.loads(weekly.output)] == ["leaver@example.com"]


def test_empty_list(run: Run) -> None:
    result = run("list")

    assert result.exit_code == 0
    assert result.output.strip() == "No suppressed addresses."


def test_add_then_add_again(run: Run, database_url: str) -> None:
    first = run("add", "Someone@Example.com", "--list", "weekly", "--note", "asked by phone")
    again = run("add", "someone@example.com", "--list", "weekly", "--reason", "complained")

    assert first.exit_code == 0, first.output
    assert first.output.strip() == "Suppressed someone@example.com for list 'weekly' (manual)."
    assert "already suppressed" in again.output
    rows = json.loads(run("list", "--json").output)
    assert [(r["email"], r["scope"], r["reason"], r["source"], r["detail"]) for r in rows] == [
        ("someone@example.com", "weekly", "manual", "cli", "asked by phone"),
    ]


def test_add_refuses_a_malformed_address(run: Run) -> None:
    result = run("add", "not-an-address")

    assert result.exit_code == 2
    assert "Invalid value for EMAIL: An email address must have an @-sign." in result.output
    assert json.loads(run("list", "--json").output) == []


def test_remove_lifts_the_suppression_and_the_soft_bounce_count(
    run: Run, seeded: Store
) -> None:
    with seeded.engine.begin() as conn:
        conn.execute(soft_bounces.insert().values(
            email="bounced@example.com", count=2, last_at=datetime(2026, 11, 20, tzinfo=UTC)))

    result = run("remove", "Bounced@Example.com")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Lifted 1 suppression of bounced@example.com."
    assert [r["email"] for r in json.loads(run("list", "--json").output)] == ["leaver@example.com"]
    with seeded.engine.connect() as conn:
        assert soft_bounce_count(conn, "bounced@example.com") == 0


def test_remove_for_one_list_and_when_nothing_matches(run: Run, seeded: Store) -> None:
    wrong_list = run("remove", "leaver@example.com", "--list", "daily")
    right_list = run("remove", "leaver@example.com", "--list", "weekly")

    assert wrong_list.exit_code == 1
    assert "leaver@example.com is not suppressed for list 'daily'" in wrong_list.output
    assert right_list.exit_code == 0


def test_export_writes_csv(run: Run, seeded: Store, tmp_path: Path) -> None:
    to_stdout = run("export")
    target = tmp_path / "suppressions.csv"
    to_file = run("export", "--list", "*", "--output", str(target))

    assert to_stdout.exit_code == 0, to_stdout.output
    rows = list(csv.DictReader(io.StringIO(to_stdout.output)))
    assert list(rows[0]) == ["email", "scope", "reason", "source", "detail", "created_at"]
    assert [(r["email"], r["reason"]) for r in rows] == [
        ("bounced@example.com", "bounced-hard"), ("leaver@example.com", "unsubscribed"),
    ]
    assert to_file.exit_code == 0
    with target.open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["email"] for r in written] == ["bounced@example.com"]
