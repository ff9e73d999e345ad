"""``newsletter articles list / show``, and a draft's articles edited, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import insert, select

from newsletter.cli import cli
from newsletter.models import IssueKind
from newsletter.store import Store
from newsletter.store import articles as article_store
from newsletter.store import issues as issue_store
from newsletter.store.articles import Carrier
from newsletter.store.tables import articles


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


def listed(home: Path, *args: str) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(ok(home, "articles", "list", *args, "--json"))
    return data


def test_articles_are_listed_with_ids_sources_and_the_issues_carrying_them(db_home: Path) -> None:
    home = db_home
    assert ok(home, "articles", "list") == "No articles.\n"
    ok(home, "collect")
    everything = listed(home)
    ids = [int(str(a["id"])) for a in everything]
    dates = [str(a["published"]) for a in everything]
    assert len(ids) == 7 and dates == sorted(dates, reverse=True)  # newest first
    assert {a["source"] for a in everything} == {"articles"}
    assert all(a["issues"] == [] for a in everything)
    first, second = ids[-1], ids[-2]
    (issue_id,) = json.loads(
        ok(
            home,
            "issue",
            "draft",
            "weekly",
            "--article",
            str(first),
            "--article",
            str(second),
            "--json",
        )
    )["drafted"]

    carried = {a["id"]: a["issues"] for a in listed(home)}
    assert carried[second] == [{"id": issue_id, "list": "weekly", "state": "draft", "position": 2}]
    lines = ok(home, "articles", "list").splitlines()
    title = next(str(a["title"]) for a in everything if a["id"] == first)
    assert f"{first:>5}  articles         2026-11-03  {title}  [#{issue_id} weekly draft]" in lines

    unsent = [a["id"] for a in listed(home, "--unsent-to", "weekly")]
    assert unsent == [i for i in ids if i not in (first, second)]
    assert len(listed(home, "--unsent-to", "every-article")) == 7  # another list: all unsent
    assert len(listed(home, "--source", "articles", "--limit", "2")) == 2

    ok(home, "issue", "cancel", str(issue_id))  # a cancelled issue carries nothing
    assert len(listed(home, "--unsent-to", "weekly")) == 7


def test_one_article_is_shown_with_its_issues(db_home: Path) -> None:
    home = db_home
    ok(home, "collect")
    oldest = int(str(listed(home)[-1]["id"]))
    (issue_id,) = json.loads(
        ok(home, "issue", "draft", "weekly", "--article", str(oldest), "--json")
    )["drafted"]
    out = ok(home, "articles", "show", str(oldest))
    assert out.startswith(f"Article {oldest}: Harbour dredging to start in the new year\n")
    assert "  Source:    articles (" in out
    assert "  Published: 2026-11-03 08:00:00+00:00\n" in out
    assert f"  Issue {issue_id} of weekly: draft, position 1\n" in out
    data = json.loads(ok(home, "articles", "show", str(oldest), "--json"))
    assert data["issues"] == [{"id": issue_id, "list": "weekly", "state": "draft", "position": 1}]
    assert data["url"] and data["title"] == "Harbour dredging to start in the new year"


def test_unknown_articles_sources_and_lists_are_named(db_home: Path) -> None:
    home = db_home
    for args, expected in (
        (("show", "999"), "Error: no article with id 999\n"),
        (("list", "--source", "nope"), "Error: --source: no source 'nope' (sources: articles)\n"),
    ):
        result = invoke(home, "articles", *args)
        assert (result.exit_code, result.output) == (1, expected)
    result = invoke(home, "articles", "list", "--unsent-to", "nope")
    assert result.exit_code == 1 and "no list 'nope'" in result.output
    assert "weekly" in result.output and len(result.output.splitlines()) == 1


def test_a_drafts_articles_and_a_queued_time_change_on_either_database(db_home: Path) -> None:
    """The same operations as ``test_cli_editor`` on the parametrised database."""
    home = db_home
    ok(home, "collect")
    a, b, c = (int(str(x["id"])) for x in listed(home)[:3])
    (issue_id,) = json.loads(
        ok(home, "issue", "draft", "weekly", "--article", str(a), "--article", str(b), "--json")
    )["drafted"]
    ok(home, "issue", "add-article", str(issue_id), str(c), "--position", "2")
    ok(home, "issue", "move-article", str(issue_id), str(a), "--to", "3")
    ok(home, "issue", "remove-article", str(issue_id), str(b))
    order = [x["id"] for x in json.loads(ok(home, "issue", "articles", str(issue_id), "--json"))]
    assert order == [c, a]
    assert b in [x["id"] for x in listed(home, "--unsent-to", "weekly")]
    with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
        ok(home, "issue", "queue", str(issue_id), "--at", "2026-06-01 08:00")
        ok(home, "issue", "reschedule", str(issue_id), "--at", "2026-06-01 09:00")
        shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
        assert shown["send_at"] == "2026-06-01 08:00:00+00:00"  # 09:00 in London
        ok(home, "issue", "unqueue", str(issue_id))
    shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    assert shown["state"] == "draft" and shown["send_at"] is None


@pytest.mark.timeout(300)
def test_the_issues_of_very_many_articles_are_found(store: Store) -> None:
    """More ids than one statement may bind (PostgreSQL: 65,535) are asked in chunks."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {
            "source_id": "feed",
            "uid": f"u{n}",
            "title": f"T{n}",
            "first_seen_at": now,
            "updated_at": now,
        }
        for n in range(70_000)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(articles), rows)
        ids = list(conn.execute(select(articles.c.id).order_by(articles.c.id)).scalars())
        issue_id = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="Many",
            preheader="",
            intro_md="",
            article_ids=[ids[0], ids[-1]],
            at=now,
        )
    with store.engine.connect() as conn:
        found = article_store.carriers(conn, ids)
    assert len(found) == 70_000
    assert found[ids[-1]] == [Carrier(issue_id, "weekly", "draft", 1)]
    assert sum(1 for carried in found.values() if carried) == 2
