"""Screenshots with headless Chromium (skipped where no Chromium is installed)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from newsletter.errors import RenderError
from newsletter.render.screenshot import find_browser, screenshot

PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin:0;background:#173f47"><h1 style="color:#fff">Preview</h1></body></html>"""


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH")
@pytest.mark.timeout(120)
def test_screenshot_has_the_requested_size(tmp_path: Path) -> None:
    page = tmp_path / "issue.html"
    page.write_text(PAGE, encoding="utf-8")
    written = screenshot(page, tmp_path / "shots" / "issue-375.png", 375, height=640)
    assert written == (tmp_path / "shots" / "issue-375.png").resolve()
    assert png_size(written) == (375, 640)


def test_missing_browser_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    page = tmp_path / "issue.html"
    page.write_text(PAGE, encoding="utf-8")
    with pytest.raises(RenderError, match="no Chromium on PATH"):
        screenshot(page, tmp_path / "issue.png", 600)


def test_missing_html_file(tmp_path: Path) -> None:
    if find_browser() is None:
        pytest.skip("no Chromium on PATH")
    with pytest.raises(RenderError, match="no such HTML file"):
        screenshot(tmp_path / "absent.html", tmp_path / "issue.png", 600)
