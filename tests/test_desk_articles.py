"""The desk's articles page over real HTTP, on SQLite and PostgreSQL: what was collected as
the store has it, keyset pages, the source filter, and drafting an issue from the articles
ticked (``editor.editing.draft``), its refusals shown on the page naming the field."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import requests
from markupsafe import escape
from sqlalchemy import insert

from newsletter.editor import editing
from newsletter.schedule import cadence
from newsletter.schedule.cadence import ListOutcome
from newsletter.sources.collect import CollectReport, SourceReport
from newsletter.store import articles as article_store
from newsletter.store import issues as issue_store
from newsletter.store.tables import articles
from newsletter.web.desk.articles import collected
from tests.desk_support import (
    EDITOR,
    XSS_TITLE,
    Desk,
    alert_of,
    csrf_of,
    signed_in,
)
from tests.servers.webapp import WebApp
from tests.test_api_requests import add_folder_source


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


ROW_ID = re.compile(r'name="article" value="(\d+)"')
OLDER = re.compile(r'href="(/desk/articles\?[^"]*after=[^"]+)">Older articles<')


def esc(text: str) -> str:
    """As the desk's templates escape it."""
    return str(escape(text))


def shown_ids(page: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(page)]


def catalogue_ids(desk: Desk, source_id: str | None = None) -> list[int]:
    with desk.store.engine.connect() as conn:
        return [r.id for r in article_store.catalogue(conn, source_id=source_id)]


def add_articles(desk: Desk, count: int, source_id: str = "articles", *, hours: int = 0) -> None:
    """``count`` articles published an hour apart, ``hours`` before now and earlier; every
    fourth has no date (it sorts by when it was first seen)."""
    now = desk.store.now()
    with desk.store.engine.begin() as conn:
        for n in range(count):
            published = now - timedelta(hours=hours + n)
            conn.execute(insert(articles).values(
                source_id=source_id, uid=f"{source_id}-{hours}-{n}", title=f"{source_id} {n}",
                url=f"https://news.example.org/{source_id}/{n}", author="",
                published_at=None if n % 4 == 3 else published, summary_html="",
                content_html="<p>x</p>", image_url="", tags=[], content_hash="x",
                first_seen_at=published, updated_at=now, archived=0,
            ))


def walk(client: requests.Session, web: WebApp, path: str) -> list[int]:
    """Every article id shown, following "Older articles" to the last page."""
    seen: list[int] = []
    pages = 0
    while path:
        page = client.get(web.url(html.unescape(path)))
        assert page.status_code == 200, page.text
        seen += shown_ids(page.text)
        found = OLDER.search(page.text)
        path = found.group(1) if found else ""
        pages += 1
        assert pages < 50
    return seen


def draft(client: requests.Session, web: WebApp, data: list[tuple[str, str]]) -> requests.Response:
    token = csrf_of(client.get(web.url("/desk/articles")).text)
    return client.post(web.url("/desk/articles/draft"), data=[("csrf", token), *data],
                       allow_redirects=False)


def issue_count(desk: Desk) -> int:
    with desk.store.engine.connect() as conn:
        return len(issue_store.find(conn, limit=10_000))


def test_the_page_shows_what_the_store_holds(desk: Desk, web: WebApp) -> None:
    client = signed_in(web)
    with desk.store.engine.connect() as conn:
        rows = article_store.catalogue(conn)
        carried = article_store.carriers(conn, [r.id for r in rows])

    page = client.get(web.url("/desk/articles")).text

    assert shown_ids(page) == [r.id for r in rows]  # newest first, all on one page
    for row in rows:
        url = esc(row.url)
        assert f'<a href="{url}" rel="noopener noreferrer">{esc(row.title)}</a>' in page
        assert f"{row.first_seen_at:%Y-%m-%d %H:%M} UTC" in page
        if row.published_at:
            assert f"{row.published_at:%Y-%m-%d %H:%M} UTC" in page
        for carrier in carried[row.id]:
            assert (f'<a href="/desk/issues/{carrier.issue_id}">#{carrier.issue_id}</a> '
                    f"{carrier.list_id} ({carrier.state})") in page
    assert any(carried[r.id] for r in rows)


def test_pages_follow_the_catalogue_and_new_articles_do_not_shift_them(
    desk: Desk, web: WebApp
) -> None:
    collected = len(catalogue_ids(desk))
    add_articles(desk, 120, hours=24 * 400)  # older than the example's articles
    client = signed_in(web)
    first = client.get(web.url("/desk/articles")).text
    assert len(shown_ids(first)) == 50
    second_path = html.unescape(OLDER.search(first).group(1))  # type: ignore[union-attr]
    before = client.get(web.url(second_path)).text

    add_articles(desk, 3, source_id="articles", hours=0)  # collected meanwhile, newest

    assert shown_ids(client.get(web.url(second_path)).text) == shown_ids(before)
    everything = walk(client, web, "/desk/articles")
    assert everything == catalogue_ids(desk)
    assert len(everything) == len(set(everything)) == collected + 123


def test_the_source_filter(desk: Desk, web: WebApp) -> None:
    toml = desk.settings.subscribers_dir / "publication.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[sources.articles]", '[sources.wire]\ntype = "folder"\npath = "wire"\n\n[sources.articles]'
    ), encoding="utf-8")
    (desk.settings.home / "wire").mkdir()
    add_articles(desk, 60, source_id="wire", hours=5)
    client = signed_in(web)

    wire = walk(client, web, "/desk/articles?source=wire")
    own = walk(client, web, "/desk/articles?source=articles")
    unknown = client.get(web.url("/desk/articles"), params={"source": "<nope>"})

    assert wire == catalogue_ids(desk, "wire") and len(wire) == 60
    assert own == catalogue_ids(desk, "articles")
    assert unknown.status_code == 422
    assert alert_of(unknown) == "Source: there is no source '<nope>'"
    assert "<nope>" not in unknown.text
    assert shown_ids(unknown.text) == catalogue_ids(desk)[:50]  # and the newest instead


@pytest.mark.parametrize("after", ["x", "1_", "_1", "9" * 40 + "_1", "-1_-1_-1"])
def test_a_broken_page_link_says_so(desk: Desk, web: WebApp, after: str) -> None:
    response = signed_in(web).get(web.url("/desk/articles"), params={"after": after})

    assert response.status_code == 422
    assert alert_of(response).startswith("Page: that link to a page of articles is broken")


def test_markup_in_a_title_is_text(desk: Desk, web: WebApp) -> None:
    page = signed_in(web).get(web.url("/desk/articles")).text

    assert XSS_TITLE not in page
    assert esc(XSS_TITLE) in page
    assert "<img" not in page


def test_a_link_that_is_not_http_is_shown_as_text(desk: Desk, web: WebApp) -> None:
    with desk.store.engine.begin() as conn:
        conn.execute(articles.update().where(articles.c.uid == "hostile")
                     .values(url="javascript:alert(1)"))

    page = signed_in(web).get(web.url("/desk/articles")).text

    assert "javascript:" not in page
    assert esc(XSS_TITLE) in page


def test_drafting_from_a_choice_keeps_the_order_and_records_who(
    desk: Desk, web: WebApp
) -> None:
    client = signed_in(web)
    page = client.get(web.url("/desk/articles")).text
    chosen = shown_ids(page)[2:5]  # as ticked on the page, top to bottom

    response = draft(client, web, [*(("article", str(i)) for i in chosen),
                                   ("list", "every-article"), ("again", "1")])

    assert response.status_code == 303, alert_of(response)
    issue_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert response.headers["Location"] == f"/desk/issues/{issue_id}"
    with desk.store.engine.connect() as conn:
        record = issue_store.get(conn, issue_id)
        history = issue_store.events(conn, issue_id)
        assert [a.id for a in editing.articles_of(conn, issue_id)] == chosen
    assert (record.list_id, str(record.state)) == ("every-article", "draft")
    assert [e["by"] for e in history] == [f"desk:{EDITOR}"]
    shown = client.get(web.url(f"/desk/issues/{issue_id}"))
    assert shown.status_code == 200


def test_an_article_the_list_already_has_is_refused_unless_again(
    desk: Desk, web: WebApp
) -> None:
    with desk.store.engine.connect() as conn:
        taken = issue_store.article_ids(conn, desk.issue_id)[0]
    client = signed_in(web)
    before = issue_count(desk)

    refused = draft(client, web, [("article", str(taken)), ("list", "weekly")])

    assert refused.status_code == 422
    assert alert_of(refused) == (
        f"Articles: article {taken} is already in issue {desk.issue_id} of weekly (draft); "
        "tick “Again” to put it in another issue too"
    )
    assert f'value="{taken}" checked' in refused.text  # the form as it was sent
    assert issue_count(desk) == before
    again = draft(client, web, [("article", str(taken)), ("list", "weekly"), ("again", "1")])
    assert again.status_code == 303
    assert issue_count(desk) == before + 1


@pytest.mark.parametrize(("data", "expected"), [
    ([("list", "weekly")], "Articles: tick at least one article to draft from"),
    ([("article", "1")], "List: choose the list the issue is for"),
    ([("article", "1"), ("list", "<b>nope</b>")], "List: there is no list '<b>nope</b>'"),
    ([("article", "1x"), ("list", "weekly")], "Articles: '1x' is not an id"),
    ([("article", "999999"), ("list", "weekly")], "Articles: no article with id 999999"),
])
def test_bad_choices_name_their_field(
    desk: Desk, web: WebApp, data: list[tuple[str, str]], expected: str
) -> None:
    before = issue_count(desk)

    response = draft(signed_in(web), web, data)

    assert response.status_code == 422
    assert alert_of(response) == expected
    assert "<b>nope" not in response.text
    assert issue_count(desk) == before


# -- collect now -----------------------------------------------------------------------------
def publish(desk: Desk, slug: str, title: str) -> None:
    """An article written into the publication's Markdown folder, dated now."""
    (desk.settings.home / "articles" / f"{slug}.md").write_text(
        f'---\ntitle: "{title}"\ndate: {desk.store.now():%Y-%m-%dT%H:%M:%SZ}\n---\n\nNews.\n',
        encoding="utf-8")


def collect_now(client: requests.Session, web: WebApp) -> requests.Response:
    token = csrf_of(client.get(web.url("/desk/articles")).text)
    return client.post(web.url("/desk/articles/collect"), data={"csrf": token},
                       allow_redirects=False)


def test_collect_now_reads_every_source_and_says_what_came_of_it(
    desk: Desk, web: WebApp
) -> None:
    client = signed_in(web)
    cadence.after_collection(desk.publisher)  # the sample articles' instant issues, made
    publish(desk, "harbour-lights", "Harbour lights switched on")

    done = collect_now(client, web)

    assert done.status_code == 303
    assert done.headers["Location"].startswith("/desk/articles?notice=")
    page = client.get(web.url(done.headers["Location"])).text
    notice = re.search(r'<p class="notice" role="status">([^<]+)</p>', page)
    assert notice, page
    with desk.store.engine.connect() as conn:
        made = issue_store.find(conn, list_id="every-article", limit=1)[0]
        history = issue_store.events(conn, made.id)
    assert html.unescape(notice.group(1)) == (
        f"Collected 1 new article from 1 source. every-article: issue {made.id} queued.")
    assert "Harbour lights switched on" in page
    assert made.subject.endswith("Harbour lights switched on") and made.state == "queued"
    assert {e["by"] for e in history} == {f"desk:{EDITOR}"}

    again = client.get(web.url(collect_now(client, web).headers["Location"])).text
    assert "Collected 0 new articles from 1 source." in again
    with desk.store.engine.connect() as conn:
        assert issue_store.find(conn, list_id="every-article", limit=1)[0].id == made.id


def test_collect_now_reads_a_source_added_to_the_file_since(desk: Desk, web: WebApp) -> None:
    client = signed_in(web)
    assert client.get(web.url("/desk/articles")).status_code == 200  # the file is kept
    add_folder_source(desk.settings.home, "notices", f"---\ntitle: Notice\n"
                      f"date: {desk.store.now():%Y-%m-%dT%H:%M:%SZ}\n---\n\nText.\n")

    page = client.get(web.url(collect_now(client, web).headers["Location"])).text

    assert "Collected 1 new article from 2 sources." in page


def test_an_edit_of_the_publication_file_shows_without_a_restart(
    desk: Desk, web: WebApp
) -> None:
    client = signed_in(web)
    before = client.get(web.url("/desk/articles")).text
    config = desk.settings.subscribers_dir / "publication.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("— weekly digest", "— the Friday paper", 1), encoding="utf-8")

    after = client.get(web.url("/desk/articles")).text

    assert "— weekly digest (weekly)</option>" in before
    assert "— the Friday paper (weekly)</option>" in after


def test_a_notice_the_desk_did_not_sign_is_not_shown(desk: Desk, web: WebApp) -> None:
    client = signed_in(web)
    other = signed_in(web)  # another session signs with another secret
    elsewhere = collect_now(other, web).headers["Location"]

    forged = client.get(web.url("/desk/articles"), params={"notice": "Your account is closed"})
    borrowed = client.get(web.url(elsewhere))

    for page in (forged, borrowed):
        assert page.status_code == 200 and 'class="notice"' not in page.text
    assert "Your account is closed" not in forged.text


def test_collect_now_with_a_broken_publication_file_says_where(
    desk: Desk, web: WebApp
) -> None:
    client = signed_in(web)
    token = csrf_of(client.get(web.url("/desk/articles")).text)
    config = desk.settings.subscribers_dir / "publication.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[oops\n", encoding="utf-8")

    page = client.post(web.url("/desk/articles/collect"), data={"csrf": token})

    assert page.status_code == 422
    assert alert_of(page).startswith("Collect now: ") and "publication.toml" in alert_of(page)


def test_the_notice_of_a_large_collection_stays_short() -> None:
    """It rides in the redirect's URL: hundreds of failing feeds must not make it long."""
    failing = tuple(SourceReport(f"feed-{n}", "error", error="timed out " * 100)
                    for n in range(300))
    made = ListOutcome("every-article", drafted=tuple(range(1, 61)), queued=tuple(range(1, 61)))

    said = collected(cadence.Collection(CollectReport(failing), [made]))

    assert len(said) < 2_000
    assert said.startswith("Collected 0 new articles from 300 sources. feed-0 could not be")
    assert "… and 295 more sources could not be read (the Status page has each)." in said
    assert said.endswith("every-article: issues 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, "
                         "14, 15, 16, 17, 18, 19, 20 and 40 more queued.")
