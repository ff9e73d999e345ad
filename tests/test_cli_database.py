"""The database failing under a command, or under a send's helper process: one line that
says what happened and what to do, and exit status 1, not a traceback."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.store import Store

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def impatient(database_url: str) -> str:
    """The same database, where a wait for a lock ends with an error after 0.2 s."""
    url = make_url(database_url)
    options = f"{url.query['options']} -clock_timeout=200"  # milliseconds
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


@contextmanager
def issues_locked(database_url: str) -> Iterator[None]:
    Store.open(database_url).close()  # migrated
    holder = create_engine(database_url)
    with holder.connect() as conn:
        conn.execute(text("LOCK TABLE issues IN ACCESS EXCLUSIVE MODE"))
        yield
        conn.rollback()
    holder.dispose()


def test_a_command_whose_lock_wait_times_out_says_what_to_do(
    home: Path, database_url: str
) -> None:
    env = {"NEWSLETTER_DATABASE_URL": impatient(database_url)}
    with issues_locked(database_url):
        result = CliRunner().invoke(cli, ["--home", str(home), "issue", "list"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database failed: canceling statement due to")
    assert "run the command again" in result.output
    assert "Traceback" not in result.output


def test_a_helper_process_that_loses_the_database_says_so_in_one_line(
    home: Path, database_url: str
) -> None:
    settings = load_settings(home, environ={"NEWSLETTER_DATABASE_URL": impatient(database_url)})
    task = pickle.dumps((settings, 1, logging.INFO))
    with issues_locked(database_url):
        helper = subprocess.run(
            [sys.executable, "-m", "newsletter.runners.helper"],
            input=task, capture_output=True, timeout=60, check=False,
        )
    errors = helper.stderr.decode()
    assert helper.returncode == 1, errors
    assert "helper of issue 1 stopped: the database failed: canceling statement" in errors
    assert "Traceback" not in errors
