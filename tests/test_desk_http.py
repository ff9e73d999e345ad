"""The desk attacked over real HTTP (uvicorn on 127.0.0.1), on SQLite and PostgreSQL:
no session, forged and stale sessions, forged forms, session fixation, open redirects,
roles, and the headers every desk page carries.

Routes are enumerated from the app, so a desk page added later is attacked too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import func, select
from starlette.routing import Route

from newsletter.models import SuppressionReason
from newsletter.store import issues as issue_store
from newsletter.store.suppressions import add as add_suppression
from newsletter.store.tables import issues, suppressions
from newsletter.web import create_app
from newsletter.web.desk import accounts
from newsletter.web.desk.guard import safe_next
from tests.desk_support import (
    ADMIN,
    DESK_SITE,
    EDITOR,
    PASSWORD,
    Desk,
    csrf_of,
    session_cookie,
    sign_in,
)
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web

#: Desk paths open without a session: the sign-in form and the stylesheet; /desk itself
#: only points to the issues list.
OPEN = {"/desk", "/desk/", "/desk/signin", "/desk/assets/desk.css"}
DESK_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def desk_routes(desk: Desk) -> Iterator[tuple[str, str, Route]]:
    """(method, path with the issue's id filled in, route) for every guarded desk route."""
    for route in desk.app().routes:
        if not isinstance(route, Route) or not route.path.startswith("/desk"):
            continue
        if route.path in OPEN:
            continue
        path = route.path.replace("{issue_id}", str(desk.issue_id))
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, path, route


def post_routes(desk: Desk) -> list[str]:
    return [p for m, p, _ in desk_routes(desk) if m == "POST" and p != "/desk/signout"]


def history_length(desk: Desk) -> int:
    with desk.store.engine.connect() as conn:
        return len(issue_store.events(conn, desk.issue_id))


def everything_else(desk: Desk) -> tuple[int, int]:
    """How many issues and suppressions there are: a forged form adds or lifts none."""
    with desk.store.engine.connect() as conn:
        issue_count = conn.execute(select(func.count()).select_from(issues)).scalar_one()
        suppressed = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
    return int(issue_count), int(suppressed)


def test_the_desk_has_the_routes_these_tests_attack(desk: Desk) -> None:
    paths = {p for _, p, _ in desk_routes(desk)}
    n = desk.issue_id
    assert {"/desk/issues", f"/desk/issues/{n}", f"/desk/issues/{n}/preview", "/desk/users",
            "/desk/signout"} <= paths
    assert {f"/desk/issues/{n}/{a}" for a in ("queue", "unqueue", "pause", "resume",
                                               "cancel")} <= paths
    assert {"/desk/articles", "/desk/articles/draft", "/desk/lists", "/desk/status",
            "/desk/suppressions", "/desk/suppressions/add", "/desk/suppressions/lift",
            "/desk/suppressions/export"} <= paths


def test_every_desk_route_without_a_session_goes_to_sign_in(desk: Desk, web: WebApp) -> None:
    before = history_length(desk)
    for method, path, _ in desk_routes(desk):
        response = web.session.request(method, web.url(path), allow_redirects=False)
        assert response.status_code == 303, (method, path)
        back = safe_next(path) if method == "GET" else "/desk/issues"
        assert response.headers["Location"] == f"/desk/signin?next={back}", (method, path)
    assert desk.state() == "draft" and history_length(desk) == before


@pytest.mark.parametrize("cookie", ["", "x", secrets.token_urlsafe(32), "a" * 5000, "é\\;"])
def test_a_forged_session_cookie_is_no_session(desk: Desk, web: WebApp, cookie: str) -> None:
    web.session.cookies.set("desk", cookie)
    for method, path, _ in desk_routes(desk):
        response = web.session.request(method, web.url(path), allow_redirects=False)
        assert response.status_code == 303, (method, path)
    assert desk.state() == "draft"


def _signed_in(web: WebApp, name: str = EDITOR) -> str:
    response = sign_in(web, name)
    assert response.status_code == 303, response.text
    cookie = session_cookie(web.session)
    assert cookie
    return cookie


def _replayed(web: WebApp, cookie: str) -> int:
    """The status of the issues list asked for with ``cookie`` by a fresh client."""
    client = requests.Session()
    client.trust_env = False
    client.cookies.set("desk", cookie)
    return client.get(web.url("/desk/issues"), allow_redirects=False).status_code


def test_a_session_ends_after_idle_minutes(desk: Desk, web: WebApp) -> None:
    cookie = _signed_in(web)
    desk.clock.advance(minutes=29)
    assert _replayed(web, cookie) == 200
    desk.clock.advance(minutes=29)  # 29 minutes since the last request: still alive
    assert _replayed(web, cookie) == 200
    desk.clock.advance(minutes=31)
    assert _replayed(web, cookie) == 303
    desk.clock.advance(seconds=1)
    assert _replayed(web, cookie) == 303  # and deleted: it does not come back


def test_a_busy_session_still_ends_after_its_hours(desk: Desk, web: WebApp) -> None:
    cookie = _signed_in(web)
    for _ in range(12 * 3 - 1):  # a request every 20 minutes, for 11 h 40 min
        desk.clock.advance(minutes=20)
        assert _replayed(web, cookie) == 200
    desk.clock.advance(minutes=21)
    assert _replayed(web, cookie) == 303


def test_signing_out_revokes_the_session(desk: Desk, web: WebApp) -> None:
    cookie = _signed_in(web)
    page = web.session.get(web.url("/desk/issues"))

    out = web.session.post(web.url("/desk/signout"), data={"csrf": csrf_of(page.text)},
                           allow_redirects=False)

    assert (out.status_code, out.headers["Location"]) == (303, "/desk/signin")
    assert _replayed(web, cookie) == 303


def test_removing_a_user_or_changing_the_password_ends_their_sessions(
    desk: Desk, web: WebApp
) -> None:
    cookie = _signed_in(web)
    accounts.change_password(desk.store, EDITOR, "a brand new password")
    assert _replayed(web, cookie) == 303

    cookie = _signed_in(web, ADMIN)
    accounts.remove(desk.store, ADMIN)
    assert _replayed(web, cookie) == 303


def test_a_session_id_planted_before_sign_in_is_not_the_one_signed_in(
    desk: Desk, web: WebApp
) -> None:
    planted = secrets.token_urlsafe(32)
    web.session.cookies.set("desk", planted, domain="127.0.0.1", path="/")

    assert sign_in(web).status_code == 303

    signed_in = session_cookie(web.session)
    assert signed_in and signed_in != planted
    assert _replayed(web, planted) == 303
    assert _replayed(web, signed_in) == 200
    again = requests.Session()
    again.trust_env = False
    assert sign_in(web, session=again).status_code == 303
    assert session_cookie(again) not in (planted, signed_in)  # a new id at every sign-in


def test_posts_without_the_right_token_are_refused_and_change_nothing(
    desk: Desk, web: WebApp
) -> None:
    """As an administrator, whom every route lets past the role check to the token's."""
    _signed_in(web, ADMIN)
    other = requests.Session()
    other.trust_env = False
    sign_in(web, EDITOR, session=other)
    others_token = csrf_of(other.get(web.url("/desk/issues")).text)
    own_token = csrf_of(web.session.get(web.url("/desk/issues")).text)
    before = history_length(desk)
    with desk.store.engine.begin() as conn:  # something a forged lift could take away
        add_suppression(conn, "kept@example.org", SuppressionReason.MANUAL, at=desk.store.now())
    others = everything_else(desk)
    forged: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}),
        ({"csrf": ""}, {}),
        ({"csrf": "x" * 43}, {}),
        ({"csrf": others_token}, {}),  # another session's token
        ({"csrf": own_token}, {"Origin": "https://evil.example"}),
        ({"csrf": own_token}, {"Origin": "null"}),
        ({"csrf": own_token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": own_token}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for path in [*post_routes(desk), "/desk/signout"]:
        for data, headers in forged:
            response = web.session.post(web.url(path), data=data, headers=headers,
                                        allow_redirects=False)
            assert response.status_code == 403, (path, data, headers)
            assert "did not come from the desk" in response.text
    assert desk.state() == "draft" and history_length(desk) == before
    assert everything_else(desk) == others
    assert web.session.get(web.url("/desk/issues"), allow_redirects=False).status_code == 200


def test_the_right_token_from_the_desk_itself_is_accepted(desk: Desk, web: WebApp) -> None:
    _signed_in(web)
    token = csrf_of(web.session.get(web.url(f"/desk/issues/{desk.issue_id}")).text)
    headers = {"Origin": web.url(""), "Sec-Fetch-Site": "same-origin"}

    response = web.session.post(web.url(f"/desk/issues/{desk.issue_id}/cancel"),
                                data={"csrf": token}, headers=headers, allow_redirects=False)

    assert response.status_code == 303
    assert desk.state() == "cancelled"


def test_the_sign_in_form_needs_its_own_token(desk: Desk, web: WebApp) -> None:
    form = web.session.get(web.url("/desk/signin"))
    token = csrf_of(form.text)
    data = {"name": EDITOR, "password": PASSWORD}
    stranger = requests.Session()  # has the token (it is in the page) but not the cookie
    stranger.trust_env = False

    missing = web.session.post(web.url("/desk/signin"), data=data, allow_redirects=False)
    wrong = web.session.post(web.url("/desk/signin"), data={**data, "csrf": token + "x"},
                             allow_redirects=False)
    no_cookie = stranger.post(web.url("/desk/signin"), data={**data, "csrf": token},
                              allow_redirects=False)
    cross = web.session.post(web.url("/desk/signin"), data={**data, "csrf": token},
                             headers={"Origin": "https://evil.example"}, allow_redirects=False)

    for response in (missing, wrong, no_cookie, cross):
        assert response.status_code == 403
        assert session_cookie(web.session) is None and session_cookie(stranger) is None


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example/desk/", "/\\evil.example", "/desk/\n//evil.example",
    "javascript:alert(1)", "/unsubscribe", "///evil.example", "/desk/signin?next=//evil",
])
def test_next_never_leaves_the_desk(desk: Desk, web: WebApp, target: str) -> None:
    response = sign_in(web, next_path=target)

    assert (response.status_code, response.headers["Location"]) == (303, "/desk/issues")
    again = web.session.get(web.url("/desk/signin"), params={"next": target},
                            allow_redirects=False)
    assert again.headers["Location"] == "/desk/issues"


def test_next_returns_to_the_page_asked_for(desk: Desk, web: WebApp) -> None:
    page = f"/desk/issues/{desk.issue_id}"
    first = web.session.get(web.url(page), allow_redirects=False)
    assert first.headers["Location"] == f"/desk/signin?next={page}"

    response = sign_in(web, next_path=page)

    assert response.headers["Location"] == page


def test_an_editor_gets_403_on_admin_pages(desk: Desk, web: WebApp) -> None:
    admin_only = [(m, p) for m, p, r in desk_routes(desk)
                  if getattr(r.endpoint, "desk_role", "") == "admin"]
    assert ("GET", "/desk/users") in admin_only
    assert {("GET", "/desk/suppressions"), ("POST", "/desk/suppressions/add"),
            ("POST", "/desk/suppressions/lift"), ("GET", "/desk/suppressions/export")} <= set(
        admin_only)
    _signed_in(web, EDITOR)
    for method, path in admin_only:
        assert web.session.request(method, web.url(path)).status_code == 403
    admin = requests.Session()
    admin.trust_env = False
    sign_in(web, ADMIN, session=admin)
    listing = admin.get(web.url("/desk/users"))
    assert listing.status_code == 200 and EDITOR in listing.text


def test_every_desk_page_carries_the_desk_headers(desk: Desk, web: WebApp) -> None:
    _signed_in(web, ADMIN)
    for method, path, _ in desk_routes(desk):
        if method != "GET":
            continue
        response = web.session.get(web.url(path))
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        if path.endswith("/preview"):
            assert response.headers["Content-Security-Policy"].endswith("; sandbox")
            assert "script-src" not in response.headers["Content-Security-Policy"]
        else:
            assert response.headers["Content-Security-Policy"] == DESK_CSP
            assert "<script" not in response.text
    signin = requests.get(web.url("/desk/signin"), timeout=10)
    assert signin.headers["Content-Security-Policy"] == DESK_CSP


def test_cookies_over_http_are_httponly_and_samesite(desk: Desk, web: WebApp) -> None:
    response = sign_in(web)
    cookie = next(c for c in response.raw.headers.getlist("Set-Cookie")
                  if c.startswith("desk="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie


def _set_cookies(response: requests.Response) -> list[str]:
    return list(response.raw.headers.getlist("Set-Cookie"))


def test_cookies_over_https_are_secure_with_the_host_prefix(desk: Desk) -> None:
    """Behind a proxy that ends TLS: the public URL is https, so the cookies are Secure and
    ``__Host-`` (sent here by hand, since a client keeps Secure cookies off plain http)."""
    settings = desk.settings.with_changes(public_url="https://desk.example.org")
    with WebApp(create_app(settings, desk.store, site=DESK_SITE)) as web:
        form = requests.get(web.url("/desk/signin"), timeout=10)
        pre = _set_cookies(form)[0]
        nonce = pre.split(";", 1)[0].partition("=")[2]
        response = requests.post(
            web.url("/desk/signin"),
            data={"csrf": csrf_of(form.text), "name": EDITOR, "password": PASSWORD},
            headers={"Origin": "https://desk.example.org", "Cookie": f"__Host-desk-pre={nonce}"},
            allow_redirects=False, timeout=10,
        )
    cookie = next(c for c in _set_cookies(response) if c.startswith("__Host-desk="))
    assert pre.startswith("__Host-desk-pre=") and "Secure" in pre
    assert response.status_code == 303
    for part in ("Secure", "HttpOnly", "Path=/", "SameSite=lax"):
        assert part in cookie
    assert "Domain" not in cookie
