"""What the tests of the reader's own page share: the example publication with sign-ups open
on its weekly list, the page's states as a browser would read them, and a snapshot of
everything a change could touch (suppressions, the sign-up journal, the member files)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import html as lxml_html
from sqlalchemy import select

from newsletter.store import Store, suppressions
from newsletter.store.tables import signup_journal

SIGNUPS = "weekly-signups.csv"
#: In every-article.csv only: weekly (which takes sign-ups) is one they can join.
NORA = "nora.penhallow@example.org"
#: In weekly.csv and every-article.csv.
ZOE = "zoe.angstrom@example.org"
#: In weekly.csv only.
PIRAN = "harbourmaster@example.org"


def open_signups(home: Path) -> None:
    """The weekly list takes sign-ups into ``weekly-signups.csv`` (not there yet)."""
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8")
    if "signups =" not in text:
        text = re.sub(
            r'^members = \["weekly.csv"\]$', f'members = ["weekly.csv"]\nsignups = "{SIGNUPS}"',
            text, count=1, flags=re.M,
        )
        assert SIGNUPS in text, "the example's weekly list is no longer as this test knows it"
        toml.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Shown:
    """One list on the page: its state (the card's class), and its box."""

    state: str
    ticked: bool
    enabled: bool
    text: str


def shown_lists(page: str) -> dict[str, Shown]:
    """The lists of the page by id, read from its markup as a browser would."""
    document = lxml_html.document_fromstring(page)
    found = {}
    for card in document.cssselect("form.subscription div.choice"):
        [box] = card.cssselect("input[type=checkbox]")
        state = next(c for c in card.get("class", "").split() if c != "choice")
        found[box.get("value")] = Shown(
            state, box.get("checked") is not None, box.get("disabled") is None,
            " ".join(card.text_content().split()),
        )
    return found


def page_text(page: str) -> str:
    main = lxml_html.document_fromstring(page).cssselect("main")[0]
    return " ".join(main.text_content().split())


def journal_rows(store: Store) -> list[tuple[str, str, str, str, str]]:
    """(list, kind, email, name, source) of every entry, in order."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(signup_journal).order_by(signup_journal.c.id)).all()
    return [(r.list_id, r.kind, r.email, r.name, r.source) for r in rows]


def suppression_set(store: Store) -> set[tuple[str, str, str, str]]:
    with store.engine.connect() as conn:
        return {(s.email, s.scope, str(s.reason), s.source) for s in suppressions.iter_all(conn)}


def snapshot(store: Store, home: Path) -> tuple[Any, ...]:
    """Everything a change from the page could touch."""
    files = {p.name: p.read_bytes() for p in sorted((home / "subscribers").glob("*.csv"))}
    return suppression_set(store), journal_rows(store), files


def spoil_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes of ``path`` in place, keeping its size, inode and modification time:
    only a reader that reads those bytes again notices (an index of the file does not)."""
    assert len(old) == len(new)
    before = os.stat(path)
    path.write_bytes(path.read_bytes().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_ino == before.st_ino
