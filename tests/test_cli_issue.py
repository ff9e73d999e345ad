"""The editor's commands through click's runner, on a copy of the example publication."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from click.testing import CliRunner, Result

from newsletter.cli import cli


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> str:
    result = invoke(home, *args)
    assert result.exit_code == 0, result.output
    return result.output


def drafted(home: Path, list_id: str = "weekly") -> int:
    ok(home, "collect")
    data = json.loads(ok(home, "issue", "draft", list_id, "--json"))
    (issue_id,) = data["drafted"]
    return int(issue_id)


def test_draft_list_show_and_preview(home: Path) -> None:
    issue_id = drafted(home)
    listed = json.loads(ok(home, "issue", "list", "--json"))
    assert [(i["id"], i["state"], i["list"]) for i in listed] == [(issue_id, "draft", "weekly")]
    shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    assert shown["state"] == "draft" and len(shown["articles"]) == 7
    assert [h["to"] for h in shown["history"]] == ["draft"]
    out = ok(home, "issue", "preview", str(issue_id), "--to", "preview@example.org")
    html = (home / "var" / "preview" / f"issue-{issue_id}.html").read_text()
    text = (home / "var" / "preview" / f"issue-{issue_id}.txt").read_text()
    assert "Subject: The Kellmouth Tide" in out
    assert "%%nl:" not in html and "/unsubscribe/" in html and "/unsubscribe/" in text
    assert "Nothing to draft" in ok(home, "issue", "draft", "weekly")


def test_edit_queue_at_a_local_time_and_send(home: Path) -> None:
    issue_id = drafted(home)
    ok(home, "issue", "edit", str(issue_id), "--subject", "Storm special – “read this”")
    with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
        out = ok(home, "issue", "queue", str(issue_id), "--at", "2026-06-01 08:00")
    assert "08:00 Europe/London (UTC+01:00; 2026-06-01 07:00 UTC)" in out
    shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    assert shown["state"] == "queued" and shown["send_at"].startswith("2026-06-01 07:00")
    assert "Issue" in ok(home, "send")  # due: that date has passed
    shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    assert shown["state"] == "sent" and shown["recipients"] == {"sent": 7}
    emls = list((home / "var" / "outbox" / f"issue-{issue_id}-weekly").glob("*.eml"))
    assert len(emls) == 7


def test_a_time_that_does_not_exist_is_refused(home: Path) -> None:
    issue_id = drafted(home)
    result = invoke(home, "issue", "queue", str(issue_id), "--at", "2026-03-29 01:30")
    assert result.exit_code == 1
    assert "does not exist in Europe/London" in result.output


def test_illegal_moves_and_unknown_ids_print_errors(home: Path) -> None:
    issue_id = drafted(home)
    result = invoke(home, "issue", "resume", str(issue_id))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: issue {issue_id} is draft; only a paused issue")
    assert invoke(home, "issue", "show", "999").output == "Error: no issue 999\n"
    assert "no article with id 4242" in invoke(home, "issue", "draft", "weekly",
                                               "--article", "4242").output
    unknown_list = invoke(home, "issue", "draft", "nope")
    assert unknown_list.exit_code == 1 and "nope" in unknown_list.output
    assert "weekly" in unknown_list.output  # the known ids are named
    started = invoke(home, "issue", "retry", str(issue_id))
    assert "no failed recipients" in started.output


def test_cancel_gives_the_articles_back(home: Path) -> None:
    issue_id = drafted(home)
    ok(home, "issue", "cancel", str(issue_id))
    again = json.loads(ok(home, "issue", "draft", "weekly", "--json"))["drafted"]
    assert again and again != [issue_id]
    result = invoke(home, "issue", "queue", str(issue_id))
    assert result.exit_code == 1 and "cancelled" in result.output


def test_test_send_goes_to_the_test_address_only(home: Path) -> None:
    issue_id = drafted(home)
    out = ok(home, "issue", "test", str(issue_id), "--to", "editor@example.org")
    assert "editor@example.org: sent" in out
    folder = home / "var" / "outbox" / f"test-issue-{issue_id}-weekly"
    (eml,) = list(folder.glob("*.eml"))
    assert b"[TEST]" in eml.read_bytes()
    shown = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    assert shown["state"] == "draft" and shown["recipients"] == {}
