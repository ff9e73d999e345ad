"""Sign-up operations (``readers.signup``) on a real store, SQLite and PostgreSQL: what each
kind of address is sent, the confirmation link's one use, the limits, the suppressions a
confirmation lifts and those it never does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.config import Settings
from newsletter.lists.config import load_config
from newsletter.lists.member_keys import MemberKeys
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.readers.links import LinkProblem
from newsletter.readers.mail import MailKind
from newsletter.readers.signup import Confirmed, Outcome, Signups
from newsletter.store import Store, suppressions
from tests.preferences_support import spoil_in_place
from tests.signup_support import (
    LIST,
    MEMBER,
    Clock,
    form,
    journal_rows,
    link_in,
    outbox_rows,
    request_rows,
    take_signups,
    token_of,
)

NEW = "Ann.Lee@Example.org"


@pytest.fixture
def clock(store: Store) -> Clock:
    moved = Clock()
    store.clock = moved
    return moved


@pytest.fixture
def signups(settings: Settings, store: Store, clock: Clock) -> Iterator[Signups]:
    configured = take_signups(settings.with_changes(signup_address_limit=50))
    yield Signups(configured, store, load_config(configured))


def confirmation_token(store: Store, index: int = -1) -> str:
    message = [m for m in outbox_rows(store) if m["kind"] == "confirm"][index]
    return token_of(link_in(message["text"]))


def suppress(store: Store, email: str, reason: SuppressionReason, scope: str = LIST) -> None:
    with store.engine.begin() as conn:
        suppressions.add(conn, email, reason, scope=scope, at=store.now())


def test_a_new_address_is_sent_a_confirmation_and_one_click_confirms_it(
    signups: Signups, store: Store, clock: Clock
) -> None:
    answer = signups.request(form(signups, NEW, name="Ann Lee", clock=clock), "192.0.2.1")
    assert (answer.outcome, answer.queued) == (Outcome.ACCEPTED, MailKind.CONFIRM)
    [message] = outbox_rows(store)
    assert (message["kind"], message["to_email"], message["status"]) == \
        ("confirm", "Ann.Lee@example.org", "pending")
    assert "Hello Ann," in message["text"] and "Ann.Lee@example.org" in message["html"]
    [request] = request_rows(store)
    assert request["confirmed_at"] is None and request["nonce"]

    token = confirmation_token(store)
    assert signups.check(LIST, token) != LinkProblem.USED
    assert journal_rows(store) == []  # looking at the link changes nothing
    assert signups.confirm(LIST, token) == Confirmed(LIST, "Ann.Lee@example.org")
    [entry] = journal_rows(store)
    assert (entry["kind"], entry["email"], entry["name"], entry["source"]) == \
        ("join", "Ann.Lee@example.org", "Ann Lee", "confirm")
    assert request_rows(store)[0]["confirmed_at"] is not None
    signup_file = signups.config.signup_path(LIST)
    assert signup_file is not None  # and this host's sign-up file holds the reader already
    assert signup_file.read_text().splitlines()[-1] == "Ann.Lee@example.org,Ann Lee"

    assert signups.confirm(LIST, token) is LinkProblem.USED  # replayed: nothing more
    assert signups.check(LIST, token) is LinkProblem.USED
    assert len(journal_rows(store)) == 1


def test_a_newer_request_replaces_the_link_and_none_is_resent_within_the_interval(
    signups: Signups, store: Store, clock: Clock
) -> None:
    signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    first = confirmation_token(store)
    clock.advance(minutes=2)
    again = signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    assert (again.outcome, again.queued) == (Outcome.ACCEPTED, None)  # too soon: no second
    assert len(outbox_rows(store)) == 1
    assert signups.check(LIST, first) != LinkProblem.USED  # the link sent still works

    clock.advance(minutes=5)
    assert signups.request(form(signups, NEW, clock=clock), "192.0.2.1").queued is \
        MailKind.CONFIRM
    second = confirmation_token(store)
    assert signups.confirm(LIST, first) is LinkProblem.USED
    assert journal_rows(store) == []
    assert isinstance(signups.confirm(LIST, second), Confirmed)


def test_a_member_is_sent_a_notice_with_their_own_page_not_a_confirmation(
    signups: Signups, store: Store, clock: Clock
) -> None:
    answer = signups.request(form(signups, MEMBER.upper(), clock=clock), "192.0.2.1")
    assert (answer.outcome, answer.queued) == (Outcome.ACCEPTED, MailKind.NOTICE)
    [message] = outbox_rows(store)
    assert message["kind"] == "notice"
    assert "https://news.example.org/subscription/" in message["text"]
    assert "/confirm/" not in message["text"]
    clock.advance(minutes=1)
    assert signups.request(form(signups, MEMBER, clock=clock), "192.0.2.1").queued is None


@pytest.mark.parametrize("reason", [SuppressionReason.BOUNCED_HARD, SuppressionReason.COMPLAINED,
                                    SuppressionReason.MANUAL, SuppressionReason.BOUNCED_SOFT])
def test_a_bounced_complaining_or_admin_suppressed_address_is_sent_nothing(
    signups: Signups, store: Store, clock: Clock, reason: SuppressionReason
) -> None:
    suppress(store, NEW, reason, scope=ALL_LISTS)
    answer = signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    assert (answer.outcome, answer.queued) == (Outcome.ACCEPTED, None)
    assert outbox_rows(store) == []


def test_a_forgotten_reader_is_sent_nothing(signups: Signups, store: Store, clock: Clock) -> None:
    with store.engine.begin() as conn:
        suppressions.add_forgotten(conn, NEW, at=store.now())
    assert signups.request(form(signups, NEW, clock=clock), "192.0.2.1").queued is None


def test_confirming_lifts_the_readers_own_unsubscribe_of_the_list_only(
    signups: Signups, store: Store, clock: Clock
) -> None:
    suppress(store, NEW, SuppressionReason.UNSUBSCRIBED, scope=LIST)
    suppress(store, NEW, SuppressionReason.UNSUBSCRIBED, scope="every-article")
    assert signups.request(form(signups, NEW, clock=clock), "192.0.2.1").queued is \
        MailKind.CONFIRM
    assert isinstance(signups.confirm(LIST, confirmation_token(store)), Confirmed)
    with store.engine.connect() as conn:
        left = {(s.scope, s.reason) for s in suppressions.of_address(conn, NEW)}
        assert not suppressions.is_suppressed(conn, NEW, LIST)
    assert left == {("every-article", SuppressionReason.UNSUBSCRIBED)}


def test_leaving_every_list_stays_for_the_others_when_one_is_confirmed(
    signups: Signups, store: Store, clock: Clock
) -> None:
    suppress(store, NEW, SuppressionReason.UNSUBSCRIBED, scope=ALL_LISTS)
    signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    assert isinstance(signups.confirm(LIST, confirmation_token(store)), Confirmed)
    others = set(signups.config.lists) - {LIST}
    with store.engine.connect() as conn:
        assert not suppressions.is_suppressed(conn, NEW, LIST)
        assert all(suppressions.is_suppressed(conn, NEW, other) for other in others)


def test_a_bounce_that_came_after_the_request_is_not_lifted_by_the_confirmation(
    signups: Signups, store: Store, clock: Clock
) -> None:
    signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    suppress(store, NEW, SuppressionReason.BOUNCED_HARD, scope=ALL_LISTS)
    assert isinstance(signups.confirm(LIST, confirmation_token(store)), Confirmed)
    with store.engine.connect() as conn:
        assert suppressions.is_suppressed(conn, NEW, LIST)


def test_a_list_with_a_welcome_queues_it_on_confirmation(
    settings: Settings, store: Store, clock: Clock
) -> None:
    configured = take_signups(settings, welcome=True)
    signups = Signups(configured, store, load_config(configured))
    signups.request(form(signups, NEW, name="Ann", clock=clock), "192.0.2.1")
    signups.confirm(LIST, confirmation_token(store))
    kinds = [m["kind"] for m in outbox_rows(store)]
    assert kinds == ["confirm", "welcome"]
    welcome = outbox_rows(store)[1]
    assert "/unsubscribe/" in welcome["text"] and "/subscription/" in welcome["text"]


def test_robots_and_forms_without_a_good_stamp_send_nothing(
    signups: Signups, store: Store, clock: Clock
) -> None:
    honeypot = signups.request(form(signups, NEW, clock=clock, website="https://x"), "192.0.2.1")
    too_fast = signups.request(form(signups, NEW), "192.0.2.1")  # sent back at once
    unsigned = signups.request(form(signups, NEW, clock=clock, started=""), "192.0.2.1")
    forged = signups.request(form(signups, NEW, clock=clock, started="weekly.AAAA.BBBB"),
                             "192.0.2.1")
    other_list = form(signups, NEW, clock=clock, started=signups.stamp("every-article"))
    assert [a.outcome for a in (honeypot, too_fast)] == [Outcome.ACCEPTED] * 2
    assert [a.outcome for a in (unsigned, forged, signups.request(other_list, "192.0.2.1"))] \
        == [Outcome.REFILL] * 3
    stale = form(signups, NEW)
    clock.advance(hours=25)  # a form left open too long is shown again
    assert signups.request(stale, "192.0.2.1").outcome is Outcome.REFILL
    assert signups.request(form(signups, NEW, clock=clock), "192.0.2.1").outcome \
        is Outcome.ACCEPTED
    assert [m["to_email"] for m in outbox_rows(store)] == ["Ann.Lee@example.org"]


@pytest.mark.parametrize(("address", "name"), [
    ("not an address", ""), ("", ""), ("ann@example", ""), ("ann@example.org", "Ann\x1b[2J"),
    ("ann@example.org", "A" * 201), ("jos\u00e9@example.org", ""),
])
def test_an_unusable_address_or_name_is_the_only_distinct_answer(
    signups: Signups, store: Store, clock: Clock, address: str, name: str
) -> None:
    answer = signups.request(form(signups, address, name=name, clock=clock), "192.0.2.1")
    assert answer.outcome is Outcome.INVALID and answer.problem
    assert outbox_rows(store) == [] and request_rows(store) == []


def test_one_client_is_throttled_after_its_limit_whatever_the_addresses(
    settings: Settings, store: Store, clock: Clock
) -> None:
    configured = take_signups(settings.with_changes(signup_client_limit=5))
    signups = Signups(configured, store, load_config(configured))
    answers = [signups.request(form(signups, f"r{n}@example.org", clock=clock), "2001:db8::1")
               for n in range(8)]
    assert [a.outcome for a in answers] == [Outcome.ACCEPTED] * 5 + [Outcome.THROTTLED] * 3
    assert all(0 < a.retry_after <= 600 for a in answers[5:])
    # the same /64 is the same client; another client is not held back
    other_host = signups.request(form(signups, "s@example.org", clock=clock), "2001:db8::2")
    assert other_host.outcome is Outcome.THROTTLED
    assert signups.request(form(signups, "t@example.org", clock=clock), "192.0.2.7").outcome \
        is Outcome.ACCEPTED
    clock.advance(minutes=10)  # a new window
    assert signups.request(form(signups, "u@example.org", clock=clock), "2001:db8::1").outcome \
        is Outcome.ACCEPTED
    assert len(outbox_rows(store)) == 7


def test_one_address_is_throttled_whichever_clients_ask(
    settings: Settings, store: Store, clock: Clock
) -> None:
    configured = take_signups(settings.with_changes(signup_address_limit=3,
                                                    signup_resend_minutes=0))
    signups = Signups(configured, store, load_config(configured))
    answers = [signups.request(form(signups, NEW, clock=clock), f"192.0.2.{n}")
               for n in range(5)]
    assert [a.outcome for a in answers] == [Outcome.ACCEPTED] * 3 + [Outcome.THROTTLED] * 2


def test_forged_altered_expired_and_other_lists_links_change_nothing(
    signups: Signups, store: Store, clock: Clock
) -> None:
    signups.request(form(signups, NEW, clock=clock), "192.0.2.1")
    token = confirmation_token(store)
    payload, stamp, signature = token.split(".")
    # a letter inside the signature (the last one's low bits are padding: it may decode alike)
    swapped = "A" if signature[-5] != "A" else "B"
    altered = f"{payload}.{stamp}.{signature[:-5]}{swapped}{signature[-4:]}"
    assert signups.confirm(LIST, altered) is LinkProblem.INVALID
    assert signups.confirm(LIST, token[:-10]) is LinkProblem.INVALID
    assert signups.confirm(LIST, "forged.token.value") is LinkProblem.INVALID
    assert signups.confirm("every-article", token) is LinkProblem.INVALID
    clock.advance(hours=48, seconds=1)
    assert signups.check(LIST, token) is LinkProblem.EXPIRED
    assert signups.confirm(LIST, token) is LinkProblem.EXPIRED
    assert journal_rows(store) == [] and request_rows(store)[0]["confirmed_at"] is None


def test_confirming_asks_the_index_not_the_files_whether_the_list_holds_the_reader(
    settings: Settings, store: Store, clock: Clock
) -> None:
    """Another member's row made unreadable behind the index's back (size, inode and time
    unchanged): applying the join by reading every file of the list would stop on it."""
    configured = take_signups(settings)
    members = MemberKeys()
    signups = Signups(configured, store, load_config(configured), members=members)
    signups.request(form(signups, NEW, name="Ann Lee", clock=clock), "192.0.2.1")
    signups.request(form(signups, MEMBER, clock=clock), "192.0.2.2")  # indexes the files
    spoil_in_place(configured.subscribers_dir / "weekly.csv", b"Truro", b"\xff\xfe\xfd\xfc\xfb")
    confirmed = signups.confirm(LIST, confirmation_token(store))

    assert confirmed == Confirmed(LIST, "Ann.Lee@example.org")

    signup_file = signups.config.signup_path(LIST)
    assert signup_file is not None
    assert signup_file.read_text().splitlines() == ["email,name", "Ann.Lee@example.org,Ann Lee"]
