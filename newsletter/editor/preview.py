"""An issue as one subscriber would get it: merged for a sample reader, written to files,
and screenshotted at the desktop and phone widths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..store import issues as issue_store

if TYPE_CHECKING:
    from ..delivery.base import MergedCopy
    from ..publisher import Publisher

SAMPLE_NAME = "Sample Reader"
SAMPLE_EMAIL = "reader@example.org"
#: The desktop layout, and the phone layout (the templates' ``@media`` block).
SCREEN_WIDTHS = (600, 375)


@dataclass(frozen=True, slots=True)
class PreviewFiles:
    subject: str
    html_path: Path
    text_path: Path
    html_bytes: int


def sample_address(publisher: Publisher, email: str | None = None) -> str:
    """``email``, else the first test recipient, else a made-up reader."""
    tests = publisher.settings.test_recipients
    return email or (tests[0] if tests else SAMPLE_EMAIL)


def sample_copy(publisher: Publisher, issue_id: int, email: str | None = None) -> MergedCopy:
    """The issue merged for one reader; fields the reader has no value for are left empty."""
    with publisher.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
    prepared = publisher.prepared(issue_id)
    address = sample_address(publisher, email)
    values = publisher.recipient_values()(address, SAMPLE_NAME, record.list_id, {})
    for name in prepared.html.field_names | prepared.text.field_names:
        values.setdefault(name, "")
    return prepared.merge(values)


def write(
    publisher: Publisher, issue_id: int, *, out: Path | None = None, email: str | None = None
) -> PreviewFiles:
    """Write the HTML to ``out`` (default var/preview/issue-ID.html) and the text beside it."""
    copy = sample_copy(publisher, issue_id, email)
    html_path = out or publisher.settings.var_dir / "preview" / f"issue-{issue_id}.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(copy.html, encoding="utf-8")
    text_path = html_path.with_suffix(".txt")
    text_path.write_text(copy.text, encoding="utf-8")
    return PreviewFiles(copy.subject, html_path, text_path, len(copy.html.encode()))


def screenshots(files: PreviewFiles, widths: tuple[int, ...] = SCREEN_WIDTHS) -> Iterator[Path]:
    """A whole-page PNG of the HTML at each width, beside it (issue-ID-600.png, …), each
    yielded once written."""
    from ..render.screenshot import screenshot  # only previews need a browser

    for width in widths:
        target = files.html_path.with_name(f"{files.html_path.stem}-{width}.png")
        screenshot(files.html_path, target, width)
        yield target
