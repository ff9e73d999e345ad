"""What a reader's own page and a sign-up's confirmation cost as the lists grow.

The page looks the reader up in the process's index of the member files
(``lists.member_keys``: keyed hashes of the addresses, and where each row starts), then
reads the reader's rows alone; the first view after a file changes reads that file whole,
once. Confirming a sign-up asks the same index whether a file of the list holds the reader
already before appending them. This writes the example publication with a weekly list of N
rows and times, in process:

- ``readers.preferences.subscription`` for a member of it, the first view (the index is
  made) and then warm, and for a reader in the other list only;
- ``readers.signup.Signups.confirm`` of a new reader (the journal applied to this host's
  files through the index), and, for comparison, the same join applied by reading every
  file of the list, as a one-off apply (a send's, ``lists sync``) does.

Warm figures are the median of ``--repeat`` runs.

Run:  python bench/preferences.py [--members N] [--repeat R]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from newsletter.config import load_settings
from newsletter.lists.address import address_key
from newsletter.lists.config import load_config
from newsletter.lists.member_keys import MemberKeys
from newsletter.lists.signups import apply_journal
from newsletter.readers import preferences
from newsletter.readers.links import ConfirmLink
from newsletter.readers.signup import Confirmed, SignupForm, Signups
from newsletter.store import Store, signup_journal, signup_requests

REPO = Path(__file__).resolve().parent.parent
MEMBER = "reader.7777@example2777.org"
NOT_IN_WEEKLY = "nora.penhallow@example.org"
LIST = "weekly"


def write_members(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            writer.writerow([f"reader.{i}@example{i % 5000}.org", f"Reader {i}", "Kellmouth"])


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def median_ms(run: Callable[[], object], repeat: int) -> float:
    return statistics.median(timed(run) for _ in range(repeat)) * 1000


def page_figures(home: Path, store: Store, members: MemberKeys, repeat: int) -> None:
    config = load_config(load_settings(home, environ={}))

    def page(email: str) -> Callable[[], object]:
        return lambda: preferences.subscription(config, store, members, email, LIST)

    print(f"  page of a reader in it, first view (index made): {timed(page(MEMBER)) * 1000:.0f} ms")
    print(f"  page of a reader in it, warm: {median_ms(page(MEMBER), repeat):.1f} ms")
    print(f"  page of a reader not in it, warm: {median_ms(page(NOT_IN_WEEKLY), repeat):.1f} ms")


def confirm_figures(home: Path, store: Store, members: MemberKeys, repeat: int) -> None:
    settings = load_settings(home, environ={"NEWSLETTER_SIGNUP_MIN_SECONDS": "0"})
    signups = Signups(settings, store, load_config(settings), members=members)
    times = [confirm(signups, store, f"new.{n}@bench.example.org") for n in range(repeat)]
    print(f"  confirming a sign-up (journal applied through the index): "
          f"{statistics.median(times) * 1000:.1f} ms")
    config = load_config(settings)
    apply_journal(config, store, LIST)
    with store.engine.begin() as conn:
        signup_journal.record(conn, list_id=LIST, kind=signup_journal.JournalKind.JOIN,
                              email="read.whole@bench.example.org", name="",
                              source=signup_journal.JournalSource.CONFIRM, at=store.now())
    whole = timed(lambda: apply_journal(config, store, LIST))
    print(f"  the same join applied reading every file of the list: {whole * 1000:.0f} ms")


def confirm(signups: Signups, store: Store, email: str) -> float:
    """Sign ``email`` up, then confirm the link; the seconds the confirmation took."""
    form = SignupForm(list_id=LIST, email=email, started=signups.stamp(LIST))
    signups.request(form, "192.0.2.1")
    with store.engine.connect() as conn:
        found = signup_requests.find(conn, LIST, address_key(email))
    assert found is not None
    token = signups.links.token(ConfirmLink(LIST, found.email_key, found.nonce))
    started = time.perf_counter()
    if not isinstance(signups.confirm(LIST, token), Confirmed):
        raise SystemExit(f"the confirmation of {email} did not go through")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        for name in ("subscribers", "templates", "articles"):
            shutil.copytree(REPO / name, home / name)
        write_members(home / "subscribers" / "weekly.csv", args.members)
        size = (home / "subscribers" / "weekly.csv").stat().st_size / 1e6
        print(f"weekly.csv: {args.members:,} rows, {size:.1f} MB")
        store = Store.open(f"sqlite:///{home / 'bench.db'}")
        members = MemberKeys()
        try:
            page_figures(home, store, members, args.repeat)
            confirm_figures(home, store, members, args.repeat)
        finally:
            store.close()


if __name__ == "__main__":
    main()
