"""Plain text from article HTML, for the ``text/plain`` part.

html2text writes Markdown, whose ``[label](url)`` links read badly in a mail client. Links and
images are therefore rewritten first: a link becomes ``label <url>`` (RFC 3986's delimiters,
which clients turn back into links) or the bare URL when the label already is the URL, and an
image becomes its alt text in brackets. Paragraphs are not wrapped: clients wrap plain text
themselves, and a hard wrap would break long URLs.
"""

from __future__ import annotations

import re

import html2text
from lxml import etree
from lxml import html as lxml_html

_LINKED_SCHEMES = ("http://", "https://", "mailto:")
_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def html_to_text(fragment: str) -> str:
    """Readable plain text of an HTML fragment (no trailing newline)."""
    if not fragment.strip():
        return ""
    converter = _converter()
    text = converter.handle(_delinked(fragment))
    return tidy_text(text).strip("\n")


def tidy_text(text: str) -> str:
    """``text`` without trailing spaces or runs of blank lines, ending in one newline."""
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


class _PlainText(html2text.HTML2Text):
    """html2text minus Markdown escaping, whose backslashes a plain-text reader would see."""

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        # html2text escapes only when entity_char is false; nothing else depends on the flag.
        super().handle_data(data, entity_char=True)


def _converter() -> html2text.HTML2Text:
    # One per call: HTML2Text keeps parsing state between handle() calls.
    converter = _PlainText()
    converter.body_width = 0
    converter.unicode_snob = True
    converter.ignore_images = True
    converter.ignore_links = True
    converter.ul_item_mark = "-"
    converter.emphasis_mark = "_"
    converter.strong_mark = "*"
    return converter


def _delinked(fragment: str) -> str:
    """``fragment`` with links and images turned into text that survives html2text."""
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    for image in list(root.iter("img")):
        _replace_image(image)
    for link in list(root.iter("a")):
        _append_target(link)
    return etree.tostring(root, encoding="unicode", method="html")


def _replace_image(image: lxml_html.HtmlElement) -> None:
    alt = (image.get("alt") or "").strip()
    placeholder = lxml_html.Element("div")
    placeholder.text = f"[{alt}]" if alt else ""
    placeholder.tail = image.tail
    parent = image.getparent()
    if parent is not None:
        parent.replace(image, placeholder)


def _append_target(link: lxml_html.HtmlElement) -> None:
    href = (link.get("href") or "").strip()
    if not href.lower().startswith(_LINKED_SCHEMES):
        return
    label = " ".join(link.text_content().split())
    if _same_target(label, href):
        link.clear(keep_tail=True)
        link.text = href.removeprefix("mailto:")
        return
    target = lxml_html.Element("span")
    target.text = f" <{href}>"
    link.append(target)


def _same_target(label: str, href: str) -> bool:
    """Whether the label says nothing the URL does not (empty, or the URL itself)."""

    def bare(value: str) -> str:
        value = value.lower().removeprefix("mailto:")
        return re.sub(r"^https?://(www\.)?", "", value).rstrip("/")

    return not label or bare(label) == bare(href)
