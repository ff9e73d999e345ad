"""Pre-send checks: what would make an issue fail in the inbox, found before it is queued.

``lint`` reads the issue as a subscriber would get it — the stored rendering, merged for a
sample reader — and parses the HTML with lxml. Errors block queueing; warnings block it
unless the editor insists (``issue queue --force``).

Errors: an empty issue; an empty article (no title, no text or image, no link: collect
skips such entries now, but one stored earlier may still be drafted); an empty subject; a
subject, From name or other shared header holding a control character;
HTML over Gmail's clipping size; no unsubscribe link in the HTML or the text; no
``List-Unsubscribe`` header; template syntax (``{{``, ``{%``) left in the output; a from
address outside the publication's domain. Warnings: an article without a title; images
without ``alt``; links and images over plain http; a subject longer than 78 characters.

*The publication's domain* is the domain of the publication's ``from_email`` (or a
subdomain of it). That is the domain the mail is authenticated for (SPF, DKIM, DMARC), and
a list that sends from elsewhere fails DMARC alignment. ``base_url`` is not used: a website
can be hosted anywhere, which says nothing about who may send mail for it.

Template syntax inside ``<pre>`` and ``<code>`` is content (an article about templates),
not a leftover; the text part may repeat such code as often as the HTML shows it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import lxml.html

from ..delivery.base import MergedCopy, PreparedIssue
from ..delivery.prepare import RecipientValues
from ..delivery.screening import shared_header_problem
from ..errors import LintError
from ..models import Article
from ..render.issue import GMAIL_CLIP_BYTES
from ..sources.base import is_empty
from ..store import Store
from ..store import articles as article_store
from ..store import issues as issue_store
from ..store.issues import IssueRecord

MAX_SUBJECT_CHARS = 78
TEMPLATE_SYNTAX = ("{{", "{%")
SAMPLE_EMAIL = "reader@example.org"
UNSUBSCRIBE_FIELD = "unsubscribe_url"
MAX_LISTED = 10  # the same kind of warning is listed this often, then summed up

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LintReport:
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.errors and not self.warnings

    def check_queueable(self, *, force: bool = False) -> None:
        """Raise ``LintError`` if these findings keep the issue from being queued."""
        flagged = [f"warning: {w}" for w in self.warnings]
        if self.errors:
            raise LintError([*self.errors, *flagged])
        if flagged and not force:
            raise LintError(
                [*flagged, "warnings block queueing unless forced (issue queue --force)"]
            )

    def as_dict(self) -> dict[str, list[str]]:
        return {"errors": list(self.errors), "warnings": list(self.warnings)}


@dataclass(frozen=True, slots=True)
class Sample:
    """The issue as one sample reader gets it, and what the checks compare it with."""

    record: IssueRecord
    article_count: int
    prepared: PreparedIssue
    copy: MergedCopy
    tree: lxml.html.HtmlElement
    publication_domain: str
    unsubscribe_url: str
    #: The issue's articles with their ids, in the issue's order.
    articles: tuple[tuple[int, Article], ...] = ()


def lint(
    store: Store, issue_id: int, prepared: PreparedIssue, values: RecipientValues, from_email: str
) -> LintReport:
    """Check issue ``issue_id`` as it would be sent now: ``prepared`` is its rendering,
    ``values`` makes a reader's merge values, ``from_email`` the publication's address."""
    return check(sample_of(store, issue_id, prepared, values, from_email))


def check(sample: Sample) -> LintReport:
    """Every check, on an issue already merged for a sample reader."""
    return LintReport(
        errors=tuple(f for rule in ERROR_CHECKS for f in rule(sample)),
        warnings=tuple(f for rule in WARNING_CHECKS for f in rule(sample)),
    )


def sample_of(
    store: Store, issue_id: int, prepared: PreparedIssue, reader: RecipientValues, from_email: str
) -> Sample:
    """The issue as stored, merged for a sample reader."""
    with store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        articles = tuple(article_store.by_ids(conn, issue_store.article_ids(conn, issue_id)))
    values = reader(SAMPLE_EMAIL, "Sample Reader", record.list_id, {})
    needed = (
        prepared.html.field_names
        | prepared.text.field_names
        | prepared.subject.field_names
        | prepared.list_unsubscribe.field_names
    )
    values.update({name: "" for name in needed - values.keys()})
    merged = prepared.merge(values)
    domain = from_email.rpartition("@")[2].lower()
    return Sample(
        record,
        len(articles),
        prepared,
        merged,
        _parse(merged.html),
        domain,
        values[UNSUBSCRIBE_FIELD],
        articles,
    )


def _parse(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html) if html.strip() else lxml.html.Element("html")


# -- errors -----------------------------------------------------------------------------------
def _empty(sample: Sample) -> Iterator[str]:
    if sample.article_count == 0 and not sample.record.intro_md.strip():
        yield "the issue is empty: no articles and no introduction"


def _empty_articles(sample: Sample) -> Iterator[str]:
    for article_id, article in sample.articles:
        if is_empty(article):
            yield (
                f"article {article_id} from source {article.source_id} is empty: no title, "
                f"no text and no link (issue remove-article {sample.record.id} {article_id})"
            )


def _empty_subject(sample: Sample) -> Iterator[str]:
    if not sample.copy.subject.strip():
        yield "the subject is empty (issue edit --subject)"


def _unfit_header(sample: Sample) -> Iterator[str]:
    problem = shared_header_problem(sample.prepared)
    if problem:  # every batch would fail with it
        yield f"{problem} (issue edit --subject)" if "Subject" in problem else problem


def _too_large(sample: Sample) -> Iterator[str]:
    size = len(sample.copy.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        yield (
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES // 1024} KB, hiding the rest and the unsubscribe link"
        )


def _no_unsubscribe_link(sample: Sample) -> Iterator[str]:
    hint = f"(templates write {{{{ recipient.{UNSUBSCRIBE_FIELD} }}}})"
    links = {a.get("href", "").strip() for a in sample.tree.iter("a")}
    if sample.unsubscribe_url not in links:
        yield f"the HTML has no unsubscribe link {hint}"
    if UNSUBSCRIBE_FIELD not in sample.prepared.text.field_names:
        yield f"the text part has no unsubscribe link {hint}"


def _no_list_unsubscribe(sample: Sample) -> Iterator[str]:
    header = sample.copy.headers.get("List-Unsubscribe", "").strip()
    if not header or (
        "https://" not in header and "http://" not in header and "mailto:" not in header
    ):
        yield "no List-Unsubscribe header: inboxes show no unsubscribe button and may refuse it"


def _template_syntax(sample: Sample) -> Iterator[str]:
    in_code = sum(_count_syntax(e.text_content()) for e in _code_elements(sample.tree))
    html = [t for t in _html_strings(sample.tree) if _count_syntax(t)]
    text = [line for line in sample.copy.text.splitlines() if _count_syntax(line)]
    if _count_syntax(sample.copy.subject):
        yield f"template syntax left in the subject: {_snippet(sample.copy.subject)!r}"
    if html:
        yield f"template syntax left in the HTML: {_snippet(html[0])!r}"
    if sum(_count_syntax(line) for line in text) > in_code:
        yield f"template syntax left in the text part: {_snippet(text[0])!r}"


def _code_elements(tree: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    return list(tree.xpath("//pre | //code[not(ancestor::pre)]"))


def _html_strings(tree: lxml.html.HtmlElement) -> Iterator[str]:
    """Every text and attribute value of the HTML, except inside ``<pre>`` and ``<code>``."""
    outside = copy.deepcopy(tree)
    for element in _code_elements(outside):
        element.drop_tree()  # keeps the text that follows the element
    for element in outside.iter():
        yield from element.attrib.values()
        yield from (t for t in (element.text, element.tail) if t)


def _count_syntax(text: str) -> int:
    return sum(text.count(token) for token in TEMPLATE_SYNTAX)


def _snippet(text: str) -> str:
    """Up to 60 characters of ``text`` around its first template syntax."""
    flat = " ".join(text.split())
    at = min(i for i in (flat.find(t) for t in TEMPLATE_SYNTAX) if i >= 0)
    start = max(0, at - 20)
    before, after = ("…" if start else ""), ("…" if start + 60 < len(flat) else "")
    return before + flat[start : start + 60] + after


def _foreign_sender(sample: Sample) -> Iterator[str]:
    address = sample.prepared.from_email
    domain = address.rpartition("@")[2].lower()
    home = sample.publication_domain
    if domain != home and not domain.endswith("." + home):
        yield (
            f"the from address {address} is outside the publication's domain {home}: "
            f"it would fail DMARC alignment (set the list's from_email on {home})"
        )


# -- warnings ---------------------------------------------------------------------------------
def _untitled_articles(sample: Sample) -> Iterator[str]:
    untitled = [(i, a) for i, a in sample.articles if not a.title.strip() and not is_empty(a)]
    yield from _listed(
        untitled, lambda item: f"article {item[0]} from source {item[1].source_id} has no title"
    )


def _images_without_alt(sample: Sample) -> Iterator[str]:
    missing = [img.get("src", "") for img in sample.tree.iter("img") if img.get("alt") is None]
    yield from _listed(missing, lambda src: f"image without alt text: {src or '(no src)'}")


def _insecure_links(sample: Sample) -> Iterator[str]:
    found: dict[str, str] = {}  # url -> what it is, in order of appearance
    for anchor in sample.tree.iter("a"):
        _note_http(found, anchor.get("href", ""), "link")
    for image in sample.tree.iter("img"):
        _note_http(found, image.get("src", ""), "image")
    yield from _listed(
        list(found.items()), lambda item: f"{item[1]} over plain http (not https): {item[0]}"
    )


def _note_http(found: dict[str, str], url: str, kind: str) -> None:
    if urlsplit(url.strip()).scheme.lower() == "http":
        found.setdefault(url.strip(), kind)


def _long_subject(sample: Sample) -> Iterator[str]:
    length = len(sample.copy.subject)
    if length > MAX_SUBJECT_CHARS:
        yield (
            f"the subject is {length} characters; over {MAX_SUBJECT_CHARS} it is cut short "
            "in most inboxes"
        )


def _listed(items: list[T], describe: Callable[[T], str]) -> Iterator[str]:
    yield from (describe(item) for item in items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        yield f"… and {len(items) - MAX_LISTED} more like it"


Check = Callable[[Sample], Iterator[str]]
ERROR_CHECKS: tuple[Check, ...] = (
    _empty,
    _empty_articles,
    _empty_subject,
    _unfit_header,
    _too_large,
    _no_unsubscribe_link,
    _no_list_unsubscribe,
    _template_syntax,
    _foreign_sender,
)
WARNING_CHECKS: tuple[Check, ...] = (
    _untitled_articles,
    _images_without_alt,
    _insecure_links,
    _long_subject,
)
