"""Signing in to the desk: one answer for every wrong guess, the same work behind it, and
throttling with growing waits that every process serving the desk shares (two apps, two
engines, one database), on SQLite and PostgreSQL. The clock is the store's: it moves only
when a test moves it, so nothing here waits."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from argon2 import PasswordHasher

from newsletter.store import Store
from newsletter.web import create_app
from newsletter.web.desk import accounts
from newsletter.web.desk.throttle import MAX_WAIT, wait_after
from tests.desk_support import (
    DESK_SITE,
    EDITOR,
    PASSWORD,
    Desk,
    session_cookie,
    sign_in,
)
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


def fresh_client() -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    return client


def attempt(web: WebApp, name: str, password: str, address: str = "") -> requests.Response:
    """One sign-in by a new browser; ``address`` is the client address the proxy reports
    (uvicorn believes X-Forwarded-For from 127.0.0.1, as behind a local reverse proxy)."""
    client = fresh_client()
    if address:
        client.headers["X-Forwarded-For"] = address
    return sign_in(web, name, password, session=client)


def message(response: requests.Response) -> str:
    found = re.search(r'<p class="alert" role="alert">([^<]*)</p>', response.text)
    return found.group(1) if found else ""


@pytest.fixture
def second_web(desk: Desk) -> Iterator[WebApp]:
    """Another app process's view: its own engine on the same database, the same clock."""
    other = Store.open(desk.settings.database_url, clock=desk.clock)
    try:
        with WebApp(create_app(desk.settings, other, site=DESK_SITE)) as running:
            yield running
    finally:
        other.close()


def test_unknown_names_and_wrong_passwords_get_the_same_answer(
    desk: Desk, web: WebApp
) -> None:
    unknown = attempt(web, "nobody", PASSWORD, "192.0.2.1")
    wrong = attempt(web, EDITOR, "not the password at all", "192.0.2.2")
    empty = attempt(web, "", "", "192.0.2.3")

    for response in (unknown, wrong, empty):
        assert response.status_code == 401
        assert message(response) == "Wrong name or password."
        assert "desk" not in response.cookies
    assert unknown.headers.keys() == wrong.headers.keys()


def test_an_unknown_name_is_verified_against_a_hash_too(
    desk: Desk, web: WebApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same argon2 work for an unknown name as for a known one: timing tells nothing."""
    verified: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:
        verified.append(hash)
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    attempt(web, "nobody", PASSWORD, "192.0.2.1")
    attempt(web, EDITOR, "not the password at all", "192.0.2.2")

    assert len(verified) == 2
    assert verified[0] == accounts.dummy_hash()
    assert all(h.startswith("$argon2id$") for h in verified)


def test_waits_grow_and_stop_at_fifteen_minutes() -> None:
    assert [wait_after(n) for n in range(1, 10)] == [0, 0, 0, 0, 1, 2, 4, 8, 16]
    assert wait_after(14) == 512 and wait_after(15) == MAX_WAIT == 900
    assert wait_after(10_000) == MAX_WAIT


def test_failures_are_throttled_across_two_app_processes(
    desk: Desk, web: WebApp, second_web: WebApp
) -> None:
    for n in range(5):  # alternate between the two apps: they count together
        server = web if n % 2 else second_web
        assert attempt(server, EDITOR, f"wrong password {n}").status_code == 401

    locked = attempt(web, EDITOR, PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "1"
    assert message(locked) == "Too many failed sign-ins. Try again in 1 second."
    assert attempt(second_web, EDITOR, PASSWORD).status_code == 429

    waits = []
    for n in range(3):  # each failure after the lock doubles the wait
        desk.clock.advance(seconds=int(locked.headers["Retry-After"]))
        assert attempt(second_web, EDITOR, f"still wrong {n}").status_code == 401
        locked = attempt(web, EDITOR, PASSWORD)
        assert locked.status_code == 429
        waits.append(int(locked.headers["Retry-After"]))
    assert waits == [2, 4, 8]

    desk.clock.advance(seconds=8)
    allowed = fresh_client()
    assert sign_in(second_web, session=allowed).status_code == 303
    assert session_cookie(allowed)


def test_a_success_clears_the_accounts_count(desk: Desk, web: WebApp) -> None:
    for n in range(4):
        attempt(web, EDITOR, f"wrong {n}", f"198.51.100.{n}")
    assert attempt(web, EDITOR, PASSWORD, "198.51.100.50").status_code == 303
    for n in range(4):  # four more: still under the limit, since the count began again
        assert attempt(web, EDITOR, f"wrong {n}", f"198.51.100.{n + 10}").status_code == 401
    assert attempt(web, EDITOR, PASSWORD, "198.51.100.51").status_code == 303


def test_one_account_guessed_from_many_addresses_is_locked(desk: Desk, web: WebApp) -> None:
    for n in range(5):
        assert attempt(web, EDITOR, f"wrong {n}", f"203.0.113.{n}").status_code == 401

    locked = attempt(web, EDITOR, PASSWORD, "203.0.113.99")

    assert locked.status_code == 429
    assert attempt(web, "ada", PASSWORD, "203.0.113.99").status_code == 303  # others go on


def test_one_address_guessing_many_names_is_locked(desk: Desk, web: WebApp) -> None:
    for n in range(5):
        assert attempt(web, f"guess{n}", PASSWORD, "203.0.113.7").status_code == 401

    locked = attempt(web, EDITOR, PASSWORD, "203.0.113.7")

    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert attempt(web, EDITOR, PASSWORD, "203.0.113.8").status_code == 303


def test_a_lock_reaches_fifteen_minutes_at_most(desk: Desk, web: WebApp) -> None:
    failures = 0
    while failures < 20:  # each lock waited out, then one more failure
        response = attempt(web, f"name{failures % 3}", "wrong", "203.0.113.9")
        if response.status_code == 429:
            desk.clock.advance(seconds=int(response.headers["Retry-After"]))
        else:
            failures += 1

    locked = attempt(web, EDITOR, PASSWORD, "203.0.113.9")

    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "900"
    assert message(locked) == "Too many failed sign-ins. Try again in 15 minutes."


def test_an_outdated_hash_is_replaced_at_sign_in(desk: Desk, web: WebApp) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    from newsletter.store import desk as desk_store

    with desk.store.engine.begin() as conn:
        user = desk_store.get_user(conn, EDITOR)
        desk_store.set_password_hash(conn, user.id, weak)

    assert attempt(web, EDITOR, PASSWORD).status_code == 303

    with desk.store.engine.connect() as conn:
        stored = desk_store.get_user(conn, EDITOR).password_hash
    assert stored != weak and not PasswordHasher().check_needs_rehash(stored)
