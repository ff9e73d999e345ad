"""Screenshots of a sample digest and article issue at 600 px and 375 px.

    python bench/screenshot.py [--out var/screenshots]

Renders the sample issues of ``bench/render.py`` with the repository's templates, merges a
sample reader into them and photographs each with headless Chromium. Article images are
served from a local HTTP server on 127.0.0.1, so the pictures show without a network.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from render import sample_content  # noqa: E402

from newsletter.config import Settings  # noqa: E402
from newsletter.models import IssueKind  # noqa: E402
from newsletter.render.issue import IssueContent, Renderer  # noqa: E402
from newsletter.render.merge import MergeTemplate  # noqa: E402
from newsletter.render.screenshot import screenshot  # noqa: E402

#: The column width, a phone, and a desktop window where the layout sits centred.
WIDTHS = (600, 375, 800)

PICTURE = """<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="560">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="#{a}"/><stop offset="1" stop-color="#{b}"/></linearGradient></defs>
<rect width="1040" height="560" fill="url(#g)"/>
<circle cx="820" cy="150" r="70" fill="#ffffff" fill-opacity="0.35"/>
<path d="M0 430 L260 260 L460 400 L700 220 L1040 460 L1040 560 L0 560 Z"
 fill="#0b2a30" fill-opacity="0.45"/>
</svg>"""

READER = {
    "email": "sam.reader@example.net",
    "name": "Sam Reader",
    "greeting_name": "Sam",
    "unsubscribe_url": "https://news.example.org/unsubscribe/sample-token",
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def image_server(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def with_local_images(content: IssueContent, base: str, folder: Path) -> IssueContent:
    colours = (("1d5e6b", "e0b15a"), ("6b3d1d", "d9896a"), ("2c3e6b", "8fb3d9"))
    articles = []
    for n, article in enumerate(content.articles):
        if not article.image_url:
            articles.append(article)
            continue
        a, b = colours[n % len(colours)]
        (folder / f"story-{n}.svg").write_text(PICTURE.format(a=a, b=b), encoding="utf-8")
        articles.append(replace(article, image_url=f"{base}/story-{n}.svg"))
    return replace(content, articles=articles)


def shoot(renderer: Renderer, content: IssueContent, name: str, out: Path) -> None:
    rendered = renderer.render(content)
    html = MergeTemplate.parse(rendered.html, escape=True).render(READER)
    html_path = out / f"{name}.html"
    html_path.write_text(html, encoding="utf-8")
    (out / f"{name}.txt").write_text(MergeTemplate.parse(rendered.text).render(READER), "utf-8")
    (out / f"{name}-web.html").write_text(rendered.web_html, encoding="utf-8")
    for width in WIDTHS:
        png = screenshot(html_path, out / f"{name}-{width}.png", width, height=2600)
        print(f"{png}  ({rendered.html_bytes / 1024:.1f} KB HTML)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "screenshots")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(Settings(home=ROOT))
    with image_server(out) as base:
        digest = with_local_images(sample_content(4), base, out)
        shoot(renderer, digest, "digest", out)
        single = replace(
            digest,
            kind=IssueKind.ARTICLE,
            articles=digest.articles[:1],
            subject=digest.articles[0].title,
            intro_html="",
        )
        shoot(renderer, single, "article", out)


if __name__ == "__main__":
    main()
