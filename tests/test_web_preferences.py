"""The reader's own page (``/subscription/{token}``) through a real uvicorn and real HTTP, on
both databases: what it shows, what each change records, and what it refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import Store, suppressions
from newsletter.tokens import TokenSigner
from newsletter.web import create_app
from tests.preferences_support import (
    NORA,
    PIRAN,
    SIGNUPS,
    ZOE,
    journal_rows,
    open_signups,
    page_text,
    shown_lists,
    snapshot,
    spoil_in_place,
    suppression_set,
)
from tests.servers.webapp import WebApp

BOTH = ["weekly", "every-article"]


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key.reveal())


@pytest.fixture
def web(settings: Settings, store: Store, home: Path) -> Iterator[WebApp]:
    open_signups(home)
    with WebApp(create_app(settings, store)) as running:
        yield running


def page_url(web: WebApp, signer: TokenSigner, email: str, list_id: str = "every-article") -> str:
    return web.url(f"/subscription/{signer.sign(email, list_id)}")


def save(
    web: WebApp, url: str, *, shown: list[str], on: list[str], name: str | None = None,
    action: str = "save", headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """What the page's form sends, from the page itself."""
    form: dict[str, object] = {"shown": shown, "list": on, "action": action}
    if name is not None:
        form["name"] = name
    sent = {"Origin": web.url(""), "Sec-Fetch-Site": "same-origin", **(headers or {})}
    response = web.session.post(url, data=form, headers=sent, allow_redirects=False)
    return response.status_code, response.text


def suppress(store: Store, email: str, reason: SuppressionReason, scope: str) -> None:
    with store.engine.begin() as conn:
        suppressions.add(conn, email, reason, scope=scope, source="test", at=store.now())


def test_the_page_shows_each_list_and_a_get_changes_nothing(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    before = snapshot(store, home)
    url = page_url(web, signer, NORA)

    response = web.session.get(url, allow_redirects=False)
    again = web.session.get(url, allow_redirects=False)

    assert (response.status_code, again.status_code) == (200, 200)
    shown = shown_lists(response.text)
    assert list(shown) == ["weekly", "every-article"]  # the publication's order
    assert (shown["weekly"].state, shown["weekly"].ticked, shown["weekly"].enabled) == (
        "not-subscribed", False, True,
    )
    assert (shown["every-article"].state, shown["every-article"].ticked) == ("subscribed", True)
    assert "n***@example.org" in response.text and NORA not in response.text
    assert 'value="Nora Penhallow"' in response.text
    assert 'name="action" value="leave-all"' in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "set-cookie" not in response.headers
    assert snapshot(store, home) == before


def test_a_reader_is_found_however_the_file_spells_their_address(
    web: WebApp, signer: TokenSigner, home: Path
) -> None:
    with (home / "subscribers" / "every-article.csv").open("a", encoding="utf-8") as rows:
        rows.write('Kim.Lee@Bücher.Example,Kim Lee,Kellmouth\n')

    page = web.session.get(page_url(web, signer, "kim.lee@xn--bcher-kva.example")).text

    assert shown_lists(page)["every-article"].state == "subscribed"
    assert 'value="Kim Lee"' in page


def test_a_list_without_sign_ups_shows_only_to_its_members_and_is_not_joined_here(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    only_weekly = web.session.get(page_url(web, signer, PIRAN, "weekly")).text
    # An email of a list they are no longer in (an admin took them out of its file).
    from_other = page_url(web, signer, PIRAN, "every-article")
    shown = shown_lists(web.session.get(from_other).text)
    before = snapshot(store, home)

    status, _ = save(web, from_other, shown=BOTH, on=BOTH)

    assert list(shown_lists(only_weekly)) == ["weekly"]
    assert shown["every-article"].state == "not-subscribed"
    assert not shown["every-article"].enabled
    assert "not open to sign-ups" in shown["every-article"].text
    assert status == 200
    assert snapshot(store, home) == before  # weekly was on already; every-article stays off


def test_switching_a_list_off_suppresses_that_list_alone(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    url = page_url(web, signer, ZOE)
    files = snapshot(store, home)[2]

    status, page = save(web, url, shown=BOTH, on=["weekly"])

    assert status == 200
    assert suppression_set(store) == {(ZOE, "every-article", "unsubscribed", "preferences")}
    assert snapshot(store, home)[2] == files  # the row stays in the file, for an admin to see
    assert journal_rows(store) == []
    shown = shown_lists(page)
    assert (shown["weekly"].state, shown["every-article"].state) == ("subscribed", "unsubscribed")
    assert not shown["every-article"].ticked
    assert "Saved." in page_text(page) and "every article: switched off." in page_text(page)


def test_switching_it_back_on_lifts_the_readers_own_row(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = page_url(web, signer, ZOE)
    save(web, url, shown=BOTH, on=["weekly"])

    status, page = save(web, url, shown=BOTH, on=BOTH)

    assert status == 200
    assert suppression_set(store) == set()
    assert journal_rows(store) == []  # a file holds them already
    assert {s.state for s in shown_lists(page).values()} == {"subscribed"}
    assert "every article: switched on." in page_text(page)


def test_switching_on_a_list_no_file_holds_them_in_records_a_join(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    url = page_url(web, signer, NORA)

    status, page = save(web, url, shown=BOTH, on=BOTH)

    assert status == 200
    assert journal_rows(store) == [
        ("weekly", "join", NORA, "Nora Penhallow", "preferences"),
    ]
    assert suppression_set(store) == set()
    assert "weekly digest: switched on." in page_text(page)
    # Copied into this host's sign-up file at once: the list's files say she is a member.
    signups = (home / "subscribers" / SIGNUPS).read_text(encoding="utf-8")
    assert signups == f"email,name\n{NORA},Nora Penhallow\n"
    assert shown_lists(page)["weekly"].state == "subscribed"


def test_a_join_after_switching_off_lifts_the_row_and_takes_the_new_name(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = page_url(web, signer, NORA)
    suppress(store, NORA, SuppressionReason.UNSUBSCRIBED, "weekly")  # an old unsubscribe

    _, page = save(web, url, shown=BOTH, on=BOTH, name="  Nora P.  ")

    assert {s.state for s in shown_lists(page).values()} == {"subscribed"}
    assert 'value="Nora P."' in page
    assert suppression_set(store) == set()
    assert journal_rows(store) == [
        ("weekly", "join", NORA, "Nora P.", "preferences"),
        ("every-article", "rename", NORA, "Nora P.", "preferences"),
    ]


def test_a_new_name_is_a_rename_for_each_list_holding_the_reader(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    url = page_url(web, signer, ZOE, "weekly")
    unchanged = save(web, url, shown=BOTH, on=BOTH, name="Zoë Ångström")[1]

    status, page = save(web, url, shown=BOTH, on=BOTH, name="Zoë Å.")

    assert "Nothing needed to change." in page_text(unchanged)
    assert status == 200
    assert journal_rows(store) == [
        ("weekly", "rename", ZOE, "Zoë Å.", "preferences"),
        ("every-article", "rename", ZOE, "Zoë Å.", "preferences"),
    ]
    assert suppression_set(store) == set()
    assert "Your name is changed." in page_text(page)
    assert 'value="Zoë Å."' in page
    for name in ("weekly.csv", "every-article.csv"):
        rows = (home / "subscribers" / name).read_text(encoding="utf-8").splitlines()
        assert f"{ZOE},Zoë Å.,Kellmouth" in rows, name


def test_leaving_every_list_and_coming_back_to_one(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    url = page_url(web, signer, ZOE)

    status, left = save(web, url, shown=BOTH, on=BOTH, action="leave-all")

    assert status == 200
    assert suppression_set(store) == {(ZOE, ALL_LISTS, "unsubscribed", "preferences")}
    assert {s.state for s in shown_lists(left).values()} == {"unsubscribed"}
    assert "You have left every list" in page_text(left)
    assert 'value="leave-all"' not in left  # nothing left to leave: no button for it

    _, back = save(web, url, shown=BOTH, on=["weekly"])

    assert suppression_set(store) == {(ZOE, "every-article", "unsubscribed", "preferences")}
    shown = shown_lists(back)
    assert (shown["weekly"].state, shown["every-article"].state) == ("subscribed", "unsubscribed")


def test_joining_a_list_after_leaving_every_list(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    url = page_url(web, signer, NORA)
    save(web, url, shown=BOTH, on=BOTH, action="leave-all")

    _, page = save(web, url, shown=BOTH, on=["weekly"])

    shown = shown_lists(page)
    assert (shown["weekly"].state, shown["every-article"].state) == ("subscribed", "unsubscribed")
    assert suppression_set(store) == {(NORA, "every-article", "unsubscribed", "preferences")}
    assert NORA in (home / "subscribers" / SIGNUPS).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("reason", "scope", "says"),
    [
        (SuppressionReason.BOUNCED_HARD, "weekly", "could not be delivered"),
        (SuppressionReason.COMPLAINED, ALL_LISTS, "reported as spam"),
        (SuppressionReason.MANUAL, "weekly", "by the publisher"),
    ],
)
def test_a_bounce_a_complaint_or_a_block_is_not_lifted_by_the_reader(
    web: WebApp, signer: TokenSigner, store: Store, home: Path,
    reason: SuppressionReason, scope: str, says: str,
) -> None:
    suppress(store, ZOE, reason, scope)
    url = page_url(web, signer, ZOE)
    shown = shown_lists(web.session.get(url).text)
    before = snapshot(store, home)

    # A form made by hand, ticking the blocked list anyway.
    status, _ = save(web, url, shown=BOTH, on=BOTH)

    assert shown["weekly"].state == "blocked"
    assert not shown["weekly"].enabled and not shown["weekly"].ticked
    assert says in shown["weekly"].text
    assert status == 200
    assert snapshot(store, home) == before


def test_a_forgotten_reader_is_shown_blocked(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    with store.engine.begin() as conn:
        suppressions.add_forgotten(conn, ZOE, at=store.now())

    shown = shown_lists(web.session.get(page_url(web, signer, ZOE)).text)

    assert {s.state for s in shown.values()} == {"blocked"}
    assert "erased at your request" in shown["weekly"].text


def test_an_already_unsubscribed_reader_sees_that_state(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    token = signer.sign(PIRAN, "weekly")
    unsubscribed = web.session.post(
        web.url(f"/unsubscribe/{token}"), data={"List-Unsubscribe": "One-Click"}
    )
    again = web.session.get(web.url(f"/unsubscribe/{token}"))
    page = web.session.get(web.url(f"/subscription/{token}")).text

    assert f'href="/subscription/{token}"' in unsubscribed.text
    assert "You are already unsubscribed" in again.text
    assert 'name="List-Unsubscribe"' not in again.text  # not the button again
    assert f'href="/subscription/{token}"' in again.text
    weekly = shown_lists(page)["weekly"]
    assert (weekly.state, weekly.ticked, weekly.enabled) == ("unsubscribed", False, True)
    assert 'value="leave-all"' not in page


def test_the_unsubscribe_page_links_to_the_readers_page(
    web: WebApp, signer: TokenSigner
) -> None:
    token = signer.sign(ZOE, "weekly")

    page = web.session.get(web.url(f"/unsubscribe/{token}")).text

    assert 'name="List-Unsubscribe"' in page
    assert f'href="/subscription/{token}"' in page


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_and_altered_tokens_get_one_400_and_change_nothing(
    web: WebApp, signer: TokenSigner, store: Store, home: Path, method: str
) -> None:
    good = signer.sign(ZOE, "weekly")
    payload, _, signature = good.rpartition(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    other_key = TokenSigner("another publication's key").sign(ZOE, "weekly")
    someone_else = signer.sign(NORA, "weekly").rpartition(".")[0] + "." + signature
    before = snapshot(store, home)

    bodies = set()
    for token in [f"{payload}.{flipped}", good[:-4], payload, other_key, someone_else, "x"]:
        status, body = (
            save(web, web.url(f"/subscription/{token}"), shown=BOTH, on=[], action="leave-all")
            if method == "POST"
            else (lambda r: (r.status_code, r.text))(
                web.session.get(web.url(f"/subscription/{token}"))
            )
        )
        assert status == 400, token
        bodies.add(body)

    assert len(bodies) == 1  # one answer whatever the token names
    assert "This link is not valid" in bodies.pop()
    assert snapshot(store, home) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://shop.news.example.org"},
    ],
    ids=["other-origin", "opaque-origin", "cross-site", "same-site"],
)
def test_a_post_from_another_site_is_refused(
    web: WebApp, signer: TokenSigner, store: Store, home: Path, headers: dict[str, str]
) -> None:
    before = snapshot(store, home)

    status, page = save(
        web, page_url(web, signer, ZOE), shown=BOTH, on=[], action="leave-all",
        headers={"Sec-Fetch-Site": "same-origin", **headers},
    )

    assert status == 403
    assert "Nothing was changed" in page
    assert snapshot(store, home) == before


def test_the_publications_own_origin_is_accepted(
    web: WebApp, signer: TokenSigner, store: Store
) -> None:
    """Behind a proxy the browser names the public address, not the app's."""
    status, _ = save(
        web, page_url(web, signer, ZOE), shown=BOTH, on=["weekly"],
        headers={"Origin": "https://news.example.org"},
    )

    assert status == 200
    assert suppression_set(store) == {(ZOE, "every-article", "unsubscribed", "preferences")}


@pytest.mark.parametrize(
    ("name", "says"),
    [("Zoë\nBcc: x@example.org", "line feed"), ("Z" * 201, "at most 200 characters")],
)
def test_a_name_that_cannot_be_kept_changes_nothing(
    web: WebApp, signer: TokenSigner, store: Store, home: Path, name: str, says: str
) -> None:
    before = snapshot(store, home)

    status, page = save(web, page_url(web, signer, ZOE), shown=BOTH, on=["weekly"], name=name)

    assert status == 400
    assert says in page and 'role="alert"' in page and 'aria-invalid="true"' in page
    assert snapshot(store, home) == before  # not even the list switched off with it
    assert {s.state for s in shown_lists(page).values()} == {"subscribed"}


def test_a_form_the_page_does_not_send_changes_nothing(
    web: WebApp, signer: TokenSigner, store: Store, home: Path
) -> None:
    url = page_url(web, signer, ZOE)
    before = snapshot(store, home)
    same_origin = {"Origin": web.url("")}

    unknown = save(web, url, shown=BOTH, on=[], action="delete-everything")
    upload = web.session.post(
        url, files={"name": ("name.txt", b"x"), "action": (None, "save")}, headers=same_origin
    )
    unknown_lists = save(web, url, shown=["no-such-list", *BOTH], on=["no-such-list", *BOTH])

    assert unknown[0] == 400 and "Nothing was changed" in unknown[1]
    assert upload.status_code == 400
    assert unknown_lists[0] == 200 and "Nothing needed to change." in page_text(unknown_lists[1])
    assert snapshot(store, home) == before


def test_a_view_reads_the_readers_rows_alone_once_the_files_are_indexed(
    web: WebApp, signer: TokenSigner, home: Path
) -> None:
    """Another member's row made unreadable behind the index's back (the file's size, inode
    and time unchanged): a view that parsed the whole file would fail on it."""
    url = page_url(web, signer, ZOE)
    first = web.session.get(url)
    spoil_in_place(home / "subscribers" / "weekly.csv", b"Truro", b"\xff\xfe\xfd\xfc\xfb")

    again = web.session.get(url)

    assert (first.status_code, again.status_code) == (200, 200)
    assert {s.state for s in shown_lists(again.text).values()} == {"subscribed"}
    assert 'value="Zoë Ångström"' in again.text


def test_too_many_views_from_one_client_get_a_429_and_change_nothing(
    settings: Settings, store: Store, home: Path, signer: TokenSigner
) -> None:
    open_signups(home)
    with WebApp(create_app(settings.with_changes(reader_page_limit=3), store)) as web:
        url = page_url(web, signer, ZOE)
        allowed = [web.session.get(url).status_code for _ in range(3)]
        before = snapshot(store, home)
        refused = web.session.get(url)
        refused_save = save(web, url, shown=BOTH, on=[], action="leave-all")
        refused_bad_token = web.session.get(web.url("/subscription/not-a-token"))

    assert allowed == [200, 200, 200]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Please wait a moment" in refused.text and "n***@" not in refused.text
    assert refused_save[0] == 429 and "Nothing was changed" in refused_save[1]
    assert refused_bad_token.status_code == 429  # counted before the token is looked at
    assert snapshot(store, home) == before
