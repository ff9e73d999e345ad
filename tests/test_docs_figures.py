"""The README's and docs/' links and pictures lead somewhere.

A link to a document or a heading that was renamed or moved sends a reader nowhere, and a
picture that grew to megabytes makes the README slow to open; this finds both.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: ``[text](target)`` and ``![alt](target)``, outside code.
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")
#: The largest picture a document may show, in bytes.
LARGEST_PICTURE = 400 * 1024


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading: str) -> str:
    """The id a heading gets on the usual Markdown hosts: lower case, punctuation dropped,
    spaces as hyphens."""
    kept = "".join(
        c for c in heading.strip().lower()
        if c in " -_" or unicodedata.category(c)[0] in "LN"
    )
    return kept.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+)$", prose(document.read_text(encoding="utf-8")),
                          flags=re.MULTILINE)
    return {anchor(h) for h in headings}


def problems(document: Path) -> list[str]:
    """Each relative link or picture of ``document`` that leads nowhere, as a sentence."""
    found = []
    for bang, target in LINK.findall(prose(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # an outside address: not ours to check here
        path_part, _, fragment = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        where = f"{document.name}: {target}"
        if not path.is_file():
            found.append(f"{where}: no file {path_part}")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            found.append(f"{where}: no heading #{fragment} in {path.name}")
        elif bang and path.stat().st_size > LARGEST_PICTURE:
            found.append(f"{where}: {path.stat().st_size // 1024} KB, over 400 KB")
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_links_and_pictures_lead_somewhere(document: Path) -> None:
    assert problems(document) == []


def test_the_readme_shows_a_rendered_issue() -> None:
    pictures = [t for bang, t in LINK.findall(prose((REPO / "README.md").read_text("utf-8")))
                if bang]
    assert pictures and all((REPO / p).is_file() for p in pictures)


def test_a_link_that_leads_nowhere_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Where to go\n\ntext\n", encoding="utf-8")
    (tmp_path / "big.png").write_bytes(b"\0" * 500 * 1024)
    document = tmp_path / "doc.md"
    document.write_text(
        "# Title\n\n[fine](other.md#where-to-go) [here](#title) [web](https://example.org)\n"
        "[gone](missing.md) [no heading](other.md#elsewhere) ![big](big.png)\n"
        "`[in code](nowhere.md)`\n",
        encoding="utf-8",
    )
    assert problems(document) == [
        "doc.md: missing.md: no file missing.md",
        "doc.md: other.md#elsewhere: no heading #elsewhere in other.md",
        "doc.md: big.png: 500 KB, over 400 KB",
    ]


def test_a_heading_becomes_its_anchor() -> None:
    assert anchor("The editor's commands") == "the-editors-commands"
    assert anchor("Cron instead of the daemon") == "cron-instead-of-the-daemon"
