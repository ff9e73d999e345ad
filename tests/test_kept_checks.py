"""A list's check kept on disk (``lists.keptchecks``): made once by any process, read by
the next one and after a restart, made again when a file's bytes change, and never trusted
when it is damaged, stale or written by another format."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.lists import keptchecks
from newsletter.models import SuppressionReason
from newsletter.schedule.listing import ListsReader
from newsletter.store import Store, suppressions
from tests.conftest import REPO
from tests.test_desk_lists import BAD_ROWS, counted_checks

OVERVIEW_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from newsletter.config import load_settings
from newsletter.schedule.listing import ListsReader
from newsletter.store import Store

home, url = Path(sys.argv[1]), sys.argv[2]
store = Store.open(url)
overview = ListsReader(load_settings(home, environ={}), store).overview()
print(json.dumps(overview.as_dict(), default=str))
store.close()
"""


@pytest.fixture
def lists_home(settings: Settings) -> Settings:
    """The example publication, its weekly list with an invalid row and a repeated member."""
    with (settings.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.write(BAD_ROWS)
    return settings.with_changes(database_url=f"sqlite:///{settings.home / 'var' / 'lists.db'}")


@pytest.fixture
def store(lists_home: Settings) -> Iterator[Store]:
    opened = Store.open(lists_home.database_url)
    yield opened
    opened.close()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lists this process checks (reads the files of), in order."""
    return counted_checks(monkeypatch)


def overview(settings: Settings, store: Store) -> dict[str, Any]:
    """What a new reader (as in a process just started) shows, as the API answers it."""
    shown = ListsReader(settings, store).overview().as_dict()
    return json.loads(json.dumps(shown, default=str))


def kept_file(settings: Settings, list_id: str = "weekly") -> Path:
    return keptchecks.kept_path(settings.var_dir, list_id)


def test_a_check_made_in_another_process_is_read_not_made_again(
    lists_home: Settings, store: Store, checks: list[str]
) -> None:
    made = subprocess.run(
        [sys.executable, "-c", OVERVIEW_IN_A_PROCESS, str(lists_home.home),
         lists_home.database_url],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )
    assert kept_file(lists_home).is_file() and kept_file(lists_home, "every-article").is_file()

    shown = overview(lists_home, store)

    assert checks == []  # nothing read from the member files here
    assert shown == json.loads(made.stdout)
    weekly = next(m for m in shown["lists"] if m["id"] == "weekly")
    assert (weekly["members"], weekly["invalid"], weekly["duplicates"]) == (7, 1, 1)
    assert [p["message"] for p in weekly["problems"]][:1] == [
        "invalid address 'broken@': There must be something after the @-sign."
    ]


def test_suppressions_are_counted_against_the_members_read_back(
    lists_home: Settings, store: Store, checks: list[str]
) -> None:
    overview(lists_home, store)
    with store.engine.begin() as conn:
        suppressions.add(conn, "ZOE.ANGSTROM@example.org", SuppressionReason.MANUAL,
                         at=store.now())
        suppressions.add(conn, "nobody.here@example.org", SuppressionReason.MANUAL,
                         at=store.now())
        suppressions.add_forgotten(conn, "jose.nunez@example.org", at=store.now())

    shown = overview(lists_home, store)

    assert sorted(checks) == ["every-article", "weekly"]  # the first reader's checks only
    weekly = next(m for m in shown["lists"] if m["id"] == "weekly")
    assert (weekly["suppressed"], weekly["recipients"]) == (2, 5)


def test_a_changed_file_is_checked_again_and_kept_anew(
    lists_home: Settings, store: Store, checks: list[str]
) -> None:
    overview(lists_home, store)
    with (lists_home.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.write("new.reader@example.org,New,Truro\n")

    grown = overview(lists_home, store)
    again = overview(lists_home, store)

    assert checks[2:] == ["weekly"]
    assert grown == again
    assert next(m for m in grown["lists"] if m["id"] == "weekly")["members"] == 8


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="cut-short"),
        pytest.param(lambda text: "not json at all", id="not-json"),
        pytest.param(lambda text: text.replace('"counts":[', '"counts":["x",'), id="bad-counts"),
        pytest.param(lambda text: text.replace('"members":"', '"members":"!'), id="bad-members"),
    ],
)
def test_a_damaged_kept_check_is_logged_and_made_again(
    lists_home: Settings, store: Store, checks: list[str], damage: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = overview(lists_home, store)
    path = kept_file(lists_home)
    path.write_text(damage(path.read_text()))

    with caplog.at_level(logging.WARNING, logger="newsletter.lists.keptchecks"):
        shown = overview(lists_home, store)

    assert shown == expected
    assert checks[2:] == ["weekly"]
    assert [str(path) in r.getMessage() for r in caplog.records] == [True]
    overview(lists_home, store)  # the check made again was kept
    assert checks[2:] == ["weekly"]


@pytest.mark.parametrize("field", ["format", "check_deliverability", "digests"])
def test_a_check_made_from_something_else_is_not_used(
    lists_home: Settings, store: Store, checks: list[str], field: str
) -> None:
    overview(lists_home, store)
    path = kept_file(lists_home)
    kept = json.loads(path.read_text())
    changed = {"format": 0, "check_deliverability": True,
               "digests": [[p, "0" * 64] for p, _ in kept["key"]["digests"]]}
    kept["key"][field] = changed[field]
    kept["check"]["counts"] = [1, 1, 0, 0]  # what would show if it were used
    path.write_text(json.dumps(kept))

    shown = overview(lists_home, store)

    assert checks[2:] == ["weekly"]
    assert next(m for m in shown["lists"] if m["id"] == "weekly")["members"] == 7


def test_a_check_that_cannot_be_kept_is_logged_and_still_shown(
    lists_home: Settings, store: Store, checks: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    folder = kept_file(lists_home).parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the folder would be")

    with caplog.at_level(logging.WARNING, logger="newsletter.lists.keptchecks"):
        shown = overview(lists_home, store)

    assert next(m for m in shown["lists"] if m["id"] == "weekly")["members"] == 7
    assert any("could not keep the list's check" in r.getMessage() for r in caplog.records)
    assert not list(folder.parent.glob(".*.tmp"))
