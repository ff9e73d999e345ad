"""Plain-text conversion and CSS inlining on their own."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from newsletter.errors import RenderError
from newsletter.render.inline import Inliner
from newsletter.render.text import html_to_text, tidy_text

DOCUMENT = """<!DOCTYPE html>
<html><head><style>
.title { color: #123456; mso-line-height-rule: exactly; -webkit-font-smoothing: auto; }
a:hover { color: red; }
@media (max-width: 620px) { .title { font-size: 20px !important; } }
</style>
<link rel="stylesheet" href="http://127.0.0.1:9/never.css">
</head><body><h1 class="title">Hi</h1>
<a href="%%nl:unsubscribe_url%%">Unsubscribe</a></body></html>"""


class TestHtmlToText:
    def test_links_become_label_and_url(self) -> None:
        text = html_to_text('<p>Read <a href="https://ex.org/a_b?x=1&amp;y=2">the report</a>.</p>')
        assert text == "Read the report <https://ex.org/a_b?x=1&y=2>."

    def test_link_whose_label_is_the_url_is_written_once(self) -> None:
        text = html_to_text('<p><a href="https://www.ex.org/page/">ex.org/page</a></p>')
        assert text == "https://www.ex.org/page/"

    def test_no_markdown_escapes(self) -> None:
        text = html_to_text(r"<p>1. first - C:\temp *star* under_score [x]</p>")
        assert text == r"1. first - C:\temp *star* under_score [x]"

    def test_structure_survives(self) -> None:
        text = html_to_text(
            "<h2>Plan</h2><p>Some <strong>bold</strong> text.</p>"
            "<ul><li>one</li><li>two</li></ul><blockquote><p>quoted</p></blockquote>"
            '<figure><img src="https://ex.org/c.png" alt="A chart">'
            "<figcaption>Cap</figcaption></figure>"
        )
        assert text.splitlines() == [
            "## Plan", "", "Some *bold* text.", "", "  - one", "  - two", "", "> quoted",
            "", "[A chart]", "", "Cap",
        ]  # fmt: skip

    def test_empty(self) -> None:
        assert html_to_text("  ") == ""

    def test_tidy_text(self) -> None:
        assert tidy_text("\n\na  \n\n\n\nb\t\n") == "a\n\nb\n"


class TestInliner:
    def test_inlines_and_keeps_important_in_media_queries(self) -> None:
        out = Inliner().inline(DOCUMENT)
        assert '<h1 class="title" style="color:#123456;' in out
        assert "font-size: 20px !important" in out
        assert "@media (max-width: 620px)" in out
        assert "a:hover" in out

    def test_does_not_fetch_linked_stylesheets(self) -> None:
        requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = b"h1 { color: #abcdef; }"
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        with HTTPServer(("127.0.0.1", 0), Handler) as server:
            thread = threading.Thread(target=server.serve_forever, args=(0.01,))
            thread.start()
            try:
                url = f"http://127.0.0.1:{server.server_address[1]}/theme.css"
                out = Inliner().inline(DOCUMENT.replace("http://127.0.0.1:9/never.css", url))
            finally:
                server.shutdown()
                thread.join()
        assert requests == []
        assert "#abcdef" not in out

    def test_markers_survive_in_attributes(self) -> None:
        assert 'href="%%nl:unsubscribe_url%%"' in Inliner().inline(DOCUMENT)

    def test_cached_and_shipped_premailer_agree(self) -> None:
        cached = Inliner()
        first, again = cached.inline(DOCUMENT), cached.inline(DOCUMENT)
        assert first == again == Inliner(cache_stylesheets=False).inline(DOCUMENT)

    def test_unknown_css_properties_do_not_log_warnings(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG):
            Inliner(cache_stylesheets=False).inline(DOCUMENT.replace("#123456", "#654321"))
        noise = [r for r in caplog.records if r.name == "CSSUTILS" and r.levelno >= logging.WARNING]
        assert noise == []

    def test_unparseable_document(self) -> None:
        with pytest.raises(RenderError, match="CSS inlining failed"):
            Inliner().inline("  ")
