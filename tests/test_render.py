"""Rendering issues with the repository's templates: structure, merge, web edition, errors."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.config import Settings
from newsletter.errors import ConfigError, RenderError
from newsletter.models import Article, IssueKind, MailingList, Publication
from newsletter.render.issue import (
    GMAIL_CLIP_BYTES,
    IssueContent,
    RenderedIssue,
    Renderer,
    field_key,
)
from newsletter.render.merge import MARKER_RE, MergeTemplate

REPO = Path(__file__).resolve().parent.parent
SENT = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)

READER = {
    "email": "ann@example.net",
    "name": "Ann & <Bob>",
    "greeting_name": "Ann & <Bob>",
    "unsubscribe_url": "https://news.example.org/unsubscribe/tok?a=1&b=2",
    "preferences_url": "https://news.example.org/subscription/tok?a=1&b=2",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return Settings(home=tmp_path)


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return Renderer(settings)


def make_articles() -> list[Article]:
    return [
        Article(
            source_id="blog",
            uid="a1",
            title="Bridges & tunnels: a “short” history",
            url="https://news.example.org/bridges",
            published=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
            summary_html="<p>Why the <em>old</em> bridge stays.</p>",
            content_html=(
                "<p>First paragraph.</p><p>See <a href='https://x.example/r'>the report</a>.</p>"
            ),
            author="Chloé Martin",
            image_url="https://news.example.org/img/bridge.jpg",
        ),
        Article(
            source_id="blog",
            uid="a2",
            title="Night buses return",
            url="https://news.example.org/buses",
            published=None,
            content_html=f"<p>{'Buses run again at night. ' * 40}</p><script>alert(1)</script>",
        ),
    ]


def make_content(**changes: object) -> IssueContent:
    publication = Publication(
        name="Riverside Weekly",
        base_url="https://news.example.org",
        from_email="editor@news.example.org",
        from_name="Riverside Weekly",
        postal_address="12 Mill Lane, Riverside RV1 2AB, United Kingdom",
        language="en-GB",
    )
    mailing_list = MailingList(
        id="weekly",
        title="The Monday Digest",
        members_files=("weekly.csv",),
        sources=("blog",),
        timezone="Pacific/Auckland",
    )
    content = IssueContent(
        publication=publication,
        mailing_list=mailing_list,
        issue_id=7,
        kind=IssueKind.DIGEST,
        subject="Bridges, buses and more",
        preheader="Two stories from Riverside this week.",
        intro_html="<p>Welcome to <strong>issue seven</strong>.</p>",
        articles=make_articles(),
        web_url="https://news.example.org/archive/weekly/7",
        sent_at=SENT,
        number=3,
    )
    return replace(content, **changes)  # type: ignore[arg-type]


def parse(document: str) -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(document)


def merged(rendered: RenderedIssue) -> tuple[str, str]:
    html = MergeTemplate.parse(rendered.html, escape=True).render(READER)
    text = MergeTemplate.parse(rendered.text).render(READER)
    return html, text


class TestDigest:
    def test_document_head_and_layout(self, renderer: Renderer) -> None:
        rendered = renderer.render(make_content())
        root = parse(rendered.html)
        assert root.get("lang") == "en-GB"
        assert root.xpath("//meta[@charset='utf-8']")
        assert root.xpath("//meta[@name='viewport']")
        tables = root.xpath("//table")
        assert tables and all(t.get("role") == "presentation" for t in tables)
        container = root.xpath("//table[contains(@class, 'container')]")[0]
        assert "max-width:600px" in container.get("style")
        assert '<!--[if mso]><table role="presentation" width="600"' in rendered.html
        assert rendered.subject == "Bridges, buses and more"
        assert rendered.html_bytes == len(rendered.html.encode("utf-8"))

    def test_css_is_inlined_and_media_query_keeps_important(self, renderer: Renderer) -> None:
        root = parse(renderer.render(make_content()).html)
        title = root.xpath("//h2[contains(@class, 'article-title')]")[0]
        assert "font-family:Georgia" in title.get("style").replace(", ", ",")
        summary = root.xpath("//div[contains(@class, 'summary')]")[0]
        assert "line-height:26px" in summary.get("style")
        style = root.xpath("//style")[0].text
        media = style[style.index("@media (max-width: 620px)") :]
        assert re.search(r"padding:\s*24px 20px 20px 20px\s*!important", media)

    def test_preheader_is_hidden_and_first(self, renderer: Renderer) -> None:
        root = parse(renderer.render(make_content()).html)
        body_first = root.xpath("//body/*")[0]
        assert body_first.text_content().startswith("Two stories from Riverside this week.")
        assert "display:none" in body_first.get("style")

    def test_every_article_title_links_to_the_article(self, renderer: Renderer) -> None:
        root = parse(renderer.render(make_content()).html)
        links = {a.text_content(): a.get("href") for a in root.xpath("//h2/a")}
        assert links == {
            "Bridges & tunnels: a “short” history": "https://news.example.org/bridges",
            "Night buses return": "https://news.example.org/buses",
        }

    def test_images_have_alt_text(self, renderer: Renderer) -> None:
        root = parse(renderer.render(make_content()).html)
        images = root.xpath("//img")
        assert [i.get("src") for i in images] == ["https://news.example.org/img/bridge.jpg"]
        assert images[0].get("alt") == "Bridges & tunnels: a “short” history"

    def test_meta_line_uses_the_list_timezone(self, renderer: Renderer) -> None:
        html = renderer.render(make_content()).html
        # 23:30 UTC on the 23rd is already the 24th in Auckland.
        assert "Tuesday, 24 November 2026" in html
        assert "22 Nov 2026" in html and "Chloé Martin" in html

    def test_summary_or_excerpt_and_no_script(self, renderer: Renderer) -> None:
        html = renderer.render(make_content()).html
        assert "Why the <em>old</em> bridge stays." in html
        assert "Buses run again at night." in html and "…" in html
        assert "<script" not in html

    def test_footer_has_reason_unsubscribe_and_address(self, renderer: Renderer) -> None:
        rendered = renderer.render(make_content())
        root = parse(rendered.html)
        footer = root.xpath("//td[contains(@class, 'footer')]")[0]
        assert "you subscribed to The Monday Digest" in footer.text_content()
        assert footer.xpath(".//a[text()='Unsubscribe']/@href") == ["%%nl:unsubscribe_url%%"]
        manage = footer.xpath(".//a[text()='Manage your subscription']/@href")
        assert manage == ["%%nl:preferences_url%%"]
        assert "12 Mill Lane" in footer.text_content()
        assert root.xpath("//a[text()='View in browser']/@href")[0] == make_content().web_url

    def test_no_template_syntax_left(self, renderer: Renderer) -> None:
        rendered = renderer.render(make_content())
        for output in (rendered.html, rendered.text, rendered.web_html):
            assert "{{" not in output and "{%" not in output and "}}" not in output

    def test_plain_text(self, renderer: Renderer) -> None:
        text = renderer.render(make_content()).text
        lines = text.splitlines()
        assert lines[0] == "Riverside Weekly"
        assert "Hi %%nl:greeting_name%%," in lines
        assert "Welcome to *issue seven*." in lines
        assert "Bridges & tunnels: a “short” history" in lines
        assert "https://news.example.org/bridges" in lines
        assert "https://news.example.org/archive/weekly/7" in lines
        assert lines[lines.index("Unsubscribe:") + 1] == "%%nl:unsubscribe_url%%"
        assert lines[lines.index("Manage your subscription:") + 1] == "%%nl:preferences_url%%"
        assert lines[-3:] == ["12 Mill Lane", "Riverside RV1 2AB", "United Kingdom"]
        assert "<p>" not in text and "\n\n\n" not in text and text.endswith("\n")


class TestIssueNumber:
    def test_masthead_shows_the_lists_number_not_the_database_id(self, renderer: Renderer) -> None:
        rendered = renderer.render(make_content(issue_id=7, number=3))
        meta = parse(rendered.html).xpath("//p[contains(@class, 'masthead-meta')]")[0]
        assert meta.text_content().split()[:2] == ["Issue", "3"]
        assert "Issue 7" not in rendered.html and "Issue 7" not in rendered.text
        assert "The Monday Digest | Issue 3 | " in rendered.text

    def test_an_issue_without_a_number_shows_the_date_alone(self, renderer: Renderer) -> None:
        rendered = renderer.render(make_content(issue_id=7, number=None))
        meta = parse(rendered.html).xpath("//p[contains(@class, 'masthead-meta')]")[0]
        assert meta.text_content() == "Tuesday, 24 November 2026"


class TestContentsList:
    """"In this issue" is followed by the list of what is in it, each linking to its article."""

    @pytest.mark.parametrize("edition", ["html", "web_html"])
    def test_in_this_issue_lists_each_title_linking_to_its_article(
        self, renderer: Renderer, edition: str
    ) -> None:
        root = parse(getattr(renderer.render(make_content()), edition))
        (label,) = root.xpath("//*[contains(@class, 'section-label')]")
        assert label.text_content().strip().lower() == "in this issue"
        contents = label.getnext()
        links = contents.xpath(".//a")
        titles = [a.title for a in make_articles()]
        assert [" ".join(a.text_content().split()) for a in links] == titles
        for link, title in zip(links, titles, strict=True):
            href = link.get("href")
            assert href.startswith("#"), href
            (target,) = root.xpath(f"//*[@id='{href[1:]}']")
            assert target.xpath(".//h2")[0].text_content() == title

    def test_no_label_without_articles(self, renderer: Renderer) -> None:
        html = renderer.render(make_content(articles=[])).html
        assert "In this issue" not in html


class TestImages:
    """Outlook sizes images by the width attribute: it stays in pixels, and a height is a
    number or absent; the fitting to narrow screens is CSS."""

    @pytest.mark.parametrize("kind", [IssueKind.DIGEST, IssueKind.ARTICLE])
    def test_image_sizes_are_pixels_and_css_does_the_rest(
        self, renderer: Renderer, kind: IssueKind
    ) -> None:
        article = replace(
            make_articles()[0],
            summary_html="<p>Short.</p>",
            content_html='<p><img src="https://news.example.org/wide.png" alt="A chart" '
            'width="1040" height="560"></p>',
        )
        rendered = renderer.render(make_content(kind=kind, articles=[article]))
        for document in (rendered.html, rendered.web_html):
            images = parse(document).xpath("//img")
            assert len(images) == (2 if kind == IssueKind.ARTICLE else 1)
            for image in images:
                assert image.get("width", "").isdigit(), lxml_html.tostring(image)
                assert image.get("height") is None or image.get("height").isdigit()
                style = image.get("style").replace(" ", "")
                assert "max-width:100%" in style and "height:auto" in style
            assert images[0].get("width") == "520"
            if kind == IssueKind.ARTICLE:
                assert (images[1].get("width"), images[1].get("height")) == ("520", "280")


class TestArticle:
    def test_article_kind_renders_the_full_content(self, renderer: Renderer) -> None:
        content = make_content(kind=IssueKind.ARTICLE, articles=make_articles()[:1])
        rendered = renderer.render(content)
        root = parse(rendered.html)
        assert [a.get("href") for a in root.xpath("//h2/a")] == ["https://news.example.org/bridges"]
        prose = root.xpath("//div[contains(@class, 'prose')]")[0]
        assert "First paragraph." in prose.text_content()
        assert prose.xpath(".//a/@href") == ["https://x.example/r"]
        assert "By Chloé Martin" in rendered.html
        assert "See the report <https://x.example/r>." in rendered.text.splitlines()

    def test_article_template_chosen_by_the_list(self, renderer: Renderer) -> None:
        listing = replace(make_content().mailing_list, template="article")
        rendered = renderer.render(make_content(mailing_list=listing))
        assert rendered.html.count('class="headline"') == 2


class TestMerge:
    def test_values_escaped_in_html_but_not_in_text(self, renderer: Renderer) -> None:
        html, text = merged(renderer.render(make_content()))
        assert "Hi Ann &amp; &lt;Bob&gt;," in html
        assert 'href="https://news.example.org/unsubscribe/tok?a=1&amp;b=2"' in html
        assert "Hi Ann & <Bob>," in text
        assert "https://news.example.org/unsubscribe/tok?a=1&b=2" in text.splitlines()
        assert not MARKER_RE.search(html) and not MARKER_RE.search(text)

    def test_markers_in_article_text_stay_text(self, renderer: Renderer) -> None:
        sneaky = replace(make_articles()[0], title="Win %%nl:email%% now")
        html, text = merged(renderer.render(make_content(articles=[sneaky])))
        assert "ann@example.net" not in html and "ann@example.net" not in text

    def test_custom_fields_become_markers(self, settings: Settings) -> None:
        (settings.templates_dir / "fields.html").write_text(
            "<p>{{ recipient.fields.company }}|{{ recipient.fields['Home Town'] }}</p>"
        )
        (settings.templates_dir / "fields.txt").write_text("{{ recipient.email }}")
        listing = replace(make_content().mailing_list, template="fields")
        rendered = Renderer(settings).render(make_content(mailing_list=listing))
        assert "%%nl:f_company%%|%%nl:f_home_town%%" in rendered.html
        assert rendered.text == "%%nl:email%%\n"
        assert field_key("Company Name") == "f_company_name"


class TestWebEdition:
    def test_web_html_has_nothing_personal(self, renderer: Renderer) -> None:
        web = renderer.render(make_content()).web_html
        root = parse(web)
        assert not MARKER_RE.search(web)
        assert "Hi there," in web
        assert "web edition" in web
        assert not root.xpath("//a[text()='Unsubscribe' or text()='View in browser']")
        assert "12 Mill Lane" in web

    def test_markers_written_by_the_editor_get_neutral_values(self, renderer: Renderer) -> None:
        content = make_content(intro_html="<p>Dear %%nl:greeting_name%% (%%nl:email%%)</p>")
        rendered = renderer.render(content)
        assert "Dear there ()" in rendered.web_html
        assert "Dear %%nl:greeting_name%% (%%nl:email%%)" in rendered.html


class TestWarnings:
    def test_small_issue_has_no_warnings(self, renderer: Renderer) -> None:
        assert renderer.render(make_content()).warnings == ()

    def test_large_html_warns_about_gmail_clipping(self, renderer: Renderer) -> None:
        long_read = replace(make_articles()[0], content_html="<p>" + "words " * 20_000 + "</p>")
        rendered = renderer.render(make_content(kind=IssueKind.ARTICLE, articles=[long_read]))
        assert rendered.html_bytes > GMAIL_CLIP_BYTES
        assert any("Gmail clips" in w for w in rendered.warnings)


class TestErrors:
    def test_undefined_attribute_names_template_and_line(self, settings: Settings) -> None:
        path = settings.templates_dir / "digest.html"
        lines = path.read_text().splitlines()
        number = next(i for i, line in enumerate(lines, 1) if "article | summary" in line)
        lines[number - 1] = lines[number - 1].replace("article | summary", "article.titel")
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(RenderError) as caught:
            Renderer(settings).render(make_content())
        assert f"digest.html:{number}:" in str(caught.value)
        assert "titel" in str(caught.value)

    def test_syntax_error_names_template_and_line(self, settings: Settings) -> None:
        (settings.templates_dir / "digest.txt").write_text("line one\n{% if %}\n")
        with pytest.raises(RenderError, match=r"digest\.txt:2: syntax error"):
            Renderer(settings).render(make_content())

    def test_missing_template(self, renderer: Renderer) -> None:
        listing = replace(make_content().mailing_list, template="weekly")
        with pytest.raises(RenderError, match=r"'weekly\.html' not found"):
            renderer.render(make_content(mailing_list=listing))

    def test_template_name_cannot_leave_the_folder(self, renderer: Renderer) -> None:
        listing = replace(make_content().mailing_list, template="../secrets")
        with pytest.raises(ConfigError, match="invalid template name"):
            renderer.render(make_content(mailing_list=listing))

    def test_unknown_timezone(self, renderer: Renderer) -> None:
        listing = replace(make_content().mailing_list, timezone="Mars/Olympus")
        with pytest.raises(ConfigError, match="unknown timezone 'Mars/Olympus'"):
            renderer.render(make_content(mailing_list=listing))

    def test_missing_templates_folder(self, tmp_path: Path) -> None:
        with pytest.raises(RenderError, match="templates folder not found"):
            Renderer(Settings(home=tmp_path))
