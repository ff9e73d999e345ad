"""A value that cannot go in a header fails its recipient alone, never the whole send.

A member's name goes in the To header, and any member column the subject names goes in
the Subject: a line break or another control character there would start a header of its
own. ``lists check`` reports such rows (``test_lists_members``); these tests send one
anyway, as happens when a file is edited after its check, or when the editor puts a column
in the subject, through the outbox and through Mailgun (the fake provider server).
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.config import Settings
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.devtools.fakeprovider.core import Fault, FaultKind
from newsletter.models import IssueState
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store

HOSTILE_NAME = "Eve Mallory\r\nBcc: everyone@attacker.example"
HOSTILE_CITY = "Truro\nX-Injected: yes"


def run(home: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], env=env)


def members_file(home: Path, rows: list[tuple[str, str, str]]) -> None:
    lines = ["email,name,city"]
    for address, name, city in rows:
        lines.append(",".join(_quoted(v) for v in (address, name, city)))
    (home / "subscribers" / "weekly.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


GOOD = [
    ("ann@example.org", "Ann Cole", "Kellmouth"),
    ("bo@example.org", "Bo Penrose", "Truro"),
    ("cy@example.org", "Cy Trelawny", "St Ives"),
]


def environment(
    settings: Settings, provider: str, server: FakeProviderServer | None
) -> dict[str, str]:
    env = {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_PROVIDER": provider,
        "NEWSLETTER_SECRET_KEY": "header-safety-test-key",
        "NEWSLETTER_PROCESSES": "1",
        "NEWSLETTER_RATE_REQUESTS": "0",
    }
    if server is not None:
        env.update(server.environment())
    return env


def queue_weekly(settings: Settings, env: dict[str, str], subject: str = "") -> int:
    from newsletter.config import load_settings

    loaded = load_settings(settings.home, environ=env)
    store = Store.open(loaded.database_url)
    try:
        publisher = Publisher(loaded, store)
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
    finally:
        store.close()
    if subject:
        edited = run(settings.home, env, "issue", "edit", str(issue_id), "--subject", subject)
        assert edited.exit_code == 0, edited.output
    queued = run(settings.home, env, "issue", "queue", str(issue_id), "--force")
    assert queued.exit_code == 0, queued.output
    return issue_id


def state_of(env: dict[str, str], issue_id: int) -> IssueState:
    store = Store.open(env["NEWSLETTER_DATABASE_URL"])
    try:
        with store.engine.connect() as conn:
            return issue_store.state_of(conn, issue_id)
    finally:
        store.close()


def shown(home: Path, env: dict[str, str], issue_id: int) -> dict[str, object]:
    result = run(home, env, "issue", "show", str(issue_id), "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def failures(home: Path, env: dict[str, str], issue_id: int) -> dict[str, str]:
    """The failed recipients ``issue show`` lists, with their reasons."""
    data = shown(home, env, issue_id)
    problems = data.get("problems")
    assert isinstance(problems, list)
    return {str(p["email"]): str(p["error"]) for p in problems if p["status"] == "failed"}


def outbox_recipients(home: Path, issue_id: int) -> dict[str, email.message.EmailMessage]:
    found = {}
    for path in (home / "var" / "outbox").glob(f"issue-{issue_id}-weekly/*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found[str(message["To"].addresses[0].addr_spec)] = message
    return found


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


def send_with_a_hostile_name(settings: Settings, env: dict[str, str]) -> int:
    """The list is checked clean, then edited (a name with CR/LF) before the send."""
    home = settings.home
    members_file(home, GOOD)
    checked = run(home, env, "lists", "check")
    assert checked.exit_code == 0, checked.output
    issue_id = queue_weekly(settings, env)
    members_file(home, [GOOD[0], ("eve@example.org", HOSTILE_NAME, "Kellmouth"), *GOOD[1:]])
    return issue_id


def test_outbox_a_hostile_name_fails_alone_and_the_issue_finishes(settings: Settings) -> None:
    env = environment(settings, "outbox", None)
    issue_id = send_with_a_hostile_name(settings, env)
    sent = run(settings.home, env, "send")
    assert sent.exit_code == 0, sent.output
    assert state_of(env, issue_id) == IssueState.PARTIALLY_FAILED
    failed = failures(settings.home, env, issue_id)
    assert list(failed) == ["eve@example.org"]
    assert "name" in failed["eve@example.org"] and "U+000D" in failed["eve@example.org"]
    delivered = outbox_recipients(settings.home, issue_id)
    assert sorted(delivered) == sorted(a for a, _, _ in GOOD)
    again = run(settings.home, env, "send")  # nothing stuck: a later run has nothing to do
    assert again.exit_code == 0, again.output
    assert state_of(env, issue_id) == IssueState.PARTIALLY_FAILED


def test_mailgun_a_hostile_name_fails_alone_and_the_rest_of_its_batch_goes(
    settings: Settings, fake: FakeProviderServer
) -> None:
    env = environment(settings, "mailgun", fake)
    issue_id = send_with_a_hostile_name(settings, env)
    sent = run(settings.home, env, "send")
    assert sent.exit_code == 0, sent.output
    assert state_of(env, issue_id) == IssueState.PARTIALLY_FAILED
    failed = failures(settings.home, env, issue_id)
    assert list(failed) == ["eve@example.org"] and "U+000D" in failed["eve@example.org"]
    copies = fake.recorder.copies("mailgun")
    assert sorted(c.recipient for c in copies) == sorted(a for a, _, _ in GOOD)


@pytest.mark.parametrize("provider", ["outbox", "mailgun"])
def test_a_column_that_breaks_only_in_the_subject_fails_that_recipient_alone(
    settings: Settings, fake: FakeProviderServer, provider: str
) -> None:
    env = environment(settings, provider, fake if provider == "mailgun" else None)
    members_file(settings.home, [GOOD[0], ("dee@example.org", "Dee Rowe", HOSTILE_CITY), *GOOD[1:]])
    issue_id = queue_weekly(settings, env, subject="News for %%nl:f_city%%")
    sent = run(settings.home, env, "send")
    assert sent.exit_code == 0, sent.output
    assert state_of(env, issue_id) == IssueState.PARTIALLY_FAILED
    failed = failures(settings.home, env, issue_id)
    assert list(failed) == ["dee@example.org"]
    assert "city" in failed["dee@example.org"] and "U+000A" in failed["dee@example.org"]
    if provider == "outbox":
        delivered = outbox_recipients(settings.home, issue_id)
        subjects = {a: str(m["Subject"]) for a, m in delivered.items()}
        assert subjects == {a: f"News for {city}" for a, _, city in GOOD}
    else:
        copies = fake.recorder.copies("mailgun")
        assert sorted(c.recipient for c in copies) == sorted(a for a, _, _ in GOOD)


def test_lists_check_names_the_row_the_field_and_the_reason(settings: Settings) -> None:
    members_file(settings.home, [GOOD[0], ("eve@example.org", HOSTILE_NAME, "Kellmouth"),
                                 ("dee@example.org", "Dee Rowe", HOSTILE_CITY)])
    checked = run(settings.home, environment(settings, "outbox", None), "lists", "check")
    assert checked.exit_code == 1
    weekly = settings.home / "subscribers" / "weekly.csv"
    assert (f"{weekly}:3: error: name holds a carriage return (U+000D), which an email header "
            "cannot carry") in checked.output
    assert f"{weekly}:5: warning: city holds a line feed (U+000A)" in checked.output
    assert "Traceback" not in checked.output


def test_a_refused_recipient_keeps_its_reason_when_the_rest_of_its_batch_is_in_doubt(
    settings: Settings, fake: FakeProviderServer
) -> None:
    """The connection dies after SendGrid took the request: the recipients in it are in
    doubt, but the one never put in it failed, for its own reason."""
    env = environment(settings, "sendgrid", fake)
    issue_id = send_with_a_hostile_name(settings, env)
    fake.faults.push("sendgrid", Fault(FaultKind.RESET, nth=1))
    sent = run(settings.home, env, "send")
    assert sent.exit_code == 0, sent.output
    statuses = {str(p["email"]): (str(p["status"]), str(p["error"]))
                for p in shown(settings.home, env, issue_id)["problems"]}  # type: ignore[union-attr]
    assert statuses.pop("eve@example.org")[0] == "failed"
    assert {status for status, _ in statuses.values()} == {"unknown"}
    assert sorted(statuses) == sorted(a for a, _, _ in GOOD)


def test_a_subject_typed_with_a_control_character_is_a_pre_send_error(
    settings: Settings,
) -> None:
    env = environment(settings, "outbox", None)
    members_file(settings.home, GOOD)
    from newsletter.config import load_settings

    store = Store.open(load_settings(settings.home, environ=env).database_url)
    try:
        publisher = Publisher(load_settings(settings.home, environ=env), store)
        publisher.collect()
        [issue_id] = publisher.draft("weekly")
    finally:
        store.close()
    edited = run(settings.home, env, "issue", "edit", str(issue_id), "--subject", "Tide\x1b[2J")
    assert edited.exit_code == 0, edited.output
    checked = run(settings.home, env, "issue", "check", str(issue_id))
    assert checked.exit_code == 1
    assert "Subject header holds a control character (U+001B)" in checked.output
    queued = run(settings.home, env, "issue", "queue", str(issue_id), "--force")
    assert queued.exit_code == 1 and state_of(env, issue_id) == IssueState.DRAFT
