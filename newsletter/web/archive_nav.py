"""The archive's issue page: the stored web edition with a way around the archive added.

The web edition (``issues.web_html``) is a whole document with its own inline styles, made
to look like the email. The archive adds a small bar above it (back to the list, older,
newer) and a fuller one below it (the neighbours' subjects), and nothing else: the
document is parsed and written back with lxml, and the bars' styles go in a ``<style>`` of
their own, under class names of their own, since the page's policy allows inline styles
only. Its colours are the email's (``templates/css/email.css``), in both schemes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from lxml import etree
from lxml import html as lxml_html

from ..errors import RenderError
from ..store.archive import ArchivedIssue

#: The bars' styles: the email's page colour, its muted text and its links, a 600 px column
#: like the email's, and the dark scheme's counterparts.
NAV_STYLE = """
.archive-nav { max-width: 600px; margin: 0 auto; padding: 14px 16px;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
  font-size: 14px; line-height: 20px; color: #5f5a53; background-color: #f2efe9; }
.archive-nav a { color: #1d5e6b; font-weight: bold; }
.archive-nav ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap;
  gap: 8px 20px; }
.archive-nav li { margin: 0; }
.archive-nav-top li:first-child { margin-right: auto; }
.archive-nav-bottom { padding-bottom: 40px; }
.archive-nav-bottom ul { justify-content: space-between; }
.archive-nav-bottom li { flex: 0 1 270px; }
.archive-nav-bottom a { text-decoration: none; }
.archive-nav-bottom .archive-subject { text-decoration: underline; }
.archive-nav-bottom .archive-newer { margin-left: auto; text-align: right; }
.archive-nav .archive-label { display: block; font-weight: normal; font-size: 12px;
  letter-spacing: 1px; text-transform: uppercase; color: #5f5a53; }
@media (prefers-color-scheme: dark) {
  .archive-nav, .archive-nav .archive-label { color: #a8a298 !important;
    background-color: #161514 !important; }
  .archive-nav a { color: #7cc4cf !important; }
}
"""


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Where an issue sits in its list: the one sent before it and the one after."""

    list_title: str
    older: ArchivedIssue | None
    newer: ArchivedIssue | None


def issue_url(list_id: str, issue_id: int) -> str:
    return f"{list_url(list_id)}{issue_id}"


def list_url(list_id: str) -> str:
    return f"/archive/{quote(list_id, safe='')}/"


def with_navigation(web_html: str, list_id: str, around: Neighbours) -> str:
    """``web_html`` with the archive's bars at the top and bottom of its body."""
    try:
        document = lxml_html.document_fromstring(web_html)
    except (etree.ParserError, ValueError) as exc:
        raise RenderError(f"the web edition of an issue of {list_id!r} cannot be read") from exc
    head, body = document.find("head"), document.find("body")
    if head is None:
        head = etree.Element("head")
        document.insert(0, head)
    if body is None:
        raise RenderError(f"the web edition of an issue of {list_id!r} has no body")
    head.append(_element("style", NAV_STYLE))
    head.append(_feed_link(list_id, around.list_title))
    body.insert(0, _top_bar(list_id, around))
    body.append(_bottom_bar(list_id, around))
    return str(lxml_html.tostring(document, encoding="unicode", doctype="<!DOCTYPE html>"))


def _element(tag: str, text: str = "", **attributes: str) -> lxml_html.HtmlElement:
    element = lxml_html.Element(tag, attributes)
    element.text = text or None
    return element


def _link(href: str, text: str, **attributes: str) -> lxml_html.HtmlElement:
    return _element("a", text, href=href, **attributes)


def _feed_link(list_id: str, title: str) -> lxml_html.HtmlElement:
    return _element("link", rel="alternate", type="application/atom+xml", title=title,
                    href=f"{list_url(list_id)}feed.atom")


def _bar(label: str, extra_class: str = "") -> tuple[lxml_html.HtmlElement, etree._Element]:
    nav = _element("nav", **{"class": f"archive-nav {extra_class}".strip(), "aria-label": label})
    items = etree.SubElement(nav, "ul")
    return nav, items


def _item(items: etree._Element, link: lxml_html.HtmlElement, css_class: str = "") -> None:
    item = etree.SubElement(items, "li")
    if css_class:
        item.set("class", css_class)
    item.append(link)


def _top_bar(list_id: str, around: Neighbours) -> lxml_html.HtmlElement:
    """Back to the list, and the neighbours by direction only: the bar stays one line."""
    nav, items = _bar("Archive", "archive-nav-top")
    _item(items, _link(list_url(list_id), "All issues"))
    if around.older is not None:
        _item(items, _link(issue_url(list_id, around.older.id), "← Older", rel="prev"))
    if around.newer is not None:
        _item(items, _link(issue_url(list_id, around.newer.id), "Newer →", rel="next"))
    return nav


def _bottom_bar(list_id: str, around: Neighbours) -> lxml_html.HtmlElement:
    """The neighbours with their subjects, where a reader who has finished one looks."""
    nav, items = _bar("Older and newer issues", "archive-nav-bottom")
    for issue, label, css in ((around.older, "Older issue", "archive-older"),
                              (around.newer, "Newer issue", "archive-newer")):
        if issue is not None:
            link = _link(issue_url(list_id, issue.id), "")
            link.append(_element("span", label, **{"class": "archive-label"}))
            link[-1].tail = " "  # between the two, for text-only readers
            link.append(_element("span", issue.subject, **{"class": "archive-subject"}))
            _item(items, link, css)
    if not len(items):
        _item(items, _link(list_url(list_id), f"All issues of {around.list_title}"))
    return nav
