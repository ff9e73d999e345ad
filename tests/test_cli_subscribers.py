"""``newsletter subscribers export|forget``: a reader's data, and forgetting it, through click's
runner on a copy of the example publication, after a real send through the outbox, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.lists import edit
from newsletter.lists.addresscache import cache_path
from newsletter.models import DeliveryStatus, WebhookEvent
from newsletter.publisher import Publisher
from newsletter.schedule.listing import ListsReader
from newsletter.store import Store, tally
from newsletter.store.events import apply_event
from newsletter.store.tables import metadata, recipients
from tests.test_send_header_safety import environment, outbox_recipients, queue_weekly

ZOE = "zoe.angstrom@example.org"
#: How the every-article list spells her address: the same reader.
ZOE_SHOUTED = "Zoe.Angstrom@Example.ORG"


@dataclass
class Sent:
    """The example publication after issue ``issue_id`` of weekly went out through the outbox,
    with webhook events about Zoë, a suppression for one list and a soft bounce."""

    settings: Settings
    env: dict[str, str]
    issue_id: int
    message_id: str

    @property
    def home(self) -> Path:
        return self.settings.home

    def file(self, name: str) -> Path:
        return self.home / "subscribers" / name

    def run(self, *args: str, given: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--home", str(self.home), *args], env=self.env,
                                  input=given)

    def store(self) -> Store:
        return Store.open(self.env["NEWSLETTER_DATABASE_URL"])


def spell_differently(home: Path) -> None:
    path = home / "subscribers" / "every-article.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(ZOE, ZOE_SHOUTED), encoding="utf-8")


@pytest.fixture
def sent(db_settings: Settings) -> Sent:
    env = environment(db_settings, "outbox", None)
    spell_differently(db_settings.home)
    issue_id = queue_weekly(db_settings, env)
    result = CliRunner().invoke(cli, ["--home", str(db_settings.home), "send"], env=env)
    assert result.exit_code == 0, result.output
    assert ZOE in outbox_recipients(db_settings.home, issue_id)
    done = Sent(db_settings, env, issue_id, "")
    done.message_id = seed_events(done)
    added = done.run("suppressions", "add", ZOE, "--list", "every-article", "--reason",
                     "unsubscribed")
    assert added.exit_code == 0, added.output
    return done


def seed_events(sent: Sent) -> str:
    """A delivery and an open with her address, a click with only the message id, and a soft
    bounce, as the webhooks apply them; returns her message id."""
    store = sent.store()
    try:
        with store.engine.begin() as conn:
            message_id = conn.execute(
                select(recipients.c.provider_message_id).where(recipients.c.email == ZOE)
            ).scalar_one()
            at = store.now()
            for kind, event_id, address in [
                (DeliveryStatus.DELIVERED, "d-1", ZOE),
                (DeliveryStatus.OPENED, "o-1", ZOE),
                (DeliveryStatus.CLICKED, "c-1", ""),
                (DeliveryStatus.BOUNCED_SOFT, f"b-1:{ZOE}", ZOE),
            ]:
                event = WebhookEvent("ses", event_id, kind, address, message_id, at, "")
                assert apply_event(conn, event, soft_bounce_limit=5, now=at)
    finally:
        store.close()
    return str(message_id)


def exported(sent: Sent, spelling: str = ZOE) -> dict[str, Any]:
    result = sent.run("subscribers", "export", spelling)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def database_rows(sent: Sent) -> dict[str, list[str]]:
    """Every row of every table, as text: to compare, and to search for the address."""
    store = sent.store()
    try:
        with store.engine.connect() as conn:
            return {
                table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
                for table in metadata.sorted_tables
            }
    finally:
        store.close()


def cache_rows(sent: Sent) -> list[str]:
    with sqlite3.connect(cache_path(sent.home / "var")) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sorted(repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))


def mentions(rows: Iterator[str] | list[str]) -> list[str]:
    return [row for row in rows if "zoe.angstrom" in row.lower()]


def files(sent: Sent) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((sent.home / "subscribers").iterdir())}


def test_export_finds_every_thing_held_under_any_spelling(sent: Sent) -> None:
    data = exported(sent, "ZOE.angstrom@EXAMPLE.org")
    assert data["address"] == ZOE
    weekly, every = sent.file("weekly.csv"), sent.file("every-article.csv")
    assert [(m["at"], m["lists"], m["row"]) for m in data["member_files"]] == [
        (f"{weekly}:4", ["weekly"], {"email": ZOE, "name": "Zoë Ångström", "city": "Kellmouth"}),
        (f"{every}:3", ["every-article"],
         {"email": ZOE_SHOUTED, "name": "Zoë Ångström", "city": "Kellmouth"}),
    ]
    [suppression] = data["suppressions"]
    assert (suppression["list"], suppression["reason"]) == ("every-article", "unsubscribed")
    [row] = data["ledger"]
    assert (row["issue"], row["list"], row["issue_state"], row["status"], row["name"]) == (
        sent.issue_id, "weekly", "sent", "clicked", "Zoë Ångström")
    assert row["provider_message_id"] == sent.message_id and row["issue_finished_at"]
    assert [(e["type"], e["address"], e["provider_message_id"]) for e in data["events"]] == [
        ("delivered", ZOE, sent.message_id), ("opened", ZOE, sent.message_id),
        ("clicked", "", sent.message_id), ("bounced-soft", ZOE, sent.message_id),
    ]
    assert data["soft_bounces"]["count"] == 1
    assert {s["normalised"] for s in data["address_cache"]} == {ZOE}
    assert data["forgotten"] is None
    # broken-example.csv, which no list reads, holds her in capitals: shown apart.
    assert [m["at"] for m in data["other_files"]] == [f"{sent.file('broken-example.csv')}:9"]


def test_forget_erases_everything_but_a_hashed_suppression(sent: Sent) -> None:
    before = files(sent)
    with_count = counts(sent)
    result = sent.run("subscribers", "forget", ZOE_SHOUTED, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(f["file"], f["lines"]) for f in report["member_files"]] == [
        (str(sent.file("weekly.csv")), [4]), (str(sent.file("every-article.csv")), [3])]
    assert report["ledger"] == {"anonymised": 1, "issues": [sent.issue_id],
                                "failed_or_unknown_now_suppressed": 0}
    assert (report["events_anonymised"], report["suppressions_removed"],
            report["soft_bounces_removed"]) == (4, 1, 1)
    assert report["kept"]["suppression"].startswith("forgotten:")

    after = files(sent)
    for name in ("weekly.csv", "every-article.csv"):  # her line gone, every other byte kept
        kept = [line for line in before[name].splitlines(keepends=True)
                if b"zoe.angstrom" not in line.lower()]
        assert after[name] == b"".join(kept)
    assert after["broken-example.csv"] == before["broken-example.csv"]  # no list reads it
    checked = sent.run("lists", "check")
    assert checked.exit_code == 0, checked.output

    assert mentions(r for rows in database_rows(sent).values() for r in rows) == []
    assert mentions(cache_rows(sent)) == []
    assert counts(sent) == with_count  # the issue's numbers stay true
    data = exported(sent)
    assert data["forgotten"]["kept_as"] == report["kept"]["suppression"]
    assert [data[k] for k in ("member_files", "suppressions", "ledger", "events")] == [[]] * 4
    assert (data["soft_bounces"], data["address_cache"]) == (None, [])


#: What the desk keeps of each list: its check, and what each of its files gave.
KEPT_FOR_THE_DESK = ["every-article.files.json", "every-article.json", "weekly.files.json",
                     "weekly.json"]


def test_forget_drops_the_lists_checks_the_desk_keeps(sent: Sent) -> None:
    """A kept check holds what was read of her (a key of her address among the members', and
    possibly her row quoted in a problem), and so does what is kept file by file (her key and
    line): every one goes, and the next view makes them again from the files without her."""
    folder = sent.home / "var" / "cache" / "lists"
    settings = load_settings(sent.home, environ=sent.env)
    store = sent.store()
    try:
        before = ListsReader(settings, store).overview()
        assert sorted(p.name for p in folder.iterdir()) == KEPT_FOR_THE_DESK

        result = sent.run("subscribers", "forget", ZOE, "--yes")
        assert result.exit_code == 0, result.output
        assert list(folder.iterdir()) == []

        after = ListsReader(settings, store).overview()
    finally:
        store.close()
    assert [m.members for m in after.lists] == [m.members - 1 for m in before.lists]
    assert sorted(p.name for p in folder.iterdir()) == KEPT_FOR_THE_DESK


def counts(sent: Sent) -> dict[str, int]:
    store = sent.store()
    try:
        with store.engine.connect() as conn:
            return tally.status_counts(conn, sent.issue_id)
    finally:
        store.close()


def test_an_old_copy_of_a_member_file_does_not_mail_a_forgotten_reader(sent: Sent) -> None:
    old_copy = sent.home / "weekly-before.csv"
    shutil.copy(sent.file("weekly.csv"), old_copy)
    forgotten = sent.run("subscribers", "forget", ZOE, "--yes")
    assert forgotten.exit_code == 0, forgotten.output
    imported = sent.run("lists", "import", "weekly", str(old_copy), "--dry-run")
    assert "new: 0, duplicate: 6, invalid: 0, suppressed: 1" in imported.output

    shutil.copy(old_copy, sent.file("weekly.csv"))  # a backup put back
    drafted = sent.run("issue", "draft", "weekly", "--article", "1", "--again")
    assert drafted.exit_code == 0, drafted.output
    again = sent.issue_id + 1
    assert sent.run("issue", "queue", str(again), "--force").exit_code == 0
    result = sent.run("send")
    assert result.exit_code == 0, result.output
    delivered = outbox_recipients(sent.home, again)
    assert len(delivered) == 6 and ZOE not in delivered
    assert mentions(r for rows in database_rows(sent).values() for r in rows) == []


def test_a_dry_run_says_what_would_go_and_changes_nothing(sent: Sent) -> None:
    before = (files(sent), database_rows(sent), cache_rows(sent))
    result = sent.run("subscribers", "forget", ZOE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "subscribers/weekly.csv: line 4 would be removed (list weekly)" in result.output
    assert f"ledger: 1 row would be made anonymous (issue {sent.issue_id})" in result.output
    assert "Dry run: nothing was changed." in result.output
    assert (files(sent), database_rows(sent), cache_rows(sent)) == before


def test_forget_asks_first_and_no_changes_nothing(sent: Sent) -> None:
    before = (files(sent), database_rows(sent))
    refused = sent.run("subscribers", "forget", ZOE, given="n\n")
    assert refused.exit_code == 1
    assert "Forget zoe.angstrom@example.org? This cannot be undone [y/N]" in refused.output
    assert "Aborted" in refused.output and "Dry run" not in refused.output
    assert (files(sent), database_rows(sent)) == before
    agreed = sent.run("subscribers", "forget", ZOE, given="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert "Forgot zoe.angstrom@example.org:" in agreed.output


def test_a_member_file_edited_meanwhile_is_not_overwritten(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = sent.file("every-article.csv")
    original = every.read_text(encoding="utf-8")
    other_editor = "late@example.org,Added meanwhile,Truro\n"
    real = edit.iter_records

    def records_while_someone_appends(lines: Any, path: Path) -> Iterator[Any]:
        for number, record in enumerate(real(lines, path)):
            if number == 2 and path == every:  # after the original was read this far
                with every.open("a", encoding="utf-8") as handle:
                    handle.write(other_editor)
            yield record

    monkeypatch.setattr(edit, "iter_records", records_while_someone_appends)
    stopped = sent.run("subscribers", "forget", ZOE, "--yes")
    assert stopped.exit_code == 1
    assert "changed by someone else while this edit was being made; nothing was written" in (
        stopped.output)
    assert "run the command again to finish" in stopped.output
    assert every.read_text(encoding="utf-8") == original + other_editor
    assert [p.name for p in every.parent.glob(".*.tmp")] == []
    assert exported(sent)["forgotten"] is not None  # she can already not be mailed

    monkeypatch.setattr(edit, "iter_records", real)
    finished = sent.run("subscribers", "forget", ZOE, "--yes")
    assert finished.exit_code == 0, finished.output
    assert every.read_text(encoding="utf-8") == original.replace(
        f"{ZOE_SHOUTED},Zoë Ångström,Kellmouth\n", "") + other_editor


def test_forget_waits_for_a_send_that_may_mail_the_address(db_settings: Settings) -> None:
    env = environment(db_settings, "outbox", None)
    issue_id = queue_weekly(db_settings, env)
    weekly = db_settings.home / "subscribers" / "weekly.csv"
    before = weekly.read_bytes()

    def forget() -> Result:
        return CliRunner().invoke(
            cli, ["--home", str(db_settings.home), "subscribers", "forget", ZOE, "--yes"], env=env)

    store = Store.open(db_settings.database_url)
    try:
        publisher = Publisher(load_settings(db_settings.home, environ=env), store)
        publisher.start(issue_id)  # sending, its audience frozen with her in it
        refused = [forget()]
        publisher.pause(issue_id)
        refused.append(forget())
        for result, state in zip(refused, ("sending", "paused"), strict=True):
            assert result.exit_code == 1
            assert f"issue {issue_id} (weekly) is {state}" in result.output
            assert "Nothing was changed" in result.output
        assert weekly.read_bytes() == before
        assert exported_from(db_settings, env)["forgotten"] is None
        publisher.cancel(issue_id)
        finished = forget()
        assert finished.exit_code == 0, finished.output
    finally:
        store.close()


def exported_from(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["--home", str(settings.home), "subscribers", "export", ZOE], env=env)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_forgotten_reader_is_added_again_only_once_the_suppression_is_lifted(
    settings: Settings,
) -> None:
    env = environment(settings, "outbox", None)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(settings.home), *args], env=env)

    assert run("subscribers", "forget", ZOE, "--yes").exit_code == 0
    refused = run("lists", "add", "weekly", ZOE_SHOUTED)
    assert refused.exit_code == 1 and "is suppressed for list 'weekly'" in refused.output
    lifted = run("suppressions", "remove", ZOE)
    assert lifted.exit_code == 0, lifted.output
    added = run("lists", "add", "weekly", ZOE)
    assert added.exit_code == 0, added.output
    assert exported_from(settings, env)["forgotten"] is None
