"""The command group itself: every command listed, each module loaded only when used."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from newsletter.cli import COMMAND_MODULES, cli

PROBE = """
import sys
from click.testing import CliRunner
from newsletter.cli import cli
result = CliRunner().invoke(cli, ["worker", "--help"])
assert result.exit_code == 0, result.output
print(" ".join(sorted(m for m in sys.modules if m.startswith(("newsletter.web", "svix")))))
"""


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMAND_MODULES:
        assert f"  {name} " in result.output


def test_a_worker_does_not_load_the_web_app() -> None:
    # A fresh interpreter: this test process may have imported the web app already.
    found = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == ""


def test_an_unknown_command_is_an_error() -> None:
    result = CliRunner().invoke(cli, ["sned"])
    assert result.exit_code == 2
    assert "No such command 'sned'" in result.output
