"""What commands print: whole values into a pipe, and each problem said once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import cli
from tests.servers.feedserver import FeedServer

LONG_ADDRESS = "harbour-master.night-shift.relief-crew@moorings.kellmouth-harbour-trust.example.org"


def test_a_table_printed_into_a_pipe_keeps_every_value_whole(home: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli, ["--home", str(home), "suppressions", "add", LONG_ADDRESS, "--reason", "unsubscribed"]
    )
    assert added.exit_code == 0, added.output
    # CliRunner's output is not a terminal, like a pipe; COLUMNS must not narrow it either.
    listed = runner.invoke(
        cli, ["--home", str(home), "suppressions", "list"], env={"COLUMNS": "40"}
    )
    assert listed.exit_code == 0, listed.output
    assert LONG_ADDRESS in listed.output
    assert "unsubscribed" in listed.output
    assert "…" not in listed.output


def failing_feed_run(home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    with FeedServer() as server:
        server.route("/harbour.xml", body=b"down for maintenance", status=503)
        with (home / "subscribers" / "publication.toml").open("a", encoding="utf-8") as toml:
            toml.write(
                f'\n[sources.harbour-feed]\ntype = "feed"\nurl = "{server.url("/harbour.xml")}"\n'
                "allow_private_network = true\n"  # the test server is on 127.0.0.1
            )
        # A real process: its log lines go where a person would see them, beside the report.
        return subprocess.run(
            [sys.executable, "-m", "newsletter", "--home", str(home), *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def assert_reported_once(done: subprocess.CompletedProcess[str]) -> None:
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed
    assert printed.count("503") == 1, printed
    assert "harbour-feed: harbour-feed" not in printed
    assert re.search(r"^  harbour-feed: ERROR http://\S+ answered HTTP 503", done.stdout, re.M)


def test_a_failing_source_is_reported_once_without_its_id_repeated(home: Path) -> None:
    done = failing_feed_run(home, "collect")
    assert_reported_once(done)
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: 1 source could not be read", done.stderr


def test_one_cycle_reports_a_failing_source_once(home: Path) -> None:
    done = failing_feed_run(home, "run", "--once")
    assert_reported_once(done)
    assert "Error" not in done.stderr, done.stderr  # the other source's issues still went out
