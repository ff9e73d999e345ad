"""A second process for the sign-up file tests.

    python tests/signup_appender.py append FILE PREFIX BATCH [STOP_FILE]
    python tests/signup_appender.py apply-and-die HOME DATABASE_URL LIST

``append`` appends batches of BATCH rows (``PREFIX<batch>-<row>@example.org``) to FILE
with ``append_rows``, writing the batch's number on stdout once the call has returned
(unbuffered: a SIGKILL loses nothing acknowledged). It runs until STOP_FILE exists, or
until it is killed.

``apply-and-die`` applies LIST's journal as a host would, but SIGKILLs itself when the
position is about to be written: after the batch's rows are in the files, before this
host remembers having applied them. The hook is installed in this process only.
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


def main(argv: list[str]) -> None:
    if argv[0] == "append":
        stop = Path(argv[4]) if len(argv) > 4 else None
        append(Path(argv[1]), argv[2], int(argv[3]), stop)
    elif argv[0] == "apply-and-die":
        apply_and_die(Path(argv[1]), argv[2], argv[3])
    else:
        sys.exit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
