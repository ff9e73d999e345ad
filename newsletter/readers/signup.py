"""Public sign-up with double opt-in: the form's submission, and the confirmation link.

A submission (``Signups.request``) always gets the same answer, whatever the address's
standing, so the form tells no one who is subscribed. What happens behind it:

- a new, pending or unsubscribed reader is sent a confirmation (a fresh link: any earlier
  one stops working);
- a reader the list's files hold already, and not suppressed, is sent a notice with the
  link to their own page instead;
- a reader suppressed for a bounce, a complaint, by an admin, or forgotten, is sent nothing:
  those suppressions are an admin's to lift;
- nothing goes to an address that was sent either within ``NEWSLETTER_SIGNUP_RESEND_MINUTES``;
- a form whose hidden ``website`` field is filled, or sent back sooner than
  ``NEWSLETTER_SIGNUP_MIN_SECONDS`` after it was shown, is a robot's: nothing is done.

Every submission with a good stamp counts against its client's limit, and a valid address
against its own; past either, the answer is "too many" (429), the same for every address.
The request's row and its message are written in one transaction: a confirmation is never
queued without the request it confirms, nor the other way round.

Confirming (``Signups.confirm``) takes the link's nonce (once), records a ``join`` in the
sign-up journal, lifts the reader's own ``unsubscribed`` suppression of the list, queues
the list's welcome if it has one, then copies the journal into this host's files.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from email_validator import EmailNotValidError
from sqlalchemy import Connection

from ..config import Settings
from ..delivery.prepare import public_base
from ..lists.address import address_key, sendable_address
from ..lists.config import PublicationConfig
from ..lists.member_keys import MemberKeys
from ..models import MailingList
from ..render.message import header_value_problem
from ..store import Store, signup_requests, suppressions
from ..store import outbox as outbox_store
from ..store import signup_journal as journal
from ..store.signup_requests import SignupRequest
from ..tokens import TokenSigner, preferences_url, unsubscribe_url
from .landing import apply_on_this_host
from .limits import Limits, client_key
from .limits import address_key as address_counter
from .links import ConfirmLink, ConfirmLinks, FormStamps, LinkProblem
from .mail import Composed, MailKind, ReaderMail
from .standing import Standing, split_leave_all, standing

#: The longest name kept (the column's size).
MAX_NAME = 200
SUPPRESSION_SOURCE = "sign-up"


@dataclass(frozen=True, slots=True)
class SignupForm:
    """A submitted form, as typed."""

    list_id: str
    email: str
    name: str = ""
    website: str = ""  # the honeypot: hidden from people, filled by robots
    started: str = ""  # ``FormStamps.stamp`` of the page the form was on


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # "check your inbox", whatever was done
    REFILL = "refill"  # no good stamp: show the form again, filled in, to be sent once more
    INVALID = "invalid"  # the address (or name) cannot be used: the form with the problem
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    problem: str = ""  # what is wrong with the form (INVALID)
    retry_after: int = 0  # seconds (THROTTLED)
    #: What was queued, for tests and logs; never shown.
    queued: MailKind | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Confirmed:
    list_id: str
    email: str


class Signups:
    """The sign-up operations of one publication; one per process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        config: PublicationConfig,
        *,
        mail: ReaderMail | None = None,
        members: MemberKeys | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.mail = mail or ReaderMail(settings)
        self.members = members or MemberKeys()
        self.wake = wake
        secret = settings.secret_key.reveal()
        clock = self._timestamp
        self.stamps = FormStamps(secret, clock)
        self.links = ConfirmLinks(secret, clock, settings.signup_confirm_hours)
        self._signer = TokenSigner(secret)
        self._limits = Limits.of(settings)
        self._base = public_base(settings.public_url, config.publication)

    def _timestamp(self) -> float:
        return self.store.now().timestamp()

    def taking_signups(self, list_id: str) -> MailingList | None:
        """The list, if it takes public sign-ups."""
        found = self.config.lists.get(list_id)
        return found if found is not None and found.accepts_signups else None

    def stamp(self, list_id: str) -> str:
        """The ``started`` value of a form shown now."""
        return self.stamps.stamp(list_id)

    # -- a submission ----------------------------------------------------------------------
    def request(self, form: SignupForm, client: str | None) -> Answer:
        mailing_list = self.config.list(form.list_id)
        age = self.stamps.age(form.started, form.list_id)
        if age is None:
            return Answer(Outcome.REFILL)
        robot = bool(form.website.strip()) or age < self.settings.signup_min_seconds
        checked = "" if robot else _checked(form)
        if isinstance(checked, tuple):
            email, name = checked
            return self._request(mailing_list, email, name, client)
        wait = self._count_client(client)  # a robot or a mistyped address counts all the same
        if wait:
            return Answer(Outcome.THROTTLED, retry_after=wait)
        return Answer(Outcome.INVALID, problem=checked) if checked else Answer(Outcome.ACCEPTED)

    def _count_client(self, client: str | None) -> int:
        with self.store.writing() as conn:
            return self._limits.over(conn, client_key(client), self._limits.client,
                                     self.store.now())

    def _request(
        self, mailing_list: MailingList, email: str, name: str, client: str | None
    ) -> Answer:
        key = address_key(email)
        member = self.members.holds(self.config.member_paths(mailing_list.id), email)
        nonce = secrets.token_urlsafe(16)
        messages = {
            MailKind.CONFIRM: self._compose(MailKind.CONFIRM, mailing_list, email, name, nonce),
            MailKind.NOTICE: self._compose(MailKind.NOTICE, mailing_list, email, name, ""),
        }
        now = self.store.now()
        with self.store.writing() as conn:
            wait = max(
                self._limits.over(conn, client_key(client), self._limits.client, now),
                self._limits.over(conn, address_counter(key), self._limits.address, now),
            )
            if wait:
                return Answer(Outcome.THROTTLED, retry_after=wait)
            kind = self._reply(conn, mailing_list.id, email, name, member, now)
            if kind is MailKind.CONFIRM:
                signup_requests.renew(conn, list_id=mailing_list.id, email_key=key,
                                      email=email, name=name, nonce=nonce, at=now)
            else:
                signup_requests.note(conn, list_id=mailing_list.id, email_key=key, email=email,
                                     name=name, sent=kind is not None, at=now)
            if kind is not None:
                self._queue(conn, kind, mailing_list.id, email, messages[kind], now)
        if kind is not None:
            self.wake()
        return Answer(Outcome.ACCEPTED, queued=kind)

    def _reply(
        self, conn: Connection, list_id: str, email: str, name: str, member: bool, now: datetime
    ) -> MailKind | None:
        """What to send the reader, if anything."""
        now_standing = standing(conn, email, list_id)
        if now_standing is Standing.BLOCKED:
            return None
        request = signup_requests.find(conn, list_id, address_key(email))
        if self._sent_lately(request, now):
            return None
        return MailKind.NOTICE if member and now_standing is Standing.CLEAR else MailKind.CONFIRM

    def _sent_lately(self, request: SignupRequest | None, now: datetime) -> bool:
        if request is None or request.last_sent_at is None:
            return False
        interval = timedelta(minutes=self.settings.signup_resend_minutes)
        return now - request.last_sent_at < interval

    def _compose(
        self, kind: MailKind, mailing_list: MailingList, email: str, name: str, nonce: str
    ) -> Composed:
        lowered, list_id = email.lower(), mailing_list.id
        link = ""
        if nonce:
            token = self.links.token(ConfirmLink(list_id, address_key(email), nonce))
            link = f"{self._base}/subscribe/{list_id}/confirm/{token}"
        values = {
            "email": email, "name": name, "link": link,
            "preferences_url": preferences_url(self._base, self._signer, lowered, list_id),
            "unsubscribe_url": unsubscribe_url(self._base, self._signer, lowered, list_id),
        }
        return self.mail.compose(kind, self.config.publication, mailing_list, values)

    def _queue(
        self, conn: Connection, kind: MailKind, list_id: str, email: str, message: Composed,
        at: datetime,
    ) -> None:
        outbox_store.queue(conn, kind=str(kind), list_id=list_id, to_email=email,
                           subject=message.subject, html=message.html, text=message.text, at=at)

    # -- the link --------------------------------------------------------------------------
    def check(self, list_id: str, token: str) -> ConfirmLink | LinkProblem:
        """What the link is, changing nothing (the page a ``GET`` shows)."""
        link = self.links.read(token, list_id)
        if isinstance(link, LinkProblem):
            return link
        with self.store.engine.connect() as conn:
            request = signup_requests.find(conn, list_id, link.email_key)
        if request is None or not request.nonce or request.nonce != link.nonce:
            return LinkProblem.USED
        return link

    def confirm(self, list_id: str, token: str) -> Confirmed | LinkProblem:
        """Confirm the sign-up the link stands for, once."""
        link = self.links.read(token, list_id)
        if isinstance(link, LinkProblem):
            return link
        mailing_list = self.config.list(list_id)
        now = self.store.now()
        with self.store.writing() as conn:
            request = signup_requests.confirm(conn, list_id, link.email_key, link.nonce, at=now)
            if request is None:
                return LinkProblem.USED
            journal.record(conn, list_id=list_id, kind=journal.JournalKind.JOIN,
                           email=request.email, name=request.name,
                           source=journal.JournalSource.CONFIRM, at=now)
            self._lift_unsubscribed(conn, request.email, list_id, now)
            welcome = (mailing_list.welcome
                       and standing(conn, request.email, list_id) is Standing.CLEAR)
            if welcome:
                message = self._compose(MailKind.WELCOME, mailing_list, request.email,
                                        request.name, "")
                self._queue(conn, MailKind.WELCOME, list_id, request.email, message, now)
        apply_on_this_host(self.config, self.store, list_id, self.members)
        if welcome:
            self.wake()
        return Confirmed(list_id, request.email)

    def _lift_unsubscribed(self, conn: Connection, email: str, list_id: str, at: datetime) -> None:
        """The reader's own choice to leave this list ends. A choice to leave every list
        ends for this one only: it stays, as one suppression per other list."""
        suppressions.lift_unsubscribed(conn, email, list_id)
        split_leave_all(conn, email, self.config.lists, {list_id}, source=SUPPRESSION_SOURCE,
                        at=at, detail=f"had left every list; signed up to {list_id} again")


def _checked(form: SignupForm) -> tuple[str, str] | str:
    """The address in its sendable form and the name, or what is wrong with them."""
    raw = form.email.strip()
    if not raw:
        return "Please enter your email address."
    try:
        email = sendable_address(raw)
    except EmailNotValidError as exc:
        return f"This email address cannot be used: {exc}"
    name = " ".join(form.name.split())
    if len(name) > MAX_NAME:
        return f"Please shorten the name to {MAX_NAME} characters at most."
    if header_value_problem(name):
        return "The name cannot hold control characters."
    return email, name


