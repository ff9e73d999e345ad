"""The reader's own page at ``/subscription/{token}`` ("Manage your subscription").

The token is the one of the email's unsubscribe link (``tokens.TokenSigner``): it is the
capability, proof that its holder received mail at that address. A ``GET`` shows the page
and changes nothing (link scanners follow links); the page's one form posts back to the
same address, and works without script. A ``POST`` must also come from this site by the
browser's own word (``Origin``, ``Sec-Fetch-Site``), as the desk's forms must: defence in
depth should a link leak into a page that could post to it.

What the page shows and changes is ``readers.preferences``; this module only reads the
request and renders the answer. A token that does not verify gets one 400 page whatever it
names, so the page says nothing about who is subscribed. Every view and save counts against
its client's limit (``NEWSLETTER_READER_PAGE_LIMIT``), token or not: past it, a 429 page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..errors import ConfigError
from ..lists.config import PublicationConfig
from ..lists.member_keys import MemberKeys
from ..readers import preferences
from ..readers.limits import Limits
from ..readers.preferences import Changes, InvalidNameError, Saved, Subscription
from ..store import Store
from ..tokens import BadTokenError, TokenSigner, UnsubscribeToken
from .desk.guard import from_this_site
from .pages import Pages
from .unsubscribe import mask_email

log = logging.getLogger(__name__)

#: The form's fields: a box per list (``list``, its id as value, sent when ticked), the lists
#: the form showed (``shown``), the reader's ``name``, and which button was pressed.
LIST_FIELD, SHOWN_FIELD, NAME_FIELD, ACTION_FIELD = "list", "shown", "name", "action"
SAVE, LEAVE_ALL = "save", "leave-all"
#: Under the default ``no-referrer`` a browser sends ``Origin: null`` with a form, and the
#: check could not tell this site from another. Same-origin requests only carry the page's
#: address, which is this site's own.
REFERRER_POLICY = "same-origin"


class BadFormError(ValueError):
    """The form was not one this page sends."""


class PreferencesEndpoints:
    def __init__(
        self,
        store: Store,
        signer: TokenSigner,
        pages: Pages,
        load_config: Callable[[], PublicationConfig],
        members: MemberKeys,
        limits: Limits,
    ) -> None:
        self.store = store
        self.signer = signer
        self.pages = pages
        self.load_config = load_config
        self.members = members
        self.limits = limits

    @property
    def public_origin(self) -> str:
        return _origin(self.pages.site.base_url)

    def routes(self) -> list[Route]:
        return [
            Route("/subscription/{token}", self.show, methods=["GET"]),
            Route("/subscription/{token}", self.save, methods=["POST"]),
        ]

    async def show(self, request: Request) -> Response:
        if wait := await self._over_limit(request):
            return self._busy(wait)
        token = self._verify(request.path_params["token"])
        if token is None:
            return self._refuse(400, "bad-token")
        try:
            found = await run_in_threadpool(self._read, token)
        except ConfigError:
            return self._unavailable()
        return self._page(token, found)

    async def save(self, request: Request) -> Response:
        if wait := await self._over_limit(request):
            return self._busy(wait)
        token = self._verify(request.path_params["token"])
        if token is None:
            return self._refuse(400, "bad-token")
        if not from_this_site(request, self.public_origin):
            return self._refuse(403, "other-site")
        async with request.form() as form:
            try:
                changes = changes_from(form)
            except BadFormError:
                return self._refuse(400, "bad-form")
        try:
            saved = await run_in_threadpool(self._save, token, changes)
        except InvalidNameError as exc:
            return await self._name_refused(token, changes, str(exc))
        except ConfigError:
            return self._unavailable()
        return self._page(token, saved.subscription, saved=saved)

    async def _name_refused(
        self, token: UnsubscribeToken, changes: Changes, error: str
    ) -> Response:
        try:
            found = await run_in_threadpool(self._read, token)
        except ConfigError:
            return self._unavailable()
        return self._page(token, found, status=400, error=error, name=changes.name)

    async def _over_limit(self, request: Request) -> int:
        client = request.client.host if request.client else None
        return await run_in_threadpool(self.limits.page_view, self.store, client)

    def _read(self, token: UnsubscribeToken) -> Subscription:
        return preferences.subscription(
            self.load_config(), self.store, self.members, token.email, token.list_id
        )

    def _save(self, token: UnsubscribeToken, changes: Changes) -> Saved:
        return preferences.save(
            self.load_config(), self.store, self.members, token.email, token.list_id, changes
        )

    def _page(
        self,
        token: UnsubscribeToken,
        found: Subscription,
        *,
        status: int = 200,
        saved: Saved | None = None,
        error: str = "",
        name: str | None = None,
    ) -> HTMLResponse:
        response = self.pages.render(
            "subscription.html",
            status=status,
            masked_email=mask_email(token.email),
            subscription=found,
            saved=saved,
            titles={c.list_id: c.title for c in found.choices},
            error=error,
            reader_name=found.name if name is None else name,
        )
        response.headers["Referrer-Policy"] = REFERRER_POLICY
        return response

    def _verify(self, raw: str) -> UnsubscribeToken | None:
        try:
            return self.signer.verify(raw)
        except BadTokenError:
            return None

    def _refuse(self, status: int, reason: str) -> Response:
        return self.pages.render("subscription_refused.html", status=status, reason=reason)

    def _busy(self, wait: int) -> Response:
        response = self._refuse(429, "busy")
        response.headers["Retry-After"] = str(wait)
        return response

    def _unavailable(self) -> Response:
        log.exception("the subscription page could not read the publication or its lists")
        return self._refuse(503, "unavailable")


def changes_from(form: FormData) -> Changes:
    """The changes a submitted form asks for; ``BadFormError`` for anything else."""
    action = _text(form.get(ACTION_FIELD, SAVE))
    if action not in (SAVE, LEAVE_ALL):
        raise BadFormError(f"unknown action {action!r}")
    name = form.get(NAME_FIELD)
    return Changes(
        shown=frozenset(_texts(form, SHOWN_FIELD)),
        on=frozenset(_texts(form, LIST_FIELD)),
        name=None if name is None else _text(name),
        leave_all=action == LEAVE_ALL,
    )


def _texts(form: FormData, field: str) -> list[str]:
    return [_text(value) for value in form.getlist(field)]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise BadFormError("a file where text was expected")
    return value


def _origin(base_url: str) -> str:
    """``https://news.example.org`` of ``https://news.example.org/path``."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
