"""Every text colour of the email templates against its background: WCAG AA (4.5:1).

The check reads the rendered, CSS-inlined HTML, as a mail client that drops ``<style>`` sees
it: an element's colour is the nearest ``color`` on it or an ancestor, its background the
nearest ``background-color`` (or ``bgcolor``). Dark mode is checked by laying the rules of
the ``prefers-color-scheme: dark`` block over the inlined styles, as a client honouring it
does (they are ``!important``, so they beat inline styles). A template change that puts any
text below 4.5:1, in either scheme, fails here and names the element and both colours.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cssselect
import pytest
import tinycss2
import tinycss2.color3
from lxml import html as lxml_html
from lxml.cssselect import CSSSelector

from newsletter.config import Settings
from newsletter.models import Article, IssueKind, MailingList, Publication
from newsletter.render.issue import IssueContent, Renderer

REPO = Path(__file__).resolve().parent.parent
AA_NORMAL_TEXT = 4.5
WHITE = (1.0, 1.0, 1.0)

Rgb = tuple[float, float, float]
Colours = dict[lxml_html.HtmlElement, str]

PROSE = """
<h2>A heading</h2><h3>A smaller heading</h3><h4>And smaller</h4>
<p>Plain text with <a href="https://news.example.org/a">a link</a>, <em>emphasis</em>,
<strong>strong</strong> and <code>inline code</code>.</p>
<blockquote><p>A quotation, with <a href="https://news.example.org/q">a link</a>.</p></blockquote>
<pre><code>code = "block"</code></pre>
<ul><li>One</li><li>Two</li></ul>
<figure><img src="https://news.example.org/f.jpg" alt="A figure" width="800" height="400">
<figcaption>A caption</figcaption></figure>
<table><tr><th>Head</th></tr><tr><td>Cell</td></tr></table>
"""


def relative_luminance(rgb: Rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour with channels in 0..1."""

    def linear(channel: float) -> float:
        if channel <= 0.04045:
            return channel / 12.92
        return float(((channel + 0.055) / 1.055) ** 2.4)

    red, green, blue = (linear(c) for c in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: Rgb, second: Rgb) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def parse_colour(value: str) -> tuple[Rgb, float] | None:
    """``(rgb, alpha)`` of a CSS colour value (``!important`` allowed), None if not a colour."""
    tokens = [t for t in tinycss2.parse_component_value_list(value) if t.type != "whitespace"]
    # A colour is one token ('#abc', 'white', 'rgb(…)'); an '!important' may follow it.
    colour = tinycss2.color3.parse_color(tokens[0]) if tokens else None
    if colour is None or isinstance(colour, str):  # 'currentColor' comes back as a string
        return None
    return (colour.red, colour.green, colour.blue), colour.alpha


def declarations(style: str) -> dict[str, str]:
    found = {}
    for item in tinycss2.parse_blocks_contents(style, skip_whitespace=True, skip_comments=True):
        if item.type == "declaration":
            found[item.lower_name] = tinycss2.serialize(item.value).strip()
    return found


@dataclass
class Scheme:
    """Colours an element gets from its own style, in one colour scheme."""

    # Keyed by the element itself: lxml keeps one proxy per node while it is referenced,
    # whereas id() of a proxy can be reused once it is collected.
    colour: Colours
    background: Colours


def inline_scheme(root: lxml_html.HtmlElement) -> Scheme:
    scheme = Scheme({}, {})
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        style = declarations(element.get("style", ""))
        if "color" in style:
            scheme.colour[element] = style["color"]
        background = style.get("background-color") or style.get("background")
        if background is None and element.get("bgcolor"):
            background = element.get("bgcolor")
        if background is not None:
            scheme.background[element] = background
    return scheme


def dark_rules(root: lxml_html.HtmlElement) -> Iterator[tuple[str, dict[str, str]]]:
    """``(selector, declarations)`` of the ``prefers-color-scheme: dark`` block, in order."""
    sheet = "\n".join(style.text or "" for style in root.iter("style"))
    for rule in tinycss2.parse_stylesheet(sheet, skip_whitespace=True, skip_comments=True):
        if rule.type != "at-rule" or rule.lower_at_keyword != "media":
            continue
        if "prefers-color-scheme" not in tinycss2.serialize(rule.prelude) or "dark" not in (
            tinycss2.serialize(rule.prelude)
        ):
            continue
        for inner in tinycss2.parse_rule_list(rule.content or [], True, True):
            if inner.type != "qualified-rule":
                continue
            found = declarations(tinycss2.serialize(inner.content))
            for selector in tinycss2.serialize(inner.prelude).split(","):
                yield selector.strip(), found


def dark_scheme(root: lxml_html.HtmlElement) -> Scheme:
    """The inlined colours with the dark block's ``!important`` rules laid over them."""
    scheme = inline_scheme(root)
    rules = sorted(
        enumerate(dark_rules(root)),
        key=lambda item: (cssselect.parse(item[1][0])[0].specificity(), item[0]),
    )
    assert rules, "the stylesheet has no prefers-color-scheme: dark block"
    for _, (selector, found) in rules:
        for element in CSSSelector(selector)(root):
            if "color" in found:
                scheme.colour[element] = found["color"]
            background = found.get("background-color") or found.get("background")
            if background is not None:
                scheme.background[element] = background
    return scheme


def hidden(element: lxml_html.HtmlElement) -> bool:
    for node in [element, *element.iterancestors()]:
        style = declarations(node.get("style", "")).get("display", "")
        if style.startswith("none") or node.tag in ("head", "style", "title", "script"):
            return True
    return False


def has_own_text(element: lxml_html.HtmlElement) -> bool:
    if (element.text or "").strip():
        return True
    return any((child.tail or "").strip() for child in element)


def resolved(element: lxml_html.HtmlElement, values: Colours, *, opaque: bool) -> Rgb:
    """The nearest colour on ``element`` or an ancestor; for backgrounds, the first opaque one."""
    for node in [element, *element.iterancestors()]:
        value = values.get(node)
        if value is None:
            continue
        parsed = parse_colour(value)
        if parsed is None:
            continue
        rgb, alpha = parsed
        if opaque and alpha < 1:
            continue
        return rgb
    return WHITE if opaque else (0.0, 0.0, 0.0)


def low_contrast(document: str, *, dark: bool) -> list[str]:
    root = lxml_html.document_fromstring(document)
    scheme = dark_scheme(root) if dark else inline_scheme(root)
    failures = []
    for element in root.iter():
        if not isinstance(element.tag, str) or hidden(element) or not has_own_text(element):
            continue
        foreground = resolved(element, scheme.colour, opaque=False)
        background = resolved(element, scheme.background, opaque=True)
        ratio = contrast_ratio(foreground, background)
        if ratio < AA_NORMAL_TEXT:
            label = f"<{element.tag} class={element.get('class')!r}>"
            text = " ".join(element.text_content().split())[:40]
            failures.append(
                f"{label} {text!r}: {ratio:.2f}:1 ({_hex(foreground)} on {_hex(background)})"
            )
    return failures


def _hex(rgb: Rgb) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def content(kind: IssueKind) -> IssueContent:
    publication = Publication(
        name="Riverside Weekly",
        base_url="https://news.example.org",
        from_email="editor@news.example.org",
        from_name="Riverside Weekly",
        postal_address="12 Mill Lane, Riverside RV1 2AB, United Kingdom",
        description="Local news, plainly told.",
    )
    mailing_list = MailingList(
        id="weekly", title="The Monday Digest", members_files=("weekly.csv",), sources=("blog",)
    )
    published = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    articles = [
        Article(
            source_id="blog",
            uid=f"a{n}",
            title=f"Story {n}",
            url=f"https://news.example.org/{n}",
            published=published,
            author="Chloé Martin",
            summary_html="<p>A summary with <a href='https://news.example.org/s'>a link</a>.</p>",
            content_html=PROSE,
            image_url="https://news.example.org/img.jpg",
        )
        for n in range(2)
    ]
    return IssueContent(
        publication=publication,
        mailing_list=mailing_list,
        issue_id=3,
        kind=kind,
        subject="Subject",
        preheader="Preheader text.",
        intro_html="<p>An introduction with <a href='https://news.example.org/i'>a link</a>.</p>",
        articles=articles if kind == IssueKind.DIGEST else articles[:1],
        web_url="https://news.example.org/archive/weekly/3",
        sent_at=published,
    )


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(REPO / "templates", home / "templates")
    return Renderer(Settings(home=home))


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("kind", [IssueKind.DIGEST, IssueKind.ARTICLE], ids=["digest", "article"])
def test_all_text_reaches_wcag_aa_contrast(renderer: Renderer, kind: IssueKind, dark: bool) -> None:
    rendered = renderer.render(content(kind))
    for document in (rendered.html, rendered.web_html):
        assert low_contrast(document, dark=dark) == []


def test_the_check_finds_low_contrast() -> None:
    """The checker itself: grey on a light grey cell fails, black on it passes, and a dark
    rule is applied over the inline style."""
    document = (
        "<html><head><style>@media (prefers-color-scheme: dark) {"
        " .cell { background-color: #111111 !important; } }</style></head><body>"
        '<table><tr><td class="cell" style="background-color:#f2efe9">'
        '<p style="color:#8a857b">grey</p><p style="color:#000000">black</p>'
        "</td></tr></table></body></html>"
    )
    light = low_contrast(document, dark=False)
    assert len(light) == 1 and "'grey': 3." in light[0] and "#8a857b on #f2efe9" in light[0]
    dark = low_contrast(document, dark=True)
    assert len(dark) == 1 and "#000000 on #111111" in dark[0]
    assert round(contrast_ratio((0.0, 0.0, 0.0), WHITE), 1) == 21.0


# -- the web pages (unsubscribe, archive): one stylesheet, in the reader's colour scheme ----

WEB_CSS = REPO / "templates" / "web" / "web.css"
#: What a browser paints where the stylesheet says nothing (Chromium's Canvas/CanvasText).
BROWSER_DEFAULTS = {
    "light": {"background": "#ffffff", "color": "#000000"},
    "dark": {"background": "#121212", "color": "#ffffff"},
}


def _web_rules() -> tuple[list[tuple[str, dict[str, str]]], dict[str, dict[str, str]]]:
    """The top-level rules, and the custom properties of ``:root`` in each scheme."""
    sheet = tinycss2.parse_stylesheet(WEB_CSS.read_text(), skip_whitespace=True,
                                      skip_comments=True)
    rules: list[tuple[str, dict[str, str]]] = []
    variables: dict[str, dict[str, str]] = {"light": {}, "dark": {}}
    for rule in sheet:
        if rule.type == "qualified-rule":
            selector = tinycss2.serialize(rule.prelude).strip()
            found = _custom_and_plain(tinycss2.serialize(rule.content))
            rules.append((selector, found))
            if selector == ":root":
                variables["light"].update({k: v for k, v in found.items() if k.startswith("--")})
        elif rule.type == "at-rule" and "dark" in tinycss2.serialize(rule.prelude):
            for inner in tinycss2.parse_rule_list(rule.content or [], True, True):
                if inner.type == "qualified-rule" and tinycss2.serialize(inner.prelude).strip() == (
                    ":root"
                ):
                    found = _custom_and_plain(tinycss2.serialize(inner.content))
                    variables["dark"].update(found)
    variables["dark"] = {**variables["light"], **variables["dark"]}
    return rules, variables


def _custom_and_plain(block: str) -> dict[str, str]:
    found = {}
    for item in tinycss2.parse_blocks_contents(block, skip_whitespace=True, skip_comments=True):
        if item.type == "declaration":
            found[item.name] = tinycss2.serialize(item.value).strip()
    return found


def _resolve(value: str, variables: dict[str, str]) -> str:
    while value.startswith("var("):
        value = variables[value[4:].rstrip(")").strip()]
    return value


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_web_pages_reach_wcag_aa_contrast(scheme: str) -> None:
    """Each rule's text colour against its own background, or the page's where it has none;
    the page's colours are the browser's unless the stylesheet sets them."""
    rules, variables = _web_rules()
    body = dict(BROWSER_DEFAULTS[scheme])
    for selector, found in rules:
        if selector == "body":
            body.update({k: v for k, v in found.items() if k in ("color", "background")})
    failures = []
    for selector, found in [("body", {}), *rules]:
        colour = found.get("color", body["color"] if selector == "body" else None)
        if colour is None or colour == "inherit":
            continue
        background = found.get("background") or found.get("background-color") or body["background"]
        foreground = parse_colour(_resolve(colour, variables[scheme]))
        behind = parse_colour(_resolve(background, variables[scheme]))
        assert foreground and behind, (selector, colour, background)
        ratio = contrast_ratio(foreground[0], behind[0])
        if ratio < AA_NORMAL_TEXT:
            failures.append(f"{selector}: {ratio:.2f}:1 ({colour} on {background})")
    assert failures == []
