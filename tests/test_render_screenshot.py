"""Screenshots with headless Chromium (skipped where no Chromium is installed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from newsletter.cli import cli
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


LONG_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head>
<body style="margin:0;background:#173f47">
<div style="height:5000px">A long article</div>
<div style="height:200px;background:#ff0000">The footer</div>
</body></html>"""


@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH")
@pytest.mark.timeout(180)
def test_a_long_page_is_captured_whole_down_to_its_footer(tmp_path: Path) -> None:
    page = tmp_path / "issue.html"
    page.write_text(LONG_PAGE, encoding="utf-8")
    written = screenshot(page, tmp_path / "issue-600.png", 600)
    assert png_size(written) == (600, 5200)  # the page's scrollHeight, not 3,000
    with Image.open(written) as image:
        rgb = image.convert("RGB")
        assert rgb.getpixel((300, 5199)) == (255, 0, 0)  # the footer's last row
        assert rgb.getpixel((300, 4990)) == (0x17, 0x3F, 0x47)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["issue-600.png", "issue.html"]


BODY_BACKGROUND = (0xF2, 0xEF, 0xE9)  # templates/css/email.css: .body


@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH")
@pytest.mark.timeout(300)
def test_preview_png_of_a_long_issue_shows_its_footer(home: Path) -> None:
    paragraphs = "\n\n".join(
        f"Paragraph {n} of the council's long report on the harbour wall." for n in range(120)
    )
    (home / "articles" / "long-read.md").write_text(
        "---\ntitle: The long read\ndate: 2026-11-28T08:00:00Z\n---\n\n" + paragraphs + "\n",
        encoding="utf-8",
    )

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--home", str(home), *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("collect")
    entries = json.loads(run("articles", "list", "--json"))
    article_id = next(e["id"] for e in entries if e["title"] == "The long read")
    (issue_id,) = json.loads(
        run("issue", "draft", "every-article", "--article", str(article_id), "--json")
    )["drafted"]
    out = run("issue", "preview", str(issue_id), "--png")
    for width in (600, 375):
        png = home / "var" / "preview" / f"issue-{issue_id}-{width}.png"
        assert f"PNG:     {png}" in out
        with Image.open(png) as image:
            rgb = image.convert("RGB")
        assert rgb.width == width and rgb.height > 3000
        bottom = [rgb.getpixel((x, rgb.height - 1)) for x in range(width)]
        assert set(bottom) == {BODY_BACKGROUND}  # past the end of the email, not cut in it
        footer = rgb.crop((0, rgb.height - 400, width, rgb.height)).convert("L")
        assert footer.getextrema()[0] < 140  # the footer's text (address, unsubscribe link)
