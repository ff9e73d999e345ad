"""A list's check kept on disk (``lists.keptchecks``): made once by any process, read by
the next one and after a restart, made again when a file's bytes change, and never trusted
when it is damaged, stale or written by another format.

And kept file by file (``lists.keptfiles``): after a sign-up, or any change to a list's last
files, the lists page reads only those files, and shows exactly what a check of every file
shows: counts, problems (a repeat names the earlier file and line), the cap on problems
kept, suppressions."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.lists import keptchecks, keptfiles, signups
from newsletter.lists.members import MemberReader
from newsletter.models import Subscriber, SuppressionReason
from newsletter.schedule.listing import PROBLEMS_KEPT, ListsReader
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


# -- file by file (``keptfiles``): after a sign-up, only the sign-up file is read ------------
SIGNUPS = "weekly-signups.csv"


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The member files this process reads from now on, by name, in order."""
    read: list[str] = []
    real = MemberReader._read_file

    def reading(self: MemberReader, index: int, path: Path, *args: Any) -> Any:
        read.append(path.name)
        return real(self, index, path, *args)

    monkeypatch.setattr(MemberReader, "_read_file", reading)
    return read


def shown(settings: Settings, store: Store) -> dict[str, Any]:
    """The lists page's figures, as a process just started shows them."""
    return json.loads(json.dumps(ListsReader(settings, store).overview().as_dict(), default=str))


def from_scratch(settings: Settings, store: Store) -> dict[str, Any]:
    """The same with nothing kept: every file read."""
    kept = settings.var_dir / "cache" / "lists"
    saved = kept.with_name("lists-saved")
    shutil.copytree(kept, saved)
    shutil.rmtree(kept)
    try:
        return shown(settings, store)
    finally:
        shutil.rmtree(kept, ignore_errors=True)
        saved.rename(kept)


def weekly(overview: dict[str, Any]) -> dict[str, Any]:
    return next(item for item in overview["lists"] if item["id"] == "weekly")


def sign_up(settings: Settings, *rows: str) -> None:
    """Readers confirmed, appended to the weekly list's sign-up file as the journal is
    applied (``signups.append_rows``); a row that is not an address is written as an edit
    by hand would."""
    path = settings.subscribers_dir / SIGNUPS
    for row in rows:
        email, name = row.split(",")
        if "@" in email:
            signups.append_rows(path, [Subscriber(email, name)])
        else:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(f"{row}\n")


def files_kept(settings: Settings) -> Path:
    return keptfiles.files_path(keptchecks.kept_path(settings.var_dir, "weekly"))


def test_after_sign_ups_only_the_sign_up_file_is_read_and_the_page_is_the_same(
    lists_home: Settings, store: Store, files_read: list[str]
) -> None:
    shown(lists_home, store)
    assert sorted(files_read) == ["every-article.csv", "weekly.csv"]
    sign_up(lists_home, "newcomer@example.net,Newcomer", "Zoe.Angstrom@EXAMPLE.org,Zoë thrice",
            "not-an-address,Nobody")
    files_read.clear()
    page = shown(lists_home, store)
    assert files_read == [SIGNUPS]
    assert page == from_scratch(lists_home, store)
    listed = weekly(page)
    assert listed["files"] == ["subscribers/weekly.csv", f"subscribers/{SIGNUPS}"]
    repeat = [p for p in listed["problems"] if p["where"] == f"subscribers/{SIGNUPS}:3"]
    assert len(repeat) == 1 and "duplicate of weekly.csv:" in repeat[0]["message"]
    files_read.clear()
    sign_up(lists_home, "second@example.net,Second")  # a second sign-up: again that file alone
    again = shown(lists_home, store)
    assert files_read == [SIGNUPS]
    assert again == from_scratch(lists_home, store)
    assert weekly(again)["members"] == listed["members"] + 1


def test_suppressions_are_counted_against_members_of_every_file(
    lists_home: Settings, store: Store
) -> None:
    shown(lists_home, store)
    sign_up(lists_home, "newcomer@example.net,Newcomer")
    shown(lists_home, store)
    with store.engine.begin() as conn:
        for address in ("newcomer@example.net", "zoe.angstrom@example.org"):
            suppressions.add(conn, address, SuppressionReason.UNSUBSCRIBED, scope="weekly",
                             at=store.now())
    page = shown(lists_home, store)
    assert weekly(page)["suppressed"] == 2
    assert page == from_scratch(lists_home, store)


def test_problems_beyond_those_kept_are_counted_across_the_files_read_again(
    lists_home: Settings, store: Store, files_read: list[str]
) -> None:
    with (lists_home.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.writelines(f"broken{n}@,Broken,Nowhere\n" for n in range(PROBLEMS_KEPT + 5))
    before = weekly(shown(lists_home, store))
    sign_up(lists_home, "also-broken@,Broken", "newcomer@example.net,Newcomer")
    files_read.clear()
    page = shown(lists_home, store)
    assert files_read == [SIGNUPS]
    assert page == from_scratch(lists_home, store)
    after = weekly(page)
    assert len(after["problems"]) == PROBLEMS_KEPT
    assert after["errors"] == before["errors"] + 1
    assert after["more_problems"] == before["more_problems"] + 1


def test_a_change_to_an_earlier_file_reads_every_file_again(
    lists_home: Settings, store: Store, files_read: list[str]
) -> None:
    sign_up(lists_home, "newcomer@example.net,Newcomer")
    shown(lists_home, store)
    with (lists_home.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.write("newcomer@example.net,Now here first,Kellmouth\n")
    files_read.clear()
    page = shown(lists_home, store)
    assert files_read == ["weekly.csv", SIGNUPS]
    assert page == from_scratch(lists_home, store)
    where = [p["where"] for p in weekly(page)["problems"] if "duplicate" in p["message"]]
    assert f"subscribers/{SIGNUPS}:2" in where  # the sign-up now repeats weekly.csv's row


def damaged(document: dict[str, Any], how: str) -> bytes:
    first = document["files"][0]
    if how == "problems out of range":
        first["problems"] = len(document["problems"]) + 1
    elif how == "fewer lines than members":
        first["lines"] = ""
    elif how == "another format":
        document["key"]["format"] = keptfiles.FORMAT + 1
    elif how == "not base64":
        first["keys"] = "%%%"
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "how",
    ["cut short", "problems out of range", "fewer lines than members", "another format",
     "not base64"],
)
def test_kept_files_that_cannot_be_trusted_are_read_again_in_full(
    lists_home: Settings, store: Store, files_read: list[str], how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shown(lists_home, store)
    kept = files_kept(lists_home)
    written = kept.read_bytes()
    kept.write_bytes(written[:100] if how == "cut short" else damaged(json.loads(written), how))
    sign_up(lists_home, "newcomer@example.net,Newcomer")
    files_read.clear()
    with caplog.at_level(logging.WARNING, logger="newsletter.lists.keptfiles"):
        page = shown(lists_home, store)
    assert files_read == ["weekly.csv", SIGNUPS]
    assert page == from_scratch(lists_home, store)
    if how != "another format":  # another format is simply made again, as a stale one
        assert str(kept) in caplog.text
    assert json.loads(kept.read_bytes())["key"]["format"] == keptfiles.FORMAT  # made again


def test_forgetting_a_reader_drops_the_lists_kept_files(
    lists_home: Settings, store: Store
) -> None:
    shown(lists_home, store)
    assert files_kept(lists_home).is_file()
    keptchecks.forget_all(lists_home.var_dir)
    assert not files_kept(lists_home).exists()

