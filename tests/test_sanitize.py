"""clean_html: the allow-list holds against hostile markup; links and images fit an email."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from newsletter.sources.sanitize import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    clean_html,
    html_to_summary,
    truncate_text,
    web_url,
)

BASE = "https://blog.example.org/2024/05/post"
IMG_STYLE = 'style="max-width:100%;height:auto"'


class Inventory(HTMLParser):
    """Every element and attribute in a fragment, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def inventory(fragment: str) -> Inventory:
    parser = Inventory()
    parser.feed(fragment)
    parser.close()
    return parser


def assert_within_policy(fragment: str) -> None:
    """Only allowed tags and attributes, every URL http(s)/mailto."""
    for tag, attrs in inventory(fragment).elements:
        assert tag in ALLOWED_TAGS, (tag, fragment)
        extra = {"a": {"rel"}, "img": {"style"}}.get(tag, set())
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ALLOWED_ATTRIBUTES["*"] | extra
        assert set(attrs) <= allowed, (tag, attrs)
        for name in ("href", "src", "cite"):
            if name in attrs:
                assert (attrs[name] or "").startswith(("https://", "http://", "mailto:")), attrs


def test_article_markup_is_kept() -> None:
    fragment = (
        "<h2>Head</h2><h3>Sub</h3><h4>Minor</h4><p>A <em>b</em> <strong>c</strong><br>d</p>"
        '<ul><li>one</li></ul><ol start="3"><li>three</li></ol>'
        "<blockquote>quote</blockquote><pre><code>x = 1</code></pre><hr>"
        '<table><caption>T</caption><thead><tr><th scope="col">h</th></tr></thead>'
        '<tbody><tr><td colspan="2">v</td></tr></tbody></table>'
    )

    assert clean_html(fragment, BASE) == fragment


def test_figure_with_image_and_caption() -> None:
    fragment = (
        '<figure><img src="/i.png" alt="A chart" width="320" height="200">'
        "<figcaption>Fig</figcaption></figure>"
    )

    assert clean_html(fragment, BASE) == (
        '<figure><img src="https://blog.example.org/i.png" alt="A chart" width="320" height="200" '
        f"{IMG_STYLE}><figcaption>Fig</figcaption></figure>"
    )


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("<p>ok</p><script>alert(1)</script>", "<p>ok</p>"),
        ("<p onclick=\"steal()\" onmouseover='x()'>hi</p>", "<p>hi</p>"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="java&#x09;script:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href=" &#14; javascript:alert(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="vbscript:msgbox(1)">x</a>', '<a rel="noopener">x</a>'),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', '<a rel="noopener">x</a>'),
        ('<img src="data:image/png;base64,iVBORw0KGgo=">', ""),
        ('<img src="javascript:alert(1)" onerror="alert(2)">', ""),
        (
            "<img src=x onerror=alert(1)>",
            f'<img src="https://blog.example.org/2024/05/x" alt="" width="600" {IMG_STYLE}>',
        ),
        ('<iframe src="https://evil.example/">inside</iframe>after', "after"),
        ('<form action="/steal"><input name="pw"><button>Go</button>label</form>', ""),
        ("<style>body { display: none }</style><p>x</p>", "<p>x</p>"),
        ("<svg onload=alert(1)><circle r=1 /><script>alert(2)</script></svg>", ""),
        ("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", ""),
        ("<scr<script>ipt>alert(1)</script>", "ipt&gt;alert(1)"),
        ('<p style="background:url(javascript:alert(1))">x</p>', "<p>x</p>"),
        ('<object data="evil.swf"><embed src="evil.swf"></object>', ""),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example/">x', "x"),
        (
            '<base href="https://evil.example/"><a href="p">x</a>',
            '<a href="https://blog.example.org/2024/05/p" rel="noopener">x</a>',
        ),
        ("<!-- <script>alert(1)</script> -->text", "text"),
        (
            '<a href="https://ok.example/" target="_blank" rel="opener">x</a>',
            '<a href="https://ok.example/" rel="noopener">x</a>',
        ),
        (
            '<a title="<img src=x onerror=alert(1)>" href="/x">t</a>',
            '<a title="&lt;img src=x onerror=alert(1)&gt;" href="https://blog.example.org/x"'
            ' rel="noopener">t</a>',
        ),
        ("<noscript><p>enable js</p></noscript><video src=v.mp4>no video</video>", ""),
        (
            '<div id="x" class="y" lang="en"><span dir="rtl">t</span></div>',
            '<div lang="en"><span dir="rtl">t</span></div>',
        ),
    ],
)
def test_hostile_markup_is_neutralised(hostile: str, expected: str) -> None:
    cleaned = clean_html(hostile, BASE)

    assert cleaned == expected
    assert_within_policy(cleaned)


def test_nested_script_text_never_becomes_markup() -> None:
    cleaned = clean_html("<<script>script>alert(1)<</script>/script>", BASE)

    assert_within_policy(cleaned)
    assert not any(tag == "script" for tag, _ in inventory(cleaned).elements)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/about", "https://blog.example.org/about"),
        ("../04/earlier", "https://blog.example.org/2024/04/earlier"),
        ("next", "https://blog.example.org/2024/05/next"),
        ("#notes", "https://blog.example.org/2024/05/post#notes"),
        ("?page=2", "https://blog.example.org/2024/05/post?page=2"),
        ("//cdn.example.net/x", "https://cdn.example.net/x"),
        ("https://other.example/", "https://other.example/"),
        ("mailto:editor@example.org", "mailto:editor@example.org"),
    ],
)
def test_relative_links_are_made_absolute(href: str, expected: str) -> None:
    assert (
        clean_html(f'<a href="{href}">x</a>', BASE) == f'<a href="{expected}" rel="noopener">x</a>'
    )


def test_relative_image_and_quote_sources_are_made_absolute() -> None:
    cleaned = clean_html(
        '<blockquote cite="/src">q</blockquote><img src="../img/a.png" width="10">', BASE
    )

    assert cleaned == (
        '<blockquote cite="https://blog.example.org/src">q</blockquote>'
        f'<img src="https://blog.example.org/2024/img/a.png" width="10" alt="" {IMG_STYLE}>'
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('width="1200" height="800"', 'width="600" height="400"'),
        ('width="1200px"', 'width="600"'),
        ('width="480" height="360"', 'width="480" height="360"'),
        ('height="90"', 'width="600"'),
        ('width="50%" height="100"', 'width="600"'),
        ("", 'width="600"'),
    ],
)
def test_images_get_an_email_safe_width(attributes: str, expected: str) -> None:
    cleaned = clean_html(f'<img src="https://x.example/a.png" alt="A" {attributes}>', BASE)

    assert cleaned == f'<img src="https://x.example/a.png" alt="A" {expected} {IMG_STYLE}>'


def test_image_without_alt_gets_an_empty_one_and_hostile_style_is_replaced() -> None:
    cleaned = clean_html('<img src="a.png" style="position:fixed;top:0" width="20">', BASE)

    assert (
        cleaned
        == f'<img src="https://blog.example.org/2024/05/a.png" width="20" alt="" {IMG_STYLE}>'
    )


def test_narrower_column_can_be_asked_for() -> None:
    cleaned = clean_html(
        '<img src="https://x.example/a.png" alt="" width="800" height="400">',
        BASE,
        max_image_width=400,
    )

    assert 'width="400" height="200"' in cleaned


def test_empty_fragment() -> None:
    assert clean_html("  \n", BASE) == ""


def test_summary_is_plain_text_cut_at_a_word() -> None:
    fragment = (
        "<h2>Title</h2><p>First &amp; <b>second</b> paragraph</p>"
        "<script>x()</script><p>third one here</p>"
    )

    assert html_to_summary(fragment, 500) == "Title First & second paragraph third one here"
    assert html_to_summary(fragment, 25) == "Title First & second…"


def test_truncate_text_edges() -> None:
    assert truncate_text("short", 10) == "short"
    assert truncate_text("exactly10!", 10) == "exactly10!"
    assert truncate_text("Supercalifragilistic", 8) == "Superca…"
    assert truncate_text("one, two, three", 10) == "one, two…"


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("/img/a.png", "https://x.example/post", "https://x.example/img/a.png"),
        ("https://y.example/", "", "https://y.example/"),
        ("javascript:alert(1)", "https://x.example/", ""),
        ("data:image/png;base64,AA", "https://x.example/", ""),
        ("/relative-without-base", "", ""),
        ("   ", "https://x.example/", ""),
    ],
)
def test_web_url(value: str, base: str, expected: str) -> None:
    assert web_url(value, base) == expected
