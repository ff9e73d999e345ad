"""PNG previews of a rendered issue, taken with headless Chromium.

A screenshot at 600 px shows the desktop layout and one at 375 px the phone layout (the
``@media`` block); looking at both before sending catches what structural tests cannot.
Chromium runs with a throwaway profile and no background network traffic of its own; the
page may still load its images.

Chromium's command line has no full-page capture: it shoots the window. So the page is
first measured, then shot in a window exactly as tall. To measure, a small page of our own
holds the issue in an iframe as wide as the screenshot (the issue's ``@media`` rules see
that width: ``--dump-dom`` runs in a window at least 500 px wide, so the page itself cannot
be measured at 375) and, once everything has loaded, writes the issue's height into its
own DOM, which ``--dump-dom`` prints. A long issue is captured down to its footer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path

from ..errors import RenderError

#: Tried in order on PATH: Debian's package, other distributions', Google's build.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: The window the page is measured in: short, so the height found is the content's own
#: (a document is never shorter than its window).
MEASURE_HEIGHT = 100

_HEIGHT_ATTRIBUTE = "data-newsletter-page-height"
_MEASURING_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head>
<body style="margin:0"><iframe id="issue" src="{src}" scrolling="no"
style="border:0;display:block;width:{width}px;height:{height}px"></iframe>
<script>
addEventListener("load", function () {{
  var page = document.getElementById("issue").contentDocument;
  var d = page.documentElement, b = page.body || d;
  var h = Math.max(d.scrollHeight, d.offsetHeight, b.scrollHeight, b.offsetHeight);
  document.documentElement.setAttribute("{attribute}", String(Math.ceil(h)));
}});
</script></body></html>"""
_MEASURED = re.compile(_HEIGHT_ATTRIBUTE + r'="(\d+)"')


def find_browser() -> str | None:
    """The path of a Chromium-family browser on PATH, if there is one."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    html_path: Path,
    png_path: Path,
    width: int,
    *,
    height: int | None = None,
    timeout: float = 60.0,
) -> Path:
    """Write a ``width`` px wide PNG of ``html_path`` to ``png_path`` and return it: the
    whole page, or its top ``height`` px if given."""
    browser = find_browser()
    if browser is None:
        raise RenderError(
            "no Chromium on PATH for screenshots (tried "
            f"{', '.join(BROWSERS)}); on Debian/Ubuntu: apt-get install chromium"
        )
    if not html_path.is_file():
        raise RenderError(f"{html_path}: no such HTML file to screenshot")
    png_path = png_path.resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsletter-chromium-") as profile:
        if height is None:
            height = page_height(browser, html_path, width, Path(profile), timeout)
        shot = [f"--screenshot={png_path}", f"--window-size={width},{height}"]
        _run(_command(browser, Path(profile), shot, html_path), timeout)
    if not png_path.is_file():
        raise RenderError(f"{browser} exited without writing {png_path}")
    return png_path


def page_height(browser: str, html_path: Path, width: int, profile: Path, timeout: float) -> int:
    """The height in px of the page laid out ``width`` px wide, once it has loaded."""
    measuring = profile / "measure.html"
    measuring.write_text(
        _MEASURING_PAGE.format(
            src=escape(html_path.resolve().as_uri()),
            width=width,
            height=MEASURE_HEIGHT,
            attribute=_HEIGHT_ATTRIBUTE,
        ),
        encoding="utf-8",
    )
    # Reading the iframe's document needs one file: page to read another. Only this run,
    # on our own measuring page, is given that.
    dump = ["--dump-dom", "--allow-file-access-from-files", f"--window-size={width},500"]
    found = _MEASURED.search(_run(_command(browser, profile, dump, measuring), timeout))
    if found is None:
        raise RenderError(f"{browser} loaded {html_path} but could not measure its height")
    return max(int(found.group(1)), 1)


def _command(browser: str, profile: Path, action: list[str], html_path: Path) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",  # containers and CI run as root, where the sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *action,
        html_path.resolve().as_uri(),
    ]


def _run(command: list[str], timeout: float) -> str:
    """Run the browser; its standard output."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{command[0]} took more than {timeout:.0f} s for a screenshot") from exc
    except OSError as exc:
        raise RenderError(f"could not start {command[0]}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RenderError(f"{command[0]} failed with exit code {result.returncode}: {tail}")
    return result.stdout
