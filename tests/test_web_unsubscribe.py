"""RFC 8058 one-click unsubscribe, through a real uvicorn and real HTTP requests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest
from itsdangerous import Signer

from newsletter.config import Settings
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import Store
from newsletter.tokens import LEGACY_SALT, TokenSigner, unsubscribe_url
from newsletter.web import create_app
from tests.servers.webapp import SITE, WebApp, suppression_rows

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key.reveal())


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store, site=SITE)) as running:
        yield running


def link(
    web: WebApp, signer: TokenSigner, email: str = "jane@example.org", list_id: str = "weekly"
) -> str:
    return unsubscribe_url(web.url(""), signer, email, list_id)


def test_one_click_post_urlencoded_unsubscribes_without_redirect(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    response = web.session.post(link(web, signer), data=ONE_CLICK, allow_redirects=False)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert "Weekly digest" in response.text
    assert "set-cookie" not in response.headers
    [row] = suppression_rows(store)
    assert (row.email, row.scope, row.reason, row.source) == (
        "jane@example.org", "weekly", SuppressionReason.UNSUBSCRIBED, "one-click",
    )


def test_one_click_post_multipart_unsubscribes(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    response = web.session.post(
        link(web, signer), files={"List-Unsubscribe": (None, "One-Click")}, allow_redirects=False
    )

    assert response.status_code == 200
    assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    assert [(r.email, r.scope) for r in suppression_rows(store)] == [("jane@example.org", "weekly")]


def test_repeating_the_post_answers_200_and_changes_nothing(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = link(web, signer)
    first = web.session.post(url, data=ONE_CLICK, allow_redirects=False)
    before = suppression_rows(store)
    second = web.session.post(url, data=ONE_CLICK, allow_redirects=False)

    assert (first.status_code, second.status_code) == (200, 200)
    assert suppression_rows(store) == before
    assert len(before) == 1


def test_get_shows_a_confirmation_form_and_does_not_unsubscribe(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    response = web.session.get(link(web, signer), allow_redirects=False)

    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert "j***@example.org" in response.text
    assert "jane@example.org" not in response.text
    assert suppression_rows(store) == []


def test_the_confirmation_form_posts_like_a_browser(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = link(web, signer, "Sam.Smith@Example.org", ALL_LISTS)
    page = web.session.get(url)
    assert "every list of The Example Weekly" in page.text

    # What a browser submits for the page's form: its hidden field, to the page's own URL.
    response = web.session.post(
        url, data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": web.url("")},
        allow_redirects=False,
    )

    assert response.status_code == 200
    assert [(r.email, r.scope) for r in suppression_rows(store)] == [("sam.smith@example.org", "*")]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_tampered_and_truncated_tokens_are_refused_alike(
    web: WebApp, signer: TokenSigner, store: Store, method: str
) -> None:
    good = signer.sign("jane@example.org", "weekly")
    payload, _, signature = good.rpartition(".")
    # A character in the middle: the last one also carries base64 padding bits.
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    other_key = TokenSigner("another publication's key").sign("jane@example.org", "weekly")
    # Jane's signature under a payload naming someone else.
    tampered_payload = signer.sign("mallory@example.org", "weekly").rpartition(".")[0]
    bad_tokens = [
        f"{payload}.{flipped}", good[:-5], payload, other_key, f"{tampered_payload}.{signature}",
        "not-a-token",
    ]

    bodies = set()
    for token in bad_tokens:
        response = web.session.request(
            method, web.url(f"/unsubscribe/{token}"), data=ONE_CLICK, allow_redirects=False
        )
        assert response.status_code == 400, token
        bodies.add(response.text)

    assert len(bodies) == 1  # one answer for every bad token: nothing about who is subscribed
    assert "not valid" in bodies.pop()
    assert suppression_rows(store) == []


def test_post_without_the_one_click_body_changes_nothing(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = link(web, signer)
    empty = web.session.post(url, allow_redirects=False)
    wrong = web.session.post(url, data={"List-Unsubscribe": "Yes"}, allow_redirects=False)

    assert (empty.status_code, wrong.status_code) == (400, 400)
    assert suppression_rows(store) == []


def test_unsubscribe_pages_carry_safe_headers(web: WebApp, signer: TokenSigner) -> None:
    for response in (
        web.session.get(link(web, signer)),
        web.session.post(link(web, signer), data=ONE_CLICK),
        web.session.get(web.url("/unsubscribe/forged")),
    ):
        headers = response.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_url_helper_agrees_with_the_endpoint(settings: Settings) -> None:
    signer = TokenSigner(settings.secret_key.reveal())
    url = unsubscribe_url("https://news.example.org/", signer, "jane@example.org", "weekly")
    token = url.rpartition("/")[2]

    assert url.startswith("https://news.example.org/unsubscribe/")
    assert signer.verify(token).email == "jane@example.org"


def first_scheme_token(secret: str, email: str, list_id: str) -> str:
    """A token as emails sent before the BLAKE2b signatures carry it (HMAC-SHA256)."""
    payload = base64.urlsafe_b64encode(f"{list_id}\n{email}".encode()).rstrip(b"=")
    signer = Signer(secret, salt=LEGACY_SALT, digest_method=hashlib.sha256)
    return signer.sign(payload).decode("ascii")


def test_a_link_from_an_email_sent_with_the_first_scheme_still_unsubscribes(
    web: WebApp, signer: TokenSigner, settings: Settings, store: Store
) -> None:
    old = first_scheme_token(settings.secret_key.reveal(), "old.reader@example.org", "weekly")
    forged = first_scheme_token("another key", "mallory@example.org", "weekly")
    new = signer.sign("old.reader@example.org", "weekly")
    assert len(new.rpartition(".")[2]) == 22 < len(old.rpartition(".")[2]) == 43

    refused = web.session.post(web.url(f"/unsubscribe/{forged}"), data=ONE_CLICK)
    accepted = web.session.post(web.url(f"/unsubscribe/{old}"), data=ONE_CLICK)

    assert (refused.status_code, accepted.status_code) == (400, 200)
    assert [(r.email, r.scope) for r in suppression_rows(store)] == [
        ("old.reader@example.org", "weekly")
    ]
