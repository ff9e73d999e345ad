"""A second process for the sign-up file tests.

    python tests/signup_appender.py append FILE PREFIX BATCH [STOP_FILE]
    python tests/signup_appender.py apply-and-die HOME DATABASE_URL LIST
    python tests/signup_appender.py confirm HOME DATABASE_URL LIST EMAIL NAME

``append`` appends batches of BATCH rows (``PREFIX<batch>-<row>@example.org``) to FILE
with ``append_rows``, writing the batch's number on stdout once the call has returned
(unbuffered: a SIGKILL loses nothing acknowledged). It runs until STOP_FILE exists, or
until it is killed.

``apply-and-die`` applies LIST's journal as a host would, but SIGKILLs itself when the
position is about to be written: after the batch's rows are in the files, before this
host remembers having applied them. The hook is installed in this process only.

``confirm`` is one host confirming a sign-up, as the web app does: a ``join`` entry in the
shared journal, then the journal applied to that host's own files.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from newsletter.config import load_settings
from newsletter.lists import signups
from newsletter.lists.config import load_config
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.store import signup_journal as journal
from newsletter.store.signup_journal import JournalKind, JournalSource


def append(path: Path, prefix: str, batch: int, stop: Path | None) -> None:
    number = 0
    while stop is None or not stop.exists():
        rows = [Subscriber(f"{prefix}{number}-{row}@example.org", f"Reader {number} {row}")
                for row in range(batch)]
        signups.append_rows(path, rows)
        os.write(1, f"{number}\n".encode())
        number += 1


def apply_and_die(home: Path, database_url: str, list_id: str) -> None:
    def die(path: Path, position: int) -> None:
        os.write(2, f"signup appender: SIGKILL before writing position {position}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    signups.write_position = die
    settings = load_settings(home, environ={})
    store = Store.open(database_url)
    signups.apply_journal(load_config(settings), store, list_id)


def confirm(home: Path, database_url: str, list_id: str, email: str, name: str) -> None:
    store = Store.open(database_url)
    try:
        with store.engine.begin() as conn:
            journal.record(conn, list_id=list_id, kind=JournalKind.JOIN, email=email, name=name,
                           source=JournalSource.CONFIRM, at=store.now())
        config = load_config(load_settings(home, environ={}))
        report = signups.apply_journal(config, store, list_id)
    finally:
        store.close()
    os.write(1, f"joined {report.joined} at position {report.position}\n".encode())


def main(argv: list[str]) -> None:
    if argv[0] == "append":
        stop = Path(argv[4]) if len(argv) > 4 else None
        append(Path(argv[1]), argv[2], int(argv[3]), stop)
    elif argv[0] == "apply-and-die":
        apply_and_die(Path(argv[1]), argv[2], argv[3])
    elif argv[0] == "confirm":
        confirm(Path(argv[1]), *argv[2:6])
    else:
        sys.exit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
