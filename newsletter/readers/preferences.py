"""A reader's own page: which lists they receive, and the changes they make themselves.

The page speaks for the address a signed link names: the token of an email's unsubscribe
link, which proves its holder received that email. The files stay the record of who is a
member, as everywhere else; what a reader changes goes through the same records as the CLI:

- switching a list off is an ``unsubscribed`` suppression for that list (as the one-click
  unsubscribe), so the row in the file stays for an admin to see;
- switching it on lifts the reader's own ``unsubscribed`` row (never a bounce, a complaint
  or a block by hand) and, where no file of the list holds the address, records a ``join``
  in the sign-up journal, which copies the reader into the list's sign-up file on every
  host (``lists.signups.apply_journal``, run here at once for this host);
- a new name is a ``rename`` entry for each list whose files hold the address;
- leaving every list is an ``unsubscribed`` suppression for every list (scope ``*``).
  Switching one list on again afterwards turns it into one per other list, so that the
  others stay off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection

from ..errors import ConfigError
from ..lists.address import address_key, normalise_address
from ..lists.config import PublicationConfig
from ..lists.csvfile import NAME
from ..lists.member_keys import MemberKeys
from ..lists.reader_data import Membership, list_files
from ..models import ALL_LISTS, MailingList, SuppressionReason
from ..render.message import UNFIT_FOR_HEADERS, describe_character
from ..store import Store, signup_journal, suppressions
from ..store.signup_journal import JournalKind, JournalSource
from ..store.suppressions import FORGOTTEN, Suppression
from .landing import apply_on_this_host
from .standing import split_leave_all

#: The suppressions' ``source`` for what a reader did on their page.
SOURCE = "preferences"
#: The longest name the page takes (it goes into the To header of every email).
NAME_MAX = 200
#: How a blocked list says why when the reader was forgotten at their request.
FORGOTTEN_BLOCK = "forgotten"


class ListState(StrEnum):
    SUBSCRIBED = "subscribed"
    NOT_SUBSCRIBED = "not-subscribed"  # no file of the list holds the address
    UNSUBSCRIBED = "unsubscribed"  # a file does, but the reader switched it off
    BLOCKED = "blocked"  # a bounce, a complaint or an admin stopped it: theirs to lift


class Done(StrEnum):
    """What one save changed, for the page to say."""

    SWITCHED_ON = "switched-on"
    SWITCHED_OFF = "switched-off"
    RENAMED = "renamed"
    LEFT_ALL = "left-all"


class InvalidNameError(ConfigError):
    """The name given cannot be kept: it is too long, or holds a line break."""


@dataclass(frozen=True, slots=True)
class ListChoice:
    """One list as the reader's page shows it."""

    list_id: str
    title: str
    description: str
    state: ListState
    member: bool
    accepts_signups: bool
    #: Why a blocked list is: a suppression reason, or ``FORGOTTEN_BLOCK``.
    blocked_by: str = ""

    @property
    def on(self) -> bool:
        return self.state is ListState.SUBSCRIBED

    @property
    def switchable(self) -> bool:
        """Whether the reader may change it: not blocked, and a list that takes sign-ups
        or whose files hold them (a list without sign-ups is not joined from here)."""
        if self.state is ListState.BLOCKED:
            return False
        return self.member or self.accepts_signups


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the reader's page shows: their lists, their name, and whether they left all."""

    email: str
    name: str
    choices: tuple[ListChoice, ...]
    left_all: bool

    def choice(self, list_id: str) -> ListChoice | None:
        return next((c for c in self.choices if c.list_id == list_id), None)

    @property
    def any_on(self) -> bool:
        return any(c.on for c in self.choices)

    @property
    def member_lists(self) -> tuple[str, ...]:
        return tuple(c.list_id for c in self.choices if c.member)


@dataclass(frozen=True, slots=True)
class Changes:
    """What a form asks for. ``shown``: the lists the form showed (an unticked box is not
    sent, so only these can be switched off); ``on``: those ticked; ``name``: None when the
    form had no name field."""

    shown: frozenset[str] = frozenset()
    on: frozenset[str] = frozenset()
    name: str | None = None
    leave_all: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    done: Done
    list_id: str = ""


@dataclass(frozen=True, slots=True)
class Saved:
    subscription: Subscription
    changes: tuple[Change, ...]


# -- reading ------------------------------------------------------------------------------


def subscription(
    config: PublicationConfig, store: Store, members: MemberKeys, email: str, token_list: str
) -> Subscription:
    """The page of ``email``, who came from an email of ``token_list``. Finds the reader's
    rows through ``members``, the process's index of the files (``ListError`` if a file
    cannot be read: the address could be in it)."""
    key = address_key(email)
    rows = member_rows(config, members, key)
    with store.engine.connect() as conn:
        return _subscription(config, conn, key, rows, token_list)


def member_rows(config: PublicationConfig, members: MemberKeys, key: str) -> list[Membership]:
    """The rows holding ``key`` in the lists' files: an index look-up per file, then those
    rows alone read (the first view after a file changes reads it whole, once). A sign-up
    file that does not exist yet holds nobody; any other missing file is a ``ListError``."""
    signup_files = {config.signup_path(lid) for lid in config.lists}
    return [
        found
        for path in list_files(config)
        if path.exists() or path not in signup_files
        for found in members.rows_holding(path, key, config.lists_reading(path))
    ]


def _subscription(
    config: PublicationConfig,
    conn: Connection,
    key: str,
    rows: list[Membership],
    token_list: str,
) -> Subscription:
    held = suppressions.of_address(conn, key)
    member_of = {lid for row in rows for lid in row.lists}
    everywhere = _row_for(held, ALL_LISTS)
    choices = tuple(
        _choice(mailing_list, member_of, held, everywhere)
        for lid, mailing_list in config.lists.items()
        if mailing_list.accepts_signups or lid in member_of or lid == token_list
    )
    left_all = everywhere is not None and everywhere.reason is SuppressionReason.UNSUBSCRIBED
    return Subscription(key, _name_in(rows), choices, left_all)


def _choice(
    mailing_list: MailingList,
    member_of: set[str],
    held: list[Suppression],
    everywhere: Suppression | None,
) -> ListChoice:
    member = mailing_list.id in member_of
    state, blocked_by = _state(member, _row_for(held, mailing_list.id), everywhere, held)
    return ListChoice(
        mailing_list.id, mailing_list.title, mailing_list.description, state, member,
        mailing_list.accepts_signups, blocked_by,
    )


def _state(
    member: bool, own: Suppression | None, everywhere: Suppression | None, held: list[Suppression]
) -> tuple[ListState, str]:
    if any(s.email.startswith(FORGOTTEN) for s in held):
        return ListState.BLOCKED, FORGOTTEN_BLOCK
    blocking = [
        s for s in (own, everywhere) if s and s.reason is not SuppressionReason.UNSUBSCRIBED
    ]
    if blocking:
        return ListState.BLOCKED, str(blocking[0].reason)
    if not member:
        return ListState.NOT_SUBSCRIBED, ""
    if own is not None or everywhere is not None:
        return ListState.UNSUBSCRIBED, ""
    return ListState.SUBSCRIBED, ""


def _row_for(held: list[Suppression], scope: str) -> Suppression | None:
    """The address's own row for ``scope`` (the forgotten one is looked at apart)."""
    return next((s for s in held if s.scope == scope and not s.email.startswith(FORGOTTEN)), None)


def _name_in(rows: list[Membership]) -> str:
    """The name the files give the reader: the first row with a name column."""
    return next((row.row[NAME] for row in rows if NAME in row.row), "")


# -- changing ------------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """The name as it will be kept; ``InvalidNameError`` when it cannot be."""
    name = raw.strip()
    if len(name) > NAME_MAX:
        raise InvalidNameError(f"The name is too long: at most {NAME_MAX} characters.")
    if (found := UNFIT_FOR_HEADERS.search(name)) is not None:
        raise InvalidNameError(
            f"The name holds {describe_character(found.group())}; please write it on one line."
        )
    return name


def save(
    config: PublicationConfig, store: Store, members: MemberKeys, email: str, token_list: str,
    changes: Changes,
) -> Saved:
    """Make ``changes`` in one transaction, then copy the journal entries they recorded into
    this host's files; the page as it is after."""
    name = None if changes.name is None else clean_name(changes.name)
    key = address_key(email)
    rows = member_rows(config, members, key)
    with store.engine.begin() as conn:
        before = _subscription(config, conn, key, rows, token_list)
        done = _apply(conn, config, before, changes, name, store.now())
    journaled = _journaled(before, done)
    if journaled:  # the files change: read them again
        copy_to_files(config, store, members, journaled)
        rows = member_rows(config, members, key)
    with store.engine.connect() as conn:
        return Saved(_subscription(config, conn, key, rows, token_list), tuple(done))


def _journaled(before: Subscription, done: list[Change]) -> list[str]:
    """The lists whose journal entries a save recorded (a rename: every list holding them)."""
    lists = [c.list_id for c in done if c.done is Done.SWITCHED_ON]
    if any(c.done is Done.RENAMED for c in done):
        lists += before.member_lists
    return list(dict.fromkeys(lists))


def copy_to_files(
    config: PublicationConfig, store: Store, members: MemberKeys, list_ids: Iterable[str]
) -> None:
    """Copy the sign-up journal into this host's files for ``list_ids`` at once, so that
    the page shows the change; other hosts copy it before their next send. A list that
    cannot be written now (an admin's edit holds its lock) keeps its entries for the next
    apply: the change is recorded either way."""
    for list_id in list_ids:
        apply_on_this_host(config, store, list_id, members)


def _apply(
    conn: Connection,
    config: PublicationConfig,
    before: Subscription,
    changes: Changes,
    name: str | None,
    at: datetime,
) -> list[Change]:
    if changes.leave_all:
        return _leave_all(conn, before, at)
    shown = [c for c in before.choices if c.list_id in changes.shown and c.switchable]
    switch_on = [c for c in shown if c.list_id in changes.on and not c.on]
    switch_off = [c for c in shown if c.list_id not in changes.on and c.on]
    new_name = name if name is not None and name != before.name else None
    done = _switch_off(conn, before.email, switch_off, at)
    done += _switch_on(conn, config, before, switch_on, new_name, at)
    if new_name is not None:
        done += _rename(conn, before, new_name, at)
    return done


def _leave_all(conn: Connection, before: Subscription, at: datetime) -> list[Change]:
    added = suppressions.add(
        conn, before.email, SuppressionReason.UNSUBSCRIBED, scope=ALL_LISTS, source=SOURCE,
        at=at,
    )
    return [Change(Done.LEFT_ALL)] if added else []


def _switch_off(
    conn: Connection, email: str, choices: list[ListChoice], at: datetime
) -> list[Change]:
    for choice in choices:
        suppressions.add(
            conn, email, SuppressionReason.UNSUBSCRIBED, scope=choice.list_id, source=SOURCE,
            at=at,
        )
    return [Change(Done.SWITCHED_OFF, c.list_id) for c in choices]


def _switch_on(
    conn: Connection,
    config: PublicationConfig,
    before: Subscription,
    choices: list[ListChoice],
    new_name: str | None,
    at: datetime,
) -> list[Change]:
    if not choices:
        return []
    split_leave_all(conn, before.email, config.lists, {c.list_id for c in choices},
                    source=SOURCE, at=at)
    name = before.name if new_name is None else new_name
    for choice in choices:
        suppressions.lift_unsubscribed(conn, before.email, choice.list_id)
        if not choice.member:
            _journal(conn, JournalKind.JOIN, choice.list_id, before.email, name, at)
    return [Change(Done.SWITCHED_ON, c.list_id) for c in choices]


def _rename(
    conn: Connection, before: Subscription, name: str, at: datetime
) -> list[Change]:
    """A ``rename`` for each list whose files hold the reader (one just joined takes the
    name with its ``join``)."""
    for list_id in before.member_lists:
        _journal(conn, JournalKind.RENAME, list_id, before.email, name, at)
    return [Change(Done.RENAMED)] if before.member_lists else []


def _journal(
    conn: Connection, kind: JournalKind, list_id: str, email: str, name: str, at: datetime
) -> None:
    signup_journal.record(
        conn, list_id=list_id, kind=kind, email=normalise_address(email), name=name,
        source=JournalSource.PREFERENCES, at=at,
    )
