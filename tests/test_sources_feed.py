"""FeedSource against a real HTTP server on 127.0.0.1 serving the sample feeds."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import ConfigError, SourceError
from newsletter.models import Article
from newsletter.sources import FetchResult, FetchState, SourceSpec, make_source
from newsletter.sources.identity import content_hash
from tests.servers.feedserver import FeedServer

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
ETAG = '"v1-abc"'
LAST_MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, feed_timeout=5.0, feed_max_bytes=256 * 1024)


def fetch(
    url: str, settings: Settings, state: FetchState | None = None, *, allow_private: bool = True
) -> FetchResult:
    """Fetch as source ``news``, which may reach 127.0.0.1 (where the test server is) by default."""
    spec = SourceSpec(id="news", type="feed", url=url, allow_private_network=allow_private)
    return make_source(spec, settings).fetch(state or FetchState())


def serve_fixture(server: FeedServer, name: str, content_type: str, **options: object) -> str:
    server.route(f"/{name}", (FEEDS / name).read_bytes(), content_type=content_type, **options)
    return server.url(f"/{name}")


def by_uid(result: FetchResult) -> dict[str, Article]:
    return {article.uid: article for article in result.articles}


# --- formats --------------------------------------------------------------------------------


def test_rss2_entry_is_mapped_field_by_field(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "rss2.xml", "application/rss+xml; charset=utf-8")

    result = fetch(url, settings)

    assert result.problems == []
    first = result.articles[0]
    assert first.source_id == "news"
    assert first.uid == "tag:notes.example.org,2024:spring-river"
    assert first.title == "Spring & the river"
    assert first.url == "https://notes.example.org/2024/spring-river"
    assert first.published == datetime(2024, 5, 1, 7, 30, tzinfo=UTC)
    assert first.author == "Ada Lovelace"
    assert first.tags == ("rivers", "spring")
    assert first.image_url == "https://notes.example.org/photos/river-large.jpg"
    assert first.summary_html == "The river rose early this year."
    assert first.content_html == (
        '<p>The river rose <em>early</em> this year. <a href="https://notes.example.org/maps/river"'
        ' rel="noopener">See the map</a>.</p><img src="https://notes.example.org/2024/photos/'
        'river.jpg" width="600" height="450" alt="" style="max-width:100%;height:auto">'
    )


def test_rss2_uid_falls_back_to_link_then_to_a_hash(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "rss2.xml", "application/rss+xml")

    _, undated, linkless = fetch(url, settings).articles

    assert undated.uid == "https://notes.example.org/2024/undated"
    assert undated.published is None
    assert undated.image_url == "https://notes.example.org/thumbs/undated.png"
    assert undated.content_html == "<p>No date on this one.</p>"
    expected_hash = content_hash("Linkless", "Neither guid nor link.")
    assert linkless.uid == f"sha256:{expected_hash}"
    assert linkless.content_hash == expected_hash
    assert linkless.url == ""


def test_rss1_rdf_feed(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "rss1.xml", "application/rdf+xml")

    one, two = fetch(url, settings).articles

    assert (one.uid, one.title, one.author, one.tags) == (
        "https://rdf.example.org/one",
        "First RDF item",
        "Grace Hopper",
        ("compilers",),
    )
    assert one.published == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert one.content_html == "One <b>bold</b> claim."
    assert two.published == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


def test_atom_feed_with_xml_base_and_html_title(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "atom.xml", "application/atom+xml")

    tables, updated_only = fetch(url, settings).articles

    assert tables.uid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert tables.title == "Tables and figures"
    assert tables.url == "https://atom.example.org/blog/posts/tables"
    assert tables.published == datetime(2024, 6, 1, 12, 15, tzinfo=UTC)
    assert tables.author == "Linus Example"
    assert tables.tags == ("data", "html")
    assert tables.image_url == "https://atom.example.org/blog/images/cover.png"
    assert tables.summary_html == "<p>A short summary &amp; nothing more.</p>"
    assert '<a href="https://atom.example.org/about" rel="noopener">' in tables.content_html
    assert 'src="https://atom.example.org/blog/img/chart.png" alt="Chart"' in tables.content_html
    assert "iframe" not in tables.content_html and "evil" not in tables.content_html
    assert updated_only.published == datetime(2024, 5, 19, 22, 0, tzinfo=UTC)
    assert updated_only.content_html == "<p>XHTML <strong>content</strong>.</p>"


def test_json_feed_1_1(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "feed11.json", "application/feed+json")

    result = fetch(url, settings)

    hello, plain, bad_link = result.articles
    assert hello.uid == "https://json.example.org/posts/1"
    assert hello.title == "Hello, JSON"
    assert hello.published == datetime(2024, 7, 1, 8, 0, tzinfo=UTC)
    assert hello.author == "Item Author"
    assert hello.tags == ("greetings", "json")
    assert hello.image_url == "https://json.example.org/img/hello-large.png"
    assert hello.summary_html == "<p>A first post &amp; a greeting.</p>"
    assert hello.content_html == (
        '<p>Hello <a href="https://json.example.org/about" rel="noopener">about</a></p>'
        '<img src="https://json.example.org/img/hello.png" alt="" width="600"'
        ' style="max-width:100%;height:auto">'
    )
    assert plain.uid == "2"
    assert plain.author == "Feed Author"
    assert plain.published is None
    assert plain.content_html == "<p>Plain text only.</p><p>Second paragraph &lt;not a tag&gt;.</p>"
    assert plain.title == "Plain text only. Second paragraph <not a tag>."
    assert bad_link.url == "" and bad_link.uid == "3"
    assert result.problems == [
        f"{url} items[1]: date_published 'last tuesday' is not an RFC 3339 date, left undated",
        f"{url} items[2]: not an object, skipped",
    ]


def test_json_feed_1_0_detected_by_version_key(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "feed10.json", "text/plain")

    (article,) = fetch(url, settings).articles

    assert (article.uid, article.title, article.author) == ("old-1", "One point oh", "Old Author")
    assert article.published == datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_external_entities_are_not_expanded(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "xxe.xml", "application/xml")

    (article,) = fetch(url, settings).articles

    # The reference stays text: no file was read into the article.
    assert article.content_html.startswith("Value: &amp;secret")
    assert article.title.startswith("Entity &secret")


def test_redirect_is_followed_and_the_final_address_is_the_base(
    server: FeedServer, settings: Settings
) -> None:
    server.route("/old", status=301, headers={"Location": "/feeds/current.json"})
    body = '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "r", "url": "p/1"}]}'
    server.route("/feeds/current.json", body, content_type="application/feed+json")

    (article,) = fetch(server.url("/old"), settings).articles

    assert article.url == server.url("/feeds/p/1")


# --- broken documents -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ((FEEDS / "malformed.xml").read_bytes(), "application/rss+xml", "is not a readable feed"),
        (b"<html><body><p>Hello</p></body></html>", "text/html", "not an XML media type"),
        (b"", "application/rss+xml", "is not an RSS, Atom or JSON"),
        (
            b'{"version": "https://jsonfeed.org/version/1.1", "items": [',
            "application/feed+json",
            "is not valid JSON",
        ),
        (b'{"hello": "world"}', "application/json", "is JSON but not a JSON Feed"),
        (
            b'{"version": "https://jsonfeed.org/version/1.1"}',
            "application/feed+json",
            "JSON Feed has no 'items' list",
        ),
    ],
)
def test_unreadable_documents_raise_source_error(
    server: FeedServer, settings: Settings, body: bytes, content_type: str, reason: str
) -> None:
    server.route("/feed", body, content_type=content_type)

    with pytest.raises(SourceError) as caught:
        fetch(server.url("/feed"), settings)

    assert caught.value.source == "news"
    assert reason in caught.value.reason
    assert server.url("/feed") in caught.value.reason


# --- HTTP -----------------------------------------------------------------------------------


def test_conditional_get_round_trip(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(
        server, "rss2.xml", "application/rss+xml", etag=ETAG, last_modified=LAST_MODIFIED
    )

    first = fetch(url, settings)
    second = fetch(url, settings, FetchState(etag=first.etag, last_modified=first.last_modified))

    assert (first.etag, first.last_modified, first.not_modified) == (ETAG, LAST_MODIFIED, False)
    assert len(first.articles) == 3
    assert second == FetchResult(
        articles=[], etag=ETAG, last_modified=LAST_MODIFIED, not_modified=True
    )
    plain, conditional = server.requests_for("/rss2.xml")
    assert "if-none-match" not in plain.headers and "if-modified-since" not in plain.headers
    assert conditional.headers["if-none-match"] == ETAG
    assert conditional.headers["if-modified-since"] == LAST_MODIFIED
    assert conditional.status == 304


def test_last_modified_alone_gives_304(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "atom.xml", "application/atom+xml", last_modified=LAST_MODIFIED)

    result = fetch(url, settings, FetchState(last_modified=LAST_MODIFIED))

    assert result.not_modified and result.articles == []
    assert result.last_modified == LAST_MODIFIED
    assert server.requests_for("/atom.xml")[0].status == 304


def test_request_names_the_reader_and_the_formats(server: FeedServer, settings: Settings) -> None:
    url = serve_fixture(server, "rss1.xml", "application/rdf+xml")

    fetch(url, settings)

    (request,) = server.requests_for("/rss1.xml")
    assert request.headers["user-agent"].startswith("newsletter")
    assert "application/feed+json" in request.headers["accept"]


def test_proxy_variables_in_the_environment_are_ignored(
    server: FeedServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    url = serve_fixture(server, "rss1.xml", "application/rdf+xml")

    assert len(fetch(url, settings).articles) == 2


def test_configured_proxy_is_used(server: FeedServer, settings: Settings) -> None:
    serve_fixture(server, "rss1.xml", "application/rdf+xml")
    proxied = settings.with_changes(http_proxy=server.url(""))

    # The proxy is the operator's: on 127.0.0.1 it needs no opt-in, only fetched addresses do.
    result = fetch("http://feeds.example.invalid/rss1.xml", proxied, allow_private=False)

    assert len(result.articles) == 2
    (request,) = server.requests_for("/rss1.xml")
    assert request.target == "http://feeds.example.invalid/rss1.xml"


def test_same_guid_with_edited_content_keeps_uid_and_changes_hash(
    server: FeedServer, settings: Settings
) -> None:
    original = (FEEDS / "rss2.xml").read_text()
    url = serve_fixture(server, "rss2.xml", "application/rss+xml")
    before = by_uid(fetch(url, settings))
    server.route("/rss2.xml", original.replace("rose <em>early</em>", "rose <em>late</em>"))

    after = by_uid(fetch(url, settings))

    uid = "tag:notes.example.org,2024:spring-river"
    assert before.keys() == after.keys()
    assert before[uid].content_hash != after[uid].content_hash
    assert "late" in after[uid].content_html
    undated = "https://notes.example.org/2024/undated"
    assert before[undated].content_hash == after[undated].content_hash


def test_slow_server_times_out(server: FeedServer, settings: Settings) -> None:
    server.route("/slow", b"<rss/>", delay=60.0)  # released when the server closes

    with pytest.raises(SourceError, match=r"did not answer within 0\.2s"):
        fetch(server.url("/slow"), settings.with_changes(feed_timeout=0.2))


@pytest.mark.parametrize("status", [404, 410, 500, 503])
def test_http_error_status_raises(server: FeedServer, settings: Settings, status: int) -> None:
    server.route("/feed", b"nope", status=status, content_type="text/plain")

    with pytest.raises(SourceError) as caught:
        fetch(server.url("/feed"), settings)

    assert caught.value.reason.startswith(f"{server.url('/feed')} answered HTTP {status} ")


def test_unrouted_path_is_a_404_source_error(server: FeedServer, settings: Settings) -> None:
    with pytest.raises(SourceError, match="answered HTTP 404 Not Found"):
        fetch(server.url("/missing.xml"), settings)


def test_connection_refused_raises(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.

    with pytest.raises(SourceError) as caught:
        fetch(f"http://127.0.0.1:{port}/feed.xml", settings)

    url = f"http://127.0.0.1:{port}/feed.xml"
    assert caught.value.reason.startswith(f"could not read {url}: ")
    assert caught.value.reason.endswith("Connection refused")


def test_server_trickling_its_answer_runs_out_of_time(
    server: FeedServer, settings: Settings
) -> None:
    # Each piece arrives well within the 0.15 s wait; the whole would take 40 s.
    server.route("/trickle", b"<!-- x -->", repeat=2000, pause=0.02, chunked=True)

    with pytest.raises(SourceError, match=r"took longer than 0\.9s to download"):
        fetch(server.url("/trickle"), settings.with_changes(feed_timeout=0.15))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "javascript:alert(1)", "feed.xml"]
)
def test_non_http_urls_are_refused(settings: Settings, url: str) -> None:
    with pytest.raises(SourceError, match="only http:// and https:// feeds are fetched"):
        fetch(url, settings)


def test_missing_url_is_refused(settings: Settings) -> None:
    with pytest.raises(SourceError, match="no url is set"):
        fetch("", settings)


TEN_MB_CHUNK = b"<!-- padding -->" * 4096  # 64 KiB
TEN_MB_REPEAT = 160


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_ten_megabyte_feed_is_refused_without_reading_it(
    server: FeedServer, settings: Settings, chunked: bool
) -> None:
    route = server.route("/huge.xml", TEN_MB_CHUNK, repeat=TEN_MB_REPEAT, chunked=chunked)
    assert route.length == 10 * 1024 * 1024

    with pytest.raises(SourceError) as caught:
        fetch(server.url("/huge.xml"), settings)

    assert caught.value.source == "news"
    assert "over the limit of 262144 bytes" in caught.value.reason
    (request,) = server.requests_for("/huge.xml")
    request.wait()
    assert not request.completed
    assert request.bytes_sent < route.length // 2


def test_unknown_source_type_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="unknown type 'gopher'"):
        make_source(SourceSpec(id="x", type="gopher"), settings)


# --- entries with nothing to show ---------------------------------------------------------------

EMPTY_ENTRIES_RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Mixed</title>
<item><title>Kept</title><link>https://mixed.example.org/kept</link></item>
<item></item>
<item><guid isPermaLink="false">blank-2</guid><description>  </description></item>
<item><description><![CDATA[<img src="https://mixed.example.org/a.png" alt="A">]]>
</description></item>
<item><description>The harbour wall was rebuilt in a week, stone by stone.</description></item>
</channel></rss>
"""


def test_entries_without_title_content_or_link_are_skipped_and_named(
    server: FeedServer, settings: Settings
) -> None:
    server.route("/mixed.xml", EMPTY_ENTRIES_RSS, content_type="application/rss+xml")
    url = server.url("/mixed.xml")

    result = fetch(url, settings)

    kept, picture, untitled = result.articles
    assert kept.title == "Kept"
    assert untitled.title == "The harbour wall was rebuilt in a week, stone by stone."
    assert picture.title == "" and 'src="https://mixed.example.org/a.png"' in picture.content_html
    assert result.problems == [
        f"{url} entry 2: no title, no content and no link; skipped",
        f"{url} entry 3 (id blank-2): no title, no content and no link; skipped",
        f"{url} entry 4: no title and no text to make one from; give the issue a subject",
    ]


def test_json_items_without_title_content_or_link_are_skipped_and_named(
    server: FeedServer, settings: Settings
) -> None:
    items = [
        {"id": "empty", "content_text": " "},
        {"id": "summary-only", "summary": "Only a summary, but a title can come from it."},
    ]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items})
    server.route("/items.json", body, content_type="application/feed+json")
    url = server.url("/items.json")

    result = fetch(url, settings)

    (summary_only,) = result.articles
    assert summary_only.title == "Only a summary, but a title can come from it."
    assert result.problems == [
        f"{url} items[0] (id empty): no title, no content and no link; skipped"
    ]
