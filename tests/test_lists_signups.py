"""Sign-up files: appends under the file's lock that a crash cannot tear, and the journal
copied into a host's files once, however often it is applied or interrupted. The journal's
tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import ListError
from newsletter.lists import appending, signups
from newsletter.lists.admin import remove_address
from newsletter.lists.config import PublicationConfig, load_config
from newsletter.lists.edit import append_members
from newsletter.lists.members import MemberReader
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.store import signup_journal as journal
from newsletter.store.signup_journal import JournalKind, JournalSource

REPO = Path(__file__).resolve().parent.parent
APPENDER = [sys.executable, str(REPO / "tests" / "signup_appender.py")]
AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def rows_of(path: Path) -> list[tuple[str, str]]:
    """(email, name) of every member read from ``path``; the read must find no problem."""
    reader = MemberReader([path], dedupe=False)
    found = [(s.email, s.name) for s in reader]
    assert reader.problems == []
    return found


# -- appending --------------------------------------------------------------------------------
def test_the_first_append_creates_the_file_with_its_header(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    assert signups.append_rows(path, []) == 0
    assert not path.exists()
    assert signups.append_rows(path, [Subscriber("ann@example.org", "Ann, Jr")]) == 1
    assert path.read_text(encoding="utf-8") == 'email,name\nann@example.org,"Ann, Jr"\n'


def test_an_append_follows_the_file_its_columns_line_endings_and_last_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "signups.csv"
    path.write_bytes(b"# kept\r\ncity,email,name\r\nTruro,bo@example.org,Bo")
    signups.append_rows(path, [Subscriber("cy@example.org", "Cy")])
    assert path.read_bytes() == (
        b"# kept\r\ncity,email,name\r\nTruro,bo@example.org,Bo\r\n,cy@example.org,Cy\r\n"
    )


def test_a_file_without_a_name_column_keeps_the_address_alone(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    path.write_text("email\nbo@example.org\n", encoding="utf-8")
    signups.append_rows(path, [Subscriber("cy@example.org", "Cy")])
    assert path.read_text(encoding="utf-8") == "email\nbo@example.org\ncy@example.org\n"


def test_an_emptied_file_gets_its_header_again(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    path.write_bytes(b"")
    signups.append_rows(path, [Subscriber("cy@example.org", "Cy")])
    assert rows_of(path) == [("cy@example.org", "Cy")]


def test_a_name_no_header_can_carry_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    path.write_text("email,name\n", encoding="utf-8")
    with pytest.raises(ListError, match="email header cannot carry"):
        signups.append_rows(path, [Subscriber("a@example.org", "A"),
                                   Subscriber("b@example.org", "B\r\nBcc: x@example.org")])
    assert path.read_text(encoding="utf-8") == "email,name\n"


def test_a_file_without_a_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(ListError, match="no header row"):
        signups.append_rows(path, [Subscriber("a@example.org")])


def torn_append(path: Path, before: str, text: str, cut: int) -> None:
    """What an append killed after ``cut`` of its bytes leaves: the file and its record."""
    path.write_text(before + text[:cut], encoding="utf-8")
    record = {"offset": len(before.encode()), "text": text}
    appending.intent_path(path).write_text(json.dumps(record), encoding="utf-8")


def test_a_torn_append_is_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    before = "email,name\nann@example.org,Ann\n"
    torn_append(path, before, "bo@example.org,Bo\ncy@example.org,Cy\n", cut=24)
    signups.append_rows(path, [Subscriber("di@example.org", "Di")])
    assert rows_of(path) == [("ann@example.org", "Ann"), ("di@example.org", "Di")]
    assert not appending.intent_path(path).exists()


def test_a_torn_append_is_cut_off_before_an_edit_too(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    before = "email,name\nann@example.org,Ann\n"
    torn_append(path, before, "bo@example.org,Bo\n", cut=5)
    append_members(path, [Subscriber("di@example.org", "Di")])
    assert rows_of(path) == [("ann@example.org", "Ann"), ("di@example.org", "Di")]


def test_a_record_left_by_an_append_that_finished_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    before = "email,name\nann@example.org,Ann\n"
    torn_append(path, before, "bo@example.org,Bo\n", cut=len("bo@example.org,Bo\n"))
    assert signups.repair(path) is False
    assert rows_of(path) == [("ann@example.org", "Ann"), ("bo@example.org", "Bo")]


def test_a_file_edited_since_the_torn_append_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "signups.csv"
    torn_append(path, "email,name\nann@example.org,Ann\n", "bo@example.org,Bo\n", cut=5)
    path.write_text("email,name\nann@example.org,Ann\nzed@example.org,Zed\n", encoding="utf-8")
    assert signups.repair(path) is False
    assert rows_of(path) == [("ann@example.org", "Ann"), ("zed@example.org", "Zed")]


def batch_rows(prefix: str, number: int, batch: int) -> set[str]:
    return {f"{prefix}{number}-{row}@example.org" for row in range(batch)}


def test_sigkill_during_appends_leaves_a_valid_file_with_every_row_acknowledged(
    tmp_path: Path,
) -> None:
    """Batches of 60 rows (about 3 kB: most writes cross a page) killed at five moments;
    each restart repairs what the last one tore. The batch being written when the kill
    came may be there whole, or not at all."""
    path, batch = tmp_path / "signups.csv", 60
    promised: set[str] = set()
    in_flight: set[str] = set()
    for attempt in range(5):
        prefix = f"k{attempt}-"
        with subprocess.Popen([*APPENDER, "append", str(path), prefix, str(batch)],
                              stdout=subprocess.PIPE, cwd=REPO, env=_env()) as child:
            assert child.stdout is not None
            first = [child.stdout.readline() for _ in range(3 + attempt)]
            child.send_signal(signal.SIGKILL)
            numbers = [int(n) for n in (b"".join(first) + child.stdout.read()).split()]
            child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        assert numbers == list(range(len(numbers)))
        for number in numbers:
            promised |= batch_rows(prefix, number, batch)
        in_flight |= batch_rows(prefix, len(numbers), batch)
    signups.repair(path)
    found = [email for email, _ in rows_of(path)]
    assert len(found) == len(set(found))
    assert promised <= set(found) <= promised | in_flight


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# -- the journal ------------------------------------------------------------------------------
@pytest.fixture
def config(settings: Settings) -> PublicationConfig:
    return load_config(settings)


def join(store: Store, email: str, name: str = "", list_id: str = "weekly") -> int:
    with store.engine.begin() as conn:
        return journal.record(conn, list_id=list_id, kind=JournalKind.JOIN, email=email,
                              name=name, source=JournalSource.CONFIRM, at=AT)


def rename(store: Store, email: str, name: str, list_id: str = "weekly") -> int:
    with store.engine.begin() as conn:
        return journal.record(conn, list_id=list_id, kind=JournalKind.RENAME, email=email,
                              name=name, source=JournalSource.PREFERENCES, at=AT)


def signup_file(config: PublicationConfig) -> Path:
    path = config.signup_path("weekly")
    assert path is not None
    return path


def test_a_missing_signup_file_is_an_empty_part_of_the_list(config: PublicationConfig) -> None:
    assert not signup_file(config).exists()
    assert signup_file(config) in config.declared_member_paths("weekly")
    assert signup_file(config) not in config.member_paths("weekly")
    reader = MemberReader(config.member_paths("weekly"))
    assert reader.count().members > 0
    assert reader.problems == []


def test_joins_land_in_the_signup_file_once(config: PublicationConfig, store: Store) -> None:
    join(store, "new.reader@example.org", "New Reader")
    join(store, "zoe.angstrom@example.org", "Zoë again")  # already in weekly.csv
    last = join(store, "NEW.reader@example.org", "Twice")
    report = signups.apply_journal(config, store, "weekly")
    assert (report.joined, report.already_members, report.position) == (
        ["new.reader@example.org"], 2, last)
    assert rows_of(signup_file(config)) == [("new.reader@example.org", "New Reader")]
    again = signups.apply_journal(config, store, "weekly")
    assert (again.entries, again.position) == (0, last)
    assert signups.read_position(signups.position_path(config, "weekly")) == last


def test_a_rename_reaches_every_file_of_the_list_with_a_name_column(
    config: PublicationConfig, store: Store
) -> None:
    join(store, "new.reader@example.org", "New Reader")
    rename(store, "new.reader@example.org", "Renamed Reader")
    rename(store, "Zoe.Angstrom@example.org", "Zoë Å.")
    report = signups.apply_journal(config, store, "weekly")
    assert report.joined == ["new.reader@example.org"]
    assert len(report.renamed) == 2
    assert rows_of(signup_file(config)) == [("new.reader@example.org", "Renamed Reader")]
    weekly = dict(rows_of(config.subscribers_dir / "weekly.csv"))
    assert weekly["zoe.angstrom@example.org"] == "Zoë Å."
    # the other columns and lines are as they were
    text = (config.subscribers_dir / "weekly.csv").read_text(encoding="utf-8")
    assert "zoe.angstrom@example.org,Zoë Å.,Kellmouth\n" in text
    assert text.startswith("# Members of the \"weekly\" list.")


def test_an_admins_removal_stays_removed(config: PublicationConfig, store: Store) -> None:
    join(store, "new.reader@example.org", "New Reader")
    signups.apply_journal(config, store, "weekly")
    remove_address(config, "weekly", "new.reader@example.org")
    join(store, "later@example.org")
    report = signups.apply_journal(config, store, "weekly")
    assert report.joined == ["later@example.org"]
    assert rows_of(signup_file(config)) == [("later@example.org", "")]


def test_a_crash_between_the_append_and_the_position_adds_no_second_row(
    config: PublicationConfig, store: Store, database_url: str
) -> None:
    join(store, "first@example.org", "First")
    signups.apply_journal(config, store, "weekly")
    join(store, "second@example.org", "Second")
    last = join(store, "third@example.org", "Third")
    died = subprocess.run(
        [*APPENDER, "apply-and-die", str(config.subscribers_dir.parent), database_url, "weekly"],
        cwd=REPO, env=_env(), capture_output=True, timeout=120, check=False,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert [e for e, _ in rows_of(signup_file(config))] == [
        "first@example.org", "second@example.org", "third@example.org"]
    report = signups.apply_journal(config, store, "weekly")
    assert (report.joined, report.already_members, report.position) == ([], 2, last)
    assert [e for e, _ in rows_of(signup_file(config))] == [
        "first@example.org", "second@example.org", "third@example.org"]


def test_a_list_without_signups_skips_joins_but_takes_renames(
    config: PublicationConfig, store: Store
) -> None:
    join(store, "new.reader@example.org", list_id="every-article")
    rename(store, "jose.nunez@example.org", "José N.", list_id="every-article")
    reports = {r.list_id: r for r in signups.apply_all(config, store)}
    assert reports["every-article"].no_signup_file == 1
    assert len(reports["every-article"].renamed) == 1
    assert reports["weekly"].entries == 0
    assert not signup_file(config).exists()


def test_a_damaged_position_file_is_named(config: PublicationConfig, store: Store) -> None:
    signups.position_path(config, "weekly").write_text("twelve\n", encoding="utf-8")
    with pytest.raises(ListError, match="journal-position:1: 'twelve' is not a journal"):
        signups.apply_journal(config, store, "weekly")
