"""FolderSource on real Markdown files in a temporary publication folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import SourceError
from newsletter.models import Article
from newsletter.sources import FetchResult, FetchState, SourceSpec, make_source
from newsletter.sources.folder import FolderSource

BASE_URL = "https://example.org/posts"

SPRING = """\
---
title: Spring issue
date: 2024-05-01 09:30
author: Ada
summary: The *first* warm week.
tags: [news, spring]
image: /img/spring.jpg
---
# Spring

It is **warm**. <script>alert(1)</script>

| Day | Temp |
|-----|------|
| Mon | 21   |

![Blossom](img/blossom.png)
[Archive](../archive)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "articles").mkdir()
    return Settings(home=tmp_path)


def write(settings: Settings, name: str, text: str) -> Path:
    path = settings.home / "articles" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def source(settings: Settings, base_url: str | None = BASE_URL) -> FolderSource:
    options = {"base_url": base_url} if base_url is not None else {}
    spec = SourceSpec(id="blog", type="folder", path="articles", options=options)
    made = make_source(spec, settings)
    assert isinstance(made, FolderSource)
    return made


def fetch(settings: Settings, base_url: str | None = BASE_URL) -> FetchResult:
    return source(settings, base_url).fetch(FetchState())


def only(result: FetchResult) -> Article:
    assert result.problems == []
    (article,) = result.articles
    return article


def post(title: str = "T", date: str = "2024-01-02", extra: str = "", body: str = "Body.") -> str:
    return f"---\ntitle: {title}\ndate: {date}\n{extra}---\n{body}\n"


def test_front_matter_and_body_become_an_article(settings: Settings) -> None:
    write(settings, "spring.md", SPRING)

    article = only(fetch(settings))

    assert article.source_id == "blog"
    assert article.uid == "spring.md"
    assert article.title == "Spring issue"
    assert article.url == "https://example.org/posts/spring"
    assert article.published == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert article.author == "Ada"
    assert article.tags == ("news", "spring")
    assert article.image_url == "https://example.org/img/spring.jpg"
    assert article.summary_html == "<p>The <em>first</em> warm week.</p>\n"
    assert article.content_html == (
        "<h1>Spring</h1>\n<p>It is <strong>warm</strong>. </p>\n"
        "<table>\n<thead>\n<tr>\n<th>Day</th>\n<th>Temp</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>Mon</td>\n<td>21</td>\n</tr>\n</tbody>\n</table>\n"
        '<p><img src="https://example.org/posts/img/blossom.png" alt="Blossom" width="600"'
        ' style="max-width:100%;height:auto">\n'
        '<a href="https://example.org/archive" rel="noopener">Archive</a></p>\n'
    )


def test_draft_is_skipped(settings: Settings) -> None:
    write(settings, "ready.md", post("Ready"))
    write(settings, "draft.md", post("Not yet", extra="draft: true\n"))
    write(settings, "draft-word.md", post("Not yet either", extra="draft: yes\n"))
    write(settings, "not-draft.md", post("Explicitly ready", extra="draft: false\n"))

    result = fetch(settings)

    assert sorted(a.title for a in result.articles) == ["Explicitly ready", "Ready"]
    assert result.problems == []


def test_broken_files_are_reported_and_the_others_still_load(settings: Settings) -> None:
    write(settings, "a-good.md", post("Good one"))
    write(settings, "bad-yaml.md", "---\ntitle: Bad\ndate: 2024-05-01\nauthor: [unclosed\n---\nx\n")
    write(settings, "no-title.md", "---\n\ndate: 2024-05-01\n---\nx\n")
    write(settings, "bad-date.md", post("When?", date="tomorrow"))
    write(settings, "no-date.md", "---\ntitle: Timeless\n---\nx\n")
    write(settings, "no-front-matter.md", "# Just markdown\n")
    write(settings, "unclosed.md", "---\ntitle: Open\ndate: 2024-05-01\n")
    write(settings, "list.md", "---\n- a\n- b\n---\nx\n")
    write(settings, "tags.md", post("Tags", extra="tags: {a: 1}\n"))
    write(settings, "z-good.md", post("Good two"))
    (settings.home / "articles" / "latin1.md").write_bytes(b"---\ntitle: caf\xe9\n---\n")

    result = fetch(settings)

    assert [a.title for a in result.articles] == ["Good one", "Good two"]
    assert sorted(result.problems) == [
        "bad-date.md:3: date 'tomorrow' is not a date",
        "bad-yaml.md:4: front matter is not valid YAML: while parsing a flow sequence,"
        " did not find expected ',' or ']'",
        "latin1.md: not UTF-8 text (invalid continuation byte)",
        "list.md:1: front matter must be key: value lines",
        "no-date.md: front matter needs a date",
        "no-front-matter.md:1: no front matter (the file must start with ---)",
        "no-title.md: front matter needs a title",
        "tags.md:4: tags must be a list or a, b, c",
        "unclosed.md:1: front matter is never closed with ---",
    ]


def test_read_article_raises_source_error_naming_the_line(settings: Settings) -> None:
    path = write(settings, "late.md", "---\ntitle: Late\n\n\ndate: someday\n---\nx\n")

    with pytest.raises(SourceError) as caught:
        source(settings).read_article(settings.home / "articles", path)

    assert str(caught.value) == "blog: late.md:5: date 'someday' is not a date"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01 23:15:00", datetime(2024, 5, 1, 23, 15, tzinfo=UTC)),
        ("2024-05-01T23:15:00+02:00", datetime(2024, 5, 1, 21, 15, tzinfo=UTC)),
        ("'2024-05-01T08:00:00-05:00'", datetime(2024, 5, 1, 13, 0, tzinfo=UTC)),
        ("'2024-05-01'", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_dates_become_utc(settings: Settings, written: str, expected: datetime) -> None:
    write(settings, "dated.md", post(date=written))

    published = only(fetch(settings)).published

    assert published == expected
    assert published is not None and published.utcoffset() is not None


def test_tags_as_comma_string_and_list(settings: Settings) -> None:
    write(settings, "a.md", post("A", extra="tags: news,  spring , ,news\n"))
    write(settings, "b.md", post("B", extra="tags:\n  - one\n  - 2\n"))

    a, b = fetch(settings).articles

    assert a.tags == ("news", "spring")
    assert b.tags == ("one", "2")


def test_declared_url_is_the_uid_and_may_be_relative_to_the_base(settings: Settings) -> None:
    write(settings, "absolute.md", post("A", extra="url: https://elsewhere.example/a\n"))
    write(settings, "relative.md", post("R", extra="url: custom/path\n"))

    absolute, relative = fetch(settings).articles

    assert (absolute.uid, absolute.url) == ("https://elsewhere.example/a",) * 2
    assert (relative.uid, relative.url) == ("https://example.org/posts/custom/path",) * 2


def test_unsafe_declared_url_is_a_problem(settings: Settings) -> None:
    write(settings, "js.md", post("J", extra="url: javascript:alert(1)\n"))

    result = fetch(settings)

    assert result.articles == []
    assert result.problems == ["js.md:4: url 'javascript:alert(1)' is not http(s)"]


def test_url_from_nested_path_slug(settings: Settings) -> None:
    write(settings, "2024/Café Notes.md", post("Nested"))

    article = only(fetch(settings))

    assert article.uid == "2024/Café Notes.md"
    assert article.url == "https://example.org/posts/2024/cafe-notes"


def test_without_base_url_a_file_needs_its_own_url(settings: Settings) -> None:
    write(settings, "has-url.md", post("Has", extra="url: https://example.org/has\n"))
    write(settings, "no-url.md", post("Lacks"))

    result = fetch(settings, base_url=None)

    assert [a.title for a in result.articles] == ["Has"]
    assert result.problems == [
        "no-url.md: no url in the front matter and no base_url for the source"
    ]


def test_uid_is_stable_when_the_content_changes(settings: Settings) -> None:
    write(settings, "post.md", post("Title", body="First version."))
    before = only(fetch(settings))
    write(settings, "post.md", post("Title", body="Second version, edited."))

    after = only(fetch(settings))

    assert after.uid == before.uid == "post.md"
    assert after.content_hash != before.content_hash
    assert after.content_html == "<p>Second version, edited.</p>\n"


def test_hidden_folders_and_other_files_are_ignored(settings: Settings) -> None:
    write(settings, "visible.md", post("Visible"))
    write(settings, ".git/notes.md", post("Hidden"))
    write(settings, ".hidden.md", post("Hidden too"))
    write(settings, "notes.txt", "not markdown")

    assert [a.title for a in fetch(settings).articles] == ["Visible"]


def test_byte_order_mark_is_ignored(settings: Settings) -> None:
    path = settings.home / "articles" / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf" + post("With BOM").encode())

    assert only(fetch(settings)).title == "With BOM"


def test_missing_folder_is_a_source_error(settings: Settings) -> None:
    spec = SourceSpec(id="blog", type="folder", path="nowhere")

    with pytest.raises(SourceError, match=r"blog: .*nowhere is not a folder"):
        make_source(spec, settings).fetch(FetchState())


def test_missing_path_is_a_source_error(settings: Settings) -> None:
    with pytest.raises(SourceError, match="no path is set"):
        make_source(SourceSpec(id="blog", type="folder"), settings).fetch(FetchState())
