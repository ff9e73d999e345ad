"""``/subscribe/{list}`` over real HTTP (uvicorn on 127.0.0.1), as an attacker would try it:
enumeration, floods, robots, forged and replayed links, framing."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests

from newsletter.config import Settings
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import Store, suppressions
from newsletter.web import create_app
from tests.servers.webapp import WebApp
from tests.signup_support import (
    LIST,
    MEMBER,
    Clock,
    journal_rows,
    link_in,
    outbox_rows,
    request_rows,
    sent_messages,
    take_signups,
    text_of,
    token_of,
)

STARTED = re.compile(r'name="started" value="([^"]+)"')
#: Headers that differ between any two answers, whatever they say.
PER_ANSWER = {"date", "content-length"}


@dataclass
class Site:
    web: WebApp
    store: Store
    clock: Clock
    settings: Settings

    def form_page(self, list_id: str = LIST, query: str = "") -> requests.Response:
        return self.web.session.get(self.web.url(f"/subscribe/{list_id}{query}"))

    def started(self) -> str:
        found = STARTED.search(self.form_page().text)
        assert found
        return found.group(1)

    def sign_up(self, email: str, *, name: str = "", wait: float = 10, **fields: str
                ) -> requests.Response:
        data = {"email": email, "name": name, "website": "", "started": self.started(), **fields}
        self.clock.advance(seconds=wait)
        return self.web.session.post(self.web.url(f"/subscribe/{LIST}"), data=data,
                                     allow_redirects=False)


@pytest.fixture
def site(settings: Settings, store: Store) -> Iterator[Site]:
    clock = Clock()
    store.clock = clock
    configured = take_signups(settings)
    with WebApp(create_app(configured, store)) as web:
        yield Site(web, store, clock, configured)


def answer_of(response: requests.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in PER_ANSWER}
    return response.status_code, response.content, headers


def test_the_answer_is_the_same_for_every_kind_of_address_and_for_robots(site: Site) -> None:
    with site.store.engine.begin() as conn:
        suppressions.add(conn, "bounced@example.org", SuppressionReason.BOUNCED_HARD,
                         at=site.clock.at)
        suppressions.add(conn, "left@example.org", SuppressionReason.UNSUBSCRIBED,
                         scope=ALL_LISTS, at=site.clock.at)
    site.sign_up("pending@example.org")
    site.clock.advance(minutes=1)
    answers = {
        "new": site.sign_up("new@example.org"),
        "pending": site.sign_up("pending@example.org"),
        "subscribed": site.sign_up(MEMBER),
        "bounced": site.sign_up("bounced@example.org"),
        "unsubscribed": site.sign_up("left@example.org"),
        "honeypot": site.sign_up("robot@example.org", website="http://spam.example"),
        "too fast": site.sign_up("hasty@example.org", wait=0),
    }
    first = answer_of(answers["new"])
    assert first[0] == 200 and b"Check your inbox" in first[1]
    for kind, response in answers.items():
        assert answer_of(response) == first, kind
    sent = sorted((m["to_email"], m["kind"]) for m in outbox_rows(site.store))
    assert sent == [("jose.nunez@example.org", "notice"), ("left@example.org", "confirm"),
                    ("new@example.org", "confirm"), ("pending@example.org", "confirm")]


def test_two_hundred_rapid_sign_ups_from_one_client_are_throttled(site: Site) -> None:
    started = site.started()
    site.clock.advance(seconds=10)
    url = site.web.url(f"/subscribe/{LIST}")
    statuses: list[int] = []
    bodies: set[bytes] = set()
    lock = threading.Lock()

    def flood(start: int) -> None:
        session = requests.Session()
        session.trust_env = False
        for n in range(start, 200, 4):
            response = session.post(url, data={"email": f"flood{n}@example.org",
                                               "started": started})
            with lock:
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert 0 < int(response.headers["Retry-After"]) <= 600
                    bodies.add(response.content)

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(statuses) == 200
    assert statuses.count(200) == site.settings.signup_client_limit
    assert statuses.count(429) == 200 - site.settings.signup_client_limit
    assert len(bodies) == 1 and b"Please wait" in bodies.pop()
    assert len(outbox_rows(site.store)) == site.settings.signup_client_limit


def confirm_link(site: Site, email: str = "ann@example.org") -> str:
    assert site.sign_up(email, name="Ann").status_code == 200
    return link_in([m for m in outbox_rows(site.store) if m["to_email"] == email][-1]["text"])


def path_of(link: str) -> str:
    return link.removeprefix("https://news.example.org")


def test_a_link_is_confirmed_by_its_button_not_by_opening_it(site: Site) -> None:
    path = path_of(confirm_link(site))
    for _ in range(3):  # scanners follow links, and a GET changes nothing
        page = site.web.session.get(site.web.url(path))
        assert page.status_code == 200 and "a***@example.org" in page.text
    assert journal_rows(site.store) == [] and request_rows(site.store)[0]["confirmed_at"] is None
    done = site.web.session.post(site.web.url(path))
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert [e["email"] for e in journal_rows(site.store)] == ["ann@example.org"]
    replayed = site.web.session.post(site.web.url(path))
    assert replayed.status_code == 400 and "cannot be used any more" in replayed.text
    assert site.web.session.get(site.web.url(path)).status_code == 400
    assert len(journal_rows(site.store)) == 1


def test_forged_altered_and_expired_links_change_nothing_and_say_so(site: Site) -> None:
    link = confirm_link(site)
    token = token_of(link)
    base = f"/subscribe/{LIST}/confirm/"
    # not the last character: its low bits are padding, and another letter may decode alike
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    for bad in (flipped, token[:-8], "forged", token.replace(".", "", 1)):
        for method in ("GET", "POST"):
            answer = site.web.session.request(method, site.web.url(base + bad))
            assert answer.status_code == 400 and "not valid" in answer.text, (bad, method)
    other_list = site.web.session.post(site.web.url(f"/subscribe/every-article/confirm/{token}"))
    assert other_list.status_code == 404  # that list takes no sign-ups at all
    site.clock.advance(hours=49)
    expired = site.web.session.post(site.web.url(base + token))
    assert expired.status_code == 400 and "expired" in expired.text
    assert journal_rows(site.store) == []
    assert request_rows(site.store)[0]["confirmed_at"] is None


def test_lists_that_take_no_sign_ups_have_no_pages(site: Site) -> None:
    for path in ("/subscribe/every-article", "/subscribe/nope", "/subscribe/every-article/"
                 "confirm/abc"):
        assert site.web.session.get(site.web.url(path)).status_code == 404
        assert site.web.session.post(site.web.url(path), data={"email": "a@example.org"}
                                     ).status_code == 404
    assert outbox_rows(site.store) == []


def test_an_invalid_address_gets_the_form_again_with_the_problem(site: Site) -> None:
    answer = site.sign_up("not-an-address", name="Ann")
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text and 'value="not-an-address"' in answer.text
    assert 'role="alert"' in answer.text
    assert outbox_rows(site.store) == []


def test_a_pasted_form_without_a_stamp_is_shown_again_filled_in_and_sends_nothing(
    site: Site
) -> None:
    answer = site.web.session.post(site.web.url(f"/subscribe/{LIST}"),
                                   data={"email": "pasted@example.org", "name": "Pat"})
    assert answer.status_code == 200 and "once more" in answer.text
    assert 'value="pasted@example.org"' in answer.text and 'value="Pat"' in answer.text
    assert STARTED.search(answer.text)
    assert outbox_rows(site.store) == [] and request_rows(site.store) == []


def test_only_the_embedded_form_may_be_framed_and_only_by_the_publication(site: Site) -> None:
    page = site.form_page()
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    embedded = site.form_page(query="?embed=1")
    assert "frame-ancestors https://news.example.org;" in \
        embedded.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in embedded.headers
    assert 'name="embed" value="1"' in embedded.text and 'class="embed"' in embedded.text
    found = STARTED.search(embedded.text)
    assert found
    site.clock.advance(seconds=10)
    answer = site.web.session.post(site.web.url(f"/subscribe/{LIST}"), data={
        "email": "framed@example.org", "started": found.group(1), "embed": "1"})
    assert "frame-ancestors https://news.example.org;" in answer.headers["Content-Security-Policy"]
    assert site.web.session.get(site.web.url("/unsubscribe/x")).headers["X-Frame-Options"] == \
        "DENY"


def test_the_served_app_sends_the_confirmation_at_once(
    settings: Settings, store: Store
) -> None:
    configured = take_signups(settings)
    with WebApp(create_app(configured, store), lifespan="on") as web:
        page = web.session.get(web.url(f"/subscribe/{LIST}"))
        found = STARTED.search(page.text)
        assert found
        store.clock = Clock(datetime.now(UTC) + timedelta(minutes=1))  # a minute later
        web.session.post(web.url(f"/subscribe/{LIST}"),
                         data={"email": "quick@example.org", "started": found.group(1)})
        arrived = threading.Event()
        for _ in range(300):  # the poll would take five seconds; a wake-up takes none
            if sent_messages(configured):
                arrived.set()
                break
            arrived.wait(0.1)
    assert arrived.is_set()
    [message] = sent_messages(configured)
    assert "/subscribe/weekly/confirm/" in text_of(message)
    assert outbox_rows(store)[0]["status"] == "sent"
