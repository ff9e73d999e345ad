"""Test sends through the outbox are files whose names never start with a dash (a name like
``-0000001-….eml`` reads as an option to ``ls``, ``rm`` or ``grep``)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli


def _ok(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_test_send_files_are_named_test_and_the_address(home: Path) -> None:
    _ok(home, "collect")
    (issue_id,) = json.loads(_ok(home, "issue", "draft", "weekly", "--json"))["drafted"]
    _ok(home, "issue", "test", str(issue_id), "--to", "editor@example.org",
        "--to", "second@example.org")
    folder = home / "var" / "outbox" / f"test-issue-{issue_id}-weekly"
    names = sorted(p.name for p in folder.glob("*.eml"))
    assert names == ["test-1-editor@example.org.eml", "test-2-second@example.org.eml"]
