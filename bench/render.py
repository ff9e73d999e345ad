"""Render, inline, plain-text and merge timings for one realistic issue.

    python bench/render.py [--articles 48] [--runs 20]

Prints medians over ``--runs`` calls in one process; the default issue is a digest whose
inlined HTML is about 75 KB. The inliner is measured with the stylesheet cache this package
adds (``Inliner()``) and with premailer as shipped (``Inliner(cache_stylesheets=False)``),
once with the templates' own stylesheet and once with 150 more rules appended, the size at
which premailer's shared 128-entry cache starts evicting the parsed sheet on every call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsletter.config import Settings  # noqa: E402
from newsletter.models import Article, IssueKind, MailingList, Publication  # noqa: E402
from newsletter.render.inline import Inliner  # noqa: E402
from newsletter.render.issue import IssueContent, Renderer  # noqa: E402
from newsletter.render.merge import MergeTemplate  # noqa: E402
from newsletter.render.text import html_to_text  # noqa: E402

SENTENCES = (
    "The council approved the new cycle lanes after a two-hour debate on Tuesday night.",
    "Residents on the east side said the plan ignores the school run and the bus routes.",
    "Officials expect the first section to open in spring, weather permitting.",
    "A survey of 1,200 households found most people support safer junctions.",
    "Critics point out that the budget was set before construction costs rose sharply.",
    "The library will extend its opening hours on weekdays from next month.",
    "Volunteers collected more than four tonnes of litter along the river path.",
    "The market hall reopens after eighteen months of repairs to its roof and drains.",
)


HEADLINES = (
    "Council approves cycle lanes after a long night of debate",
    "East side residents want the school run taken seriously",
    "First section of the river route to open in spring",
    "What 1,200 households told us about safer junctions",
    "Rising costs put the transport budget under pressure",
    "Library to stay open later on weekdays",
    "Four tonnes of litter cleared from the river path",
    "The market hall reopens after eighteen months of repairs",
)


def paragraph(seed: int, sentences: int = 4) -> str:
    return " ".join(SENTENCES[(seed + i) % len(SENTENCES)] for i in range(sentences))


def sample_article(n: int, now: datetime) -> Article:
    body = "".join(
        f"<h2>Part {p + 1}</h2><p>{paragraph(n + p)}</p>"
        f"<blockquote><p>{SENTENCES[(n + p) % len(SENTENCES)]}</p></blockquote>"
        f"<ul><li>{SENTENCES[p % 8]}</li><li>{SENTENCES[(p + 3) % 8]}</li></ul>"
        for p in range(3)
    )
    return Article(
        source_id="city",
        uid=f"city-{n}",
        title=HEADLINES[n % len(HEADLINES)],
        url=f"https://news.example.org/2026/11/story-{n + 1}",
        published=now - timedelta(hours=7 * n),
        summary_html=f"<p>{paragraph(n, 3)}</p>",
        content_html=body,
        author=("Amira Haddad", "Jonas Weber", "Chloé Martin", "")[n % 4],
        image_url=f"https://news.example.org/img/story-{n + 1}.jpg" if n % 3 == 0 else "",
    )


def sample_content(articles: int = 12, *, kind: IssueKind = IssueKind.DIGEST) -> IssueContent:
    now = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    publication = Publication(
        name="Riverside Weekly",
        base_url="https://news.example.org",
        from_email="editor@news.example.org",
        from_name="Riverside Weekly",
        postal_address="Riverside Weekly\n12 Mill Lane\nRiverside RV1 2AB\nUnited Kingdom",
        description="Local news, plainly told — every Monday.",
    )
    mailing_list = MailingList(
        id="weekly",
        title="The Monday Digest",
        members_files=("weekly.csv",),
        sources=("city",),
        timezone="Europe/London",
        template="digest",
    )
    return IssueContent(
        publication=publication,
        mailing_list=mailing_list,
        issue_id=42,
        kind=kind,
        subject="Cycle lanes approved, the market hall reopens, and more",
        preheader="Eight stories from Riverside this week, starting with the council vote.",
        intro_html=f"<p>{paragraph(2, 3)}</p><p>Thanks for reading, and see you next week.</p>",
        articles=[sample_article(n, now) for n in range(articles)],
        web_url="https://news.example.org/archive/weekly/42",
        sent_at=now,
        number=42,
    )


def median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def merges_per_second(template: MergeTemplate, runs: int = 3000) -> float:
    values = {f: f"value-{f}@example.org" for f in template.field_names}
    start = time.perf_counter()
    for _ in range(runs):
        template.render(values)
    return runs / (time.perf_counter() - start)


def with_extra_rules(document: str, count: int = 150) -> str:
    """``document`` with ``count`` more (unused) rules in its stylesheet, as a large theme has."""
    extra = "\n".join(f".u-{n} {{ padding: {n % 40}px; color: #{n:06x}; }}" for n in range(count))
    return document.replace("</style>", extra + "\n</style>", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=48)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    settings = Settings(home=ROOT)
    content = sample_content(args.articles)
    renderer = Renderer(settings)
    rendered = renderer.render(content)
    raw = renderer.html_source(content)
    cached, uncached = Inliner(), Inliner(cache_stylesheets=False)
    merge = MergeTemplate.parse(rendered.html, escape=True)

    print(f"issue: {args.articles} articles, HTML {rendered.html_bytes / 1024:.1f} KB inlined")
    jinja = median_ms(partial(renderer.html_source, content), args.runs)
    print(f"render (Jinja2, digest.html)    {jinja:8.2f} ms")
    big = with_extra_rules(raw)
    for label, document in (("own stylesheet", raw), ("+150 rules", big)):
        fixed = median_ms(partial(cached.inline, document), args.runs)
        shipped = median_ms(partial(uncached.inline, document), args.runs)
        print(f"inline, {label:15} cached {fixed:8.2f} ms | premailer as shipped {shipped:8.2f} ms")
    bodies = "".join(a.content_html for a in content.articles)
    text = median_ms(lambda: html_to_text(bodies), args.runs)
    print(f"text (html_to_text, {len(bodies) // 1024} KB body) {text:8.2f} ms")
    whole = median_ms(lambda: renderer.render(content), args.runs)
    print(f"whole render (html+text+web)    {whole:8.2f} ms")
    print(
        f"merge per recipient             {merges_per_second(merge):8.0f} copies/s "
        f"({len(merge.fields)} markers)"
    )


if __name__ == "__main__":
    main()
