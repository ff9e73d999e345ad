"""A sender that kills itself: sends every due issue of a publication, as ``newsletter send``
does, and SIGKILLs its own process at the Nth time a chosen point of the send is reached.

    python tests/crash_harness.py --home HOME [--point POINT --nth N]

Settings come from HOME's ``.env`` and the environment, as for the command line. The hooks
are installed in this process only; the package is not changed. SIGKILL, not an exception
or SIGTERM, so no ``finally``, rollback or atexit handler gets to run: the database and the
provider are left exactly as a power cut would leave them. Without ``--point`` the send runs
to the end (the caller may kill it itself, e.g. while the provider holds a request).

The process ends by SIGKILL at the point; it exits 0 if the point was never reached, and 2
on bad usage.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.config import load_settings
from newsletter.delivery.engine import Engine
from newsletter.delivery.request_start import RequestStart
from newsletter.publisher import Publisher
from newsletter.store import Store, audience_reuse, ledger


class Tripwire:
    """Counts passes over one point, from all threads; the Nth pass kills the process."""

    def __init__(self, point: str, meaning: str, nth: int) -> None:
        self.point = point
        self.meaning = meaning
        self.nth = nth
        self._passes = 0
        self._lock = threading.Lock()

    def cross(self) -> None:
        with self._lock:
            self._passes += 1
            fire = self._passes == self.nth
        if fire:
            # Written unbuffered: buffered output dies with the process.
            note = f"crash harness: SIGKILL at {self.point} #{self.nth} ({self.meaning})\n"
            os.write(2, note.encode())
            os.kill(os.getpid(), signal.SIGKILL)


Installer = Callable[[Tripwire], None]


def _before(owner: Any, name: str) -> Installer:
    """Kill on entry to ``owner.name``: nothing that call would do has happened."""
    def install(wire: Tripwire) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wire.cross()
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)
    return install


def _after(owner: Any, name: str) -> Installer:
    """Kill once ``owner.name`` returned: what it did is committed."""
    def install(wire: Tripwire) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            wire.cross()
            return result

        setattr(owner, name, wrapper)
    return install


def _each_member(wire: Tripwire) -> None:
    """Kill while the audience is being frozen: at the Nth member read, mid-transaction."""
    original = Publisher.audience

    @functools.wraps(original)
    def audience(self: Publisher, *args: Any) -> Iterator[Any]:
        for member in original(self, *args):
            wire.cross()
            yield member

    Publisher.audience = audience  # type: ignore[method-assign]


@dataclass(frozen=True)
class Point:
    install: Installer
    meaning: str


POINTS: dict[str, Point] = {
    "freeze": Point(_each_member, "audience being frozen, nothing committed yet"),
    "frozen": Point(_after(Publisher, "_freeze"), "audience and batches committed"),
    "copying": Point(_after(audience_reuse, "_insert_page"),
                     "audience being copied from an earlier issue, a page written, uncommitted"),
    # A batch is claimed alone or with the outcome of the one before; either way its rows
    # are read next, before the provider is called.
    "claimed": Point(_before(Engine, "_outgoing"),
                     "batch committed as sending, provider not called"),
    "starting": Point(_after(RequestStart, "begin"),
                      "request committed as started, provider not called"),
    "sent": Point(_before(Engine, "record"), "provider answered, outcome not recorded"),
    "recording": Point(_before(ledger, "finish_batch"),
                       "outcome half-written inside its transaction"),
    "recorded": Point(_after(Engine, "record"),
                      "outcome committed, and the next batch claimed with it"),
    "unknown": Point(_before(Engine, "_unknown"), "answer lost, nothing recorded"),
    "finishing": Point(_before(Publisher, "finish"), "every batch settled, issue still sending"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="the publication folder")
    parser.add_argument("--point", choices=sorted(POINTS), help="where to SIGKILL this process")
    parser.add_argument("--nth", type=int, default=1, help="at the Nth pass over the point")
    args = parser.parse_args(argv)
    if args.nth < 1:
        parser.error("--nth counts from 1")
    return args


def send(home: Path) -> list[dict[str, Any]]:
    settings = load_settings(home)
    store = Store.open(settings.database_url)
    try:
        reports = Publisher(settings, store).send_due()
    finally:
        store.close()
    return [{"issue": r.issue_id, "state": r.final_state, "recipients": r.counts} for r in reports]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.point:
        point = POINTS[args.point]
        point.install(Tripwire(args.point, point.meaning, args.nth))
    print(json.dumps(send(args.home)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
