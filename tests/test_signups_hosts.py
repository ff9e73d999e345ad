"""Sign-ups with real processes: two hosts sharing a database but not a ``subscribers/``
folder, admins editing the list while sign-ups are appended, and forgetting a reader who
signed up. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import insert, select

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.lists.config import load_config
from newsletter.lists.members import MemberReader
from newsletter.store import Store
from newsletter.store.tables import mail_outbox, signup_journal, signup_requests
from tests.test_send_header_safety import environment, outbox_recipients, queue_weekly

REPO = Path(__file__).resolve().parent.parent
HELPER = [sys.executable, str(REPO / "tests" / "signup_appender.py")]
TIMEOUT = 180
NELL = "nell.tremayne@example.org"
OSCAR = "oscar.pengelly@example.org"


def child_env(env: dict[str, str]) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**inherited, "PYTHONPATH": str(REPO), **env}


def newsletter(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "--home", str(home), *args],
        env=child_env(env), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )


def confirm_on(home: Path, env: dict[str, str], email: str, name: str) -> None:
    """A sign-up confirmed on the host whose publication is ``home``, in its own process."""
    done = subprocess.run(
        [*HELPER, "confirm", str(home), env["NEWSLETTER_DATABASE_URL"], "weekly", email, name],
        env=child_env({}), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"joined ['{email}']" in done.stdout


def members(home: Path, name: str) -> list[tuple[str, str]]:
    reader = MemberReader([home / "subscribers" / name], dedupe=False)
    found = [(s.email, s.name) for s in reader]
    assert reader.problems == []
    return found


def test_a_signup_confirmed_on_one_host_is_in_the_other_hosts_next_send(
    db_settings: Settings, tmp_path: Path
) -> None:
    env = environment(db_settings, "outbox", None)
    host_a = db_settings.home
    host_b = tmp_path / "host-b"
    shutil.copytree(host_a, host_b)

    confirm_on(host_a, env, NELL, "Nell Tremayne")
    assert members(host_a, "weekly-signups.csv") == [(NELL, "Nell Tremayne")]
    assert not (host_b / "subscribers" / "weekly-signups.csv").exists()

    issue_id = queue_weekly(load_settings(host_b, environ=env), env)
    sent = newsletter(host_b, env, "send")
    assert sent.returncode == 0, sent.stderr
    received = outbox_recipients(host_b, issue_id)
    assert NELL in received
    assert str(received[NELL]["To"]) == f"Nell Tremayne <{NELL}>"
    assert members(host_b, "weekly-signups.csv") == [(NELL, "Nell Tremayne")]

    # An admin on host B takes her off; a later sign-up on host A does not bring her back.
    removed = CliRunner().invoke(cli, ["--home", str(host_b), "lists", "remove", "weekly", NELL],
                                 env=env)
    assert removed.exit_code == 0, removed.output
    confirm_on(host_a, env, OSCAR, "Oscar Pengelly")
    synced = newsletter(host_b, env, "lists", "sync", "weekly")
    assert synced.returncode == 0, synced.stderr
    assert f"+ {OSCAR}" in synced.stdout
    assert members(host_b, "weekly-signups.csv") == [(OSCAR, "Oscar Pengelly")]
    assert members(host_a, "weekly-signups.csv") == [
        (NELL, "Nell Tremayne"), (OSCAR, "Oscar Pengelly")]


def signups_first(home: Path) -> None:
    """The weekly list's sign-up file is also its first members file, so ``lists add`` and
    ``lists import`` write to the very file sign-ups are appended to."""
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('members = ["weekly.csv"]',
                                 'members = ["weekly-signups.csv", "weekly.csv"]'),
                    encoding="utf-8")
    (home / "subscribers" / "weekly-signups.csv").write_text(
        "# sign-ups and hand-added members\nemail,name\nfirst@example.org,First\n",
        encoding="utf-8")


def test_admin_edits_while_signups_are_appended_lose_no_row(
    db_settings: Settings, tmp_path: Path
) -> None:
    home, env = db_settings.home, environment(db_settings, "outbox", None)
    signups_first(home)
    path, stop = home / "subscribers" / "weekly-signups.csv", tmp_path / "stop"
    (tmp_path / "incoming.csv").write_text(
        "email,name\n" + "".join(f"imported{i}@example.org,Imported {i}\n" for i in range(5)),
        encoding="utf-8")
    with subprocess.Popen([*HELPER, "append", str(path), "s", "2", str(stop)],
                          stdout=subprocess.PIPE, env=child_env({}), cwd=REPO) as appender:
        assert appender.stdout is not None
        first = appender.stdout.readline()  # it is appending
        edits = [
            newsletter(home, env, "lists", "add", "weekly", "added0@example.org", "--name", "A"),
            newsletter(home, env, "lists", "import", "weekly", str(tmp_path / "incoming.csv")),
            newsletter(home, env, "lists", "remove", "weekly", "first@example.org"),
            newsletter(home, env, "lists", "add", "weekly", "added1@example.org"),
            newsletter(home, env, "lists", "remove", "weekly", "added0@example.org"),
        ]
        acknowledged = appender.stdout.readline()  # still appending after the last edit
        stop.touch()
        rest = appender.stdout.read()
        assert appender.wait(timeout=TIMEOUT) == 0
    for edit in edits:
        assert edit.returncode == 0, edit.stdout + edit.stderr
    batches = [int(n) for n in (first + acknowledged + rest).split()]
    assert batches == list(range(len(batches)))
    appended = {f"s{n}-{row}@example.org" for n in batches for row in range(2)}
    expected = appended | {"added1@example.org"} | {f"imported{i}@example.org" for i in range(5)}
    found = [email for email, _ in members(home, "weekly-signups.csv")]
    assert len(found) == len(set(found))
    assert set(found) == expected
    assert path.read_text(encoding="utf-8").startswith("# sign-ups and hand-added members\n")


def run(home: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], env=env)


def test_forgetting_a_reader_erases_their_signups_everywhere(db_settings: Settings) -> None:
    home, env = db_settings.home, environment(db_settings, "outbox", None)
    confirm_on(home, env, NELL, "Nell Tremayne")
    store = Store.open(db_settings.database_url)
    try:
        with store.engine.begin() as conn:
            at = store.now()
            conn.execute(insert(signup_requests).values(
                list_id="weekly", email_key=NELL, email=NELL, name="Nell", nonce="",
                requested_at=at, last_sent_at=at, confirmed_at=at))
            conn.execute(insert(mail_outbox).values(
                kind="welcome", list_id="weekly", to_email=NELL.upper(), subject="Welcome",
                html="<p>Hi</p>", text="Hi", status="pending", attempts=0, queued_at=at,
                due_at=at))
        exported = run(home, env, "subscribers", "export", NELL)
        assert exported.exit_code == 0, exported.output
        held = json.loads(exported.stdout)["signups"]
        assert [(e["kind"], e["name"]) for e in held["journal"]] == [("join", "Nell Tremayne")]
        assert [r["list"] for r in held["requests"]] == ["weekly"]
        assert [(m["kind"], m["status"]) for m in held["messages"]] == [("welcome", "pending")]
        assert "nonce" not in exported.stdout and "<p>Hi</p>" not in exported.stdout
        planned = run(home, env, "subscribers", "forget", NELL, "--dry-run")
        assert planned.exit_code == 0, planned.output
        assert "sign-up journal: 1 entry would be removed" in planned.output
        forgot = run(home, env, "subscribers", "forget", NELL, "--yes")
        assert forgot.exit_code == 0, forgot.output
        for line in ["weekly-signups.csv: line 2 removed (list weekly)",
                     "sign-up journal: 1 entry removed", "sign-up requests: 1 removed",
                     "messages to them (confirmations, welcomes): 1 removed"]:
            assert line in forgot.output
        with store.engine.connect() as conn:
            for table in (signup_journal, signup_requests, mail_outbox):
                assert conn.execute(select(table)).all() == []
    finally:
        store.close()
    synced = run(home, env, "lists", "sync")
    assert synced.exit_code == 0, synced.output
    assert members(home, "weekly-signups.csv") == []
    config = load_config(db_settings)
    assert "weekly-signups.csv" in str(config.member_paths("weekly"))


def test_a_list_whose_signup_file_is_not_made_yet_checks_and_shows_clean(
    db_settings: Settings,
) -> None:
    home, env = db_settings.home, environment(db_settings, "outbox", None)
    checked = run(home, env, "lists", "check", "--json")
    assert checked.exit_code == 0, checked.output
    assert "weekly-signups.csv" not in checked.output
    shown = run(home, env, "lists", "show", "weekly")
    assert shown.exit_code == 0, shown.output
    assert "weekly-signups.csv (made by the first confirmed reader)" in shown.output
    as_json = json.loads(run(home, env, "lists", "show", "weekly", "--json").stdout)
    assert as_json["lists"][0]["signups_file"].endswith("weekly-signups.csv")
    synced = run(home, env, "lists", "sync", "--json")
    assert json.loads(synced.stdout)["weekly"]["position"] == 0
    assert not (home / "subscribers" / "weekly-signups.csv").exists()
