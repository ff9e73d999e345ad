"""PNG previews of a rendered issue, taken with headless Chromium.

A screenshot at 600 px shows the desktop layout and one at 375 px the phone layout (the
``@media`` block); looking at both before sending catches what structural tests cannot.
Chromium runs with a throwaway profile and no background network traffic of its own; the
page may still load its images.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import RenderError

#: Tried in order on PATH: Debian's package, other distributions', Google's build.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Tall enough for a typical issue; longer pages are cut at the bottom.
DEFAULT_HEIGHT = 3000


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
    height: int = DEFAULT_HEIGHT,
    timeout: float = 60.0,
) -> Path:
    """Write a ``width`` by ``height`` PNG of ``html_path`` to ``png_path`` and return it."""
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
        _run(_command(browser, html_path, png_path, width, height, Path(profile)), timeout)
    if not png_path.is_file():
        raise RenderError(f"{browser} exited without writing {png_path}")
    return png_path


def _command(
    browser: str, html_path: Path, png_path: Path, width: int, height: int, profile: Path
) -> list[str]:
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
        f"--screenshot={png_path}",
        f"--window-size={width},{height}",
        html_path.resolve().as_uri(),
    ]


def _run(command: list[str], timeout: float) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{command[0]} took more than {timeout:.0f} s for a screenshot") from exc
    except OSError as exc:
        raise RenderError(f"could not start {command[0]}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RenderError(f"{command[0]} failed with exit code {result.returncode}: {tail}")
