"""A wrong setting, database path or outbox folder, met through the real command line: one
line naming the variable or file and what is allowed, exit status 1, no traceback, and
nothing left half-done (no issue stuck in ``sending``, no database created by accident)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli


def invoke(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], env=env or {})


def assert_one_line_error(result: Result, *expected: str) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("NEWSLETTER_DATABASE_URL", "nonsense", "must be a database URL: sqlite:///"),
        ("NEWSLETTER_DATABASE_URL", "mysql://editor:hunter2@db/news", "must be a database URL"),
        ("NEWSLETTER_HTTP_TIMEOUT", "nan", "must be a number of seconds above 0"),
        ("NEWSLETTER_HTTP_TIMEOUT", "1e400", "must be a number of seconds above 0"),
        ("NEWSLETTER_FEED_TIMEOUT", "-inf", "must be a number of seconds above 0"),
        ("NEWSLETTER_RATE_MESSAGES", "inf", "0 (no limit) or a number above 0"),
        ("NEWSLETTER_CONCURRENCY", "four", "must be a whole number from 1 to"),
        ("NEWSLETTER_LOOKBACK_DAYS", "1e9", "must be a whole number from 1 to 36500"),
    ],
)
def test_a_wrong_variable_is_one_line_naming_it(
    home: Path, name: str, value: str, allowed: str
) -> None:
    line = assert_one_line_error(invoke(home, "issue", "list", env={name: value}), name, allowed)
    assert "invalid literal" not in line and "could not convert" not in line
    assert "hunter2" not in line  # a password in a database URL is never printed


def test_a_sqlite_database_under_a_regular_file_is_refused(home: Path) -> None:
    (home / "notes.txt").write_text("not a folder\n")
    url = f"sqlite:///{home / 'notes.txt' / 'newsletter.db'}"
    result = invoke(home, "issue", "list", env={"NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, "NEWSLETTER_DATABASE_URL", f"{home / 'notes.txt'} is a file")


def test_a_sqlite_database_in_a_missing_folder_is_refused_not_created(home: Path) -> None:
    # A fresh, empty database would make the next collect mail the last week again.
    missing = home / "srv" / "newsletter"
    url = f"sqlite:///{missing / 'newsletter.db'}"
    result = invoke(home, "issue", "list", env={"NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, "NEWSLETTER_DATABASE_URL", f"{missing} does not exist")
    assert not (home / "srv").exists()


def test_the_default_database_folder_is_created(home: Path) -> None:
    result = invoke(home, "issue", "list")
    assert result.exit_code == 0, result.output
    assert (home / "var" / "newsletter.db").is_file()


def test_a_sqlite_database_that_is_a_folder_is_refused(home: Path) -> None:
    (home / "db").mkdir()
    url = f"sqlite:///{home / 'db'}"
    result = invoke(home, "issue", "list", env={"NEWSLETTER_DATABASE_URL": url})
    assert_one_line_error(result, "NEWSLETTER_DATABASE_URL", "is a folder")


def issues(home: Path, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    result = invoke(home, "issue", "list", "--json", env=env)
    assert result.exit_code == 0, result.output
    listed: list[dict[str, object]] = json.loads(result.output)
    return listed


def delivered(home: Path, issue_id: object) -> dict[str, int]:
    result = invoke(home, "issue", "show", str(issue_id), "--json")
    assert result.exit_code == 0, result.output
    counts: dict[str, int] = json.loads(result.output)["recipients"]
    return counts


def member_count(home: Path, name: str) -> int:
    lines = (home / "subscribers" / name).read_text(encoding="utf-8").splitlines()
    return len([line for line in lines if line.strip() and not line.startswith("#")]) - 1


def test_an_outbox_dir_that_is_a_file_stops_before_sending_and_a_rerun_sends_once(
    home: Path,
) -> None:
    (home / "outbox.eml").write_text("a file, not a folder\n")
    wrong = {"NEWSLETTER_OUTBOX_DIR": str(home / "outbox.eml")}
    result = invoke(home, "run", "--once", env=wrong)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: NEWSLETTER_OUTBOX_DIR={str(home / 'outbox.eml')!r}: "
        f"{home / 'outbox.eml'} is a file, not a folder; name a folder"
    )
    assert "Traceback" not in result.output
    before = issues(home)
    assert before and all(i["state"] != "sending" for i in before), before

    fixed = {"NEWSLETTER_OUTBOX_DIR": str(home / "outbox")}
    result = invoke(home, "run", "--once", env=fixed)
    assert result.exit_code == 0, result.output
    sent = issues(home)
    assert [i["id"] for i in sent] == [i["id"] for i in before]  # nothing drafted twice
    for record in sent:  # every-article's issues, and weekly's too on a Monday
        members = member_count(home, f"{record['list']}.csv")
        assert record["state"] == "sent", record
        assert delivered(home, record["id"]) == {"sent": members}
        folder = home / "outbox" / f"issue-{record['id']}-{record['list']}"
        assert len(list(folder.glob("*.eml"))) == members
    again = invoke(home, "run", "--once", env=fixed)
    assert again.exit_code == 0 and "Nothing new to send" in again.output, again.output


def test_an_outbox_folder_that_cannot_be_written_pauses_the_issue_with_the_reason(
    home: Path,
) -> None:
    # The outbox itself is a folder, but the issue's own folder in it is taken by a file:
    # found only when the first batch is written, after the issue started sending.
    assert invoke(home, "collect").exit_code == 0
    drafted = invoke(home, "issue", "draft", "weekly")
    assert drafted.exit_code == 0, drafted.output
    (issue_id,) = [i["id"] for i in issues(home) if i["list"] == "weekly"]
    assert invoke(home, "issue", "queue", str(issue_id)).exit_code == 0
    blocker = home / "var" / "outbox" / f"issue-{issue_id}-weekly"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")

    result = invoke(home, "send")
    assert "Traceback" not in result.output, result.output
    (record,) = [i for i in issues(home) if i["id"] == issue_id]
    assert record["state"] == "paused", record
    assert str(blocker) in str(record["pause_reason"]), record

    blocker.unlink()
    assert invoke(home, "issue", "resume", str(issue_id)).exit_code == 0
    result = invoke(home, "send")
    assert result.exit_code == 0, result.output
    members = member_count(home, "weekly.csv")
    assert delivered(home, issue_id) == {"sent": members}
    assert len(list(blocker.glob("*.eml"))) == members


def test_a_database_that_cannot_be_reached_is_one_line_naming_it(home: Path) -> None:
    url = "postgresql+psycopg://editor:hunter2@127.0.0.1:1/news"  # nothing listens on port 1
    result = invoke(home, "issue", "list", env={"NEWSLETTER_DATABASE_URL": url})
    line = assert_one_line_error(
        result, "NEWSLETTER_DATABASE_URL", "postgresql+psycopg://editor:***@127.0.0.1:1/news"
    )
    assert "refused" in line and "hunter2" not in line
