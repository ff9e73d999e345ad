"""RFC 8058 one-click unsubscribe at ``/unsubscribe/{token}``.

A ``POST`` whose body is ``List-Unsubscribe=One-Click`` (urlencoded or multipart, as mailbox
providers send it, or as the confirmation page's form sends it) suppresses the address for
the token's list and answers 200 with a short page: no redirect, no cookie, no CSRF token,
and the same answer again if it is repeated. A ``GET`` only shows a page with a button:
link scanners follow links, and must not unsubscribe anyone by doing so. A reader already
unsubscribed sees that instead of the button. Both pages link to the reader's own page
(``/subscription/{token}``, the same token).

A token that does not verify gets the same 400 page whatever it names, so the endpoint
says nothing about which addresses are subscribed.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..models import SuppressionReason
from ..store import Store, suppressions
from ..tokens import BadTokenError, TokenSigner, UnsubscribeToken
from .pages import Pages

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
SOURCE = "one-click"


def preferences_path(token: str) -> str:
    """The reader's own page for the same token (``web/preferences.py``)."""
    return f"/subscription/{token}"


def mask_email(email: str) -> str:
    """``jane@example.org`` → ``j***@example.org``: enough to recognise, not to harvest."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


class UnsubscribeEndpoints:
    def __init__(self, store: Store, signer: TokenSigner, pages: Pages) -> None:
        self.store = store
        self.signer = signer
        self.pages = pages

    def routes(self) -> list[Route]:
        return [
            Route("/unsubscribe/{token}", self.confirm_page, methods=["GET"]),
            Route("/unsubscribe/{token}", self.unsubscribe, methods=["POST"]),
        ]

    async def confirm_page(self, request: Request) -> Response:
        raw = request.path_params["token"]
        token = self._verify(raw)
        if token is None:
            return self._invalid()
        return self.pages.render(
            "unsubscribe.html",
            masked_email=mask_email(token.email),
            list_title=self.pages.site.list_title(token.list_id),
            already=await run_in_threadpool(self._suppressed, token),
            preferences_url=preferences_path(raw),
        )

    async def unsubscribe(self, request: Request) -> Response:
        token = self._verify(request.path_params["token"])
        if token is None:
            return self._invalid()
        async with request.form() as form:
            one_click = form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
        if not one_click:
            return self.pages.render("invalid.html", status=400, reason="missing-one-click")
        await run_in_threadpool(self._suppress, token)
        return self.pages.render(
            "unsubscribed.html",
            list_title=self.pages.site.list_title(token.list_id),
            preferences_url=preferences_path(request.path_params["token"]),
        )

    def _verify(self, raw: str) -> UnsubscribeToken | None:
        try:
            return self.signer.verify(raw)
        except BadTokenError:
            return None

    def _invalid(self) -> Response:
        return self.pages.render("invalid.html", status=400, reason="bad-token")

    def _suppressed(self, token: UnsubscribeToken) -> bool:
        """Whether the list is no longer sent to the address (whatever the reason): the page
        then says so rather than offering the button again."""
        with self.store.engine.connect() as conn:
            return suppressions.is_suppressed(conn, token.email, token.list_id)

    def _suppress(self, token: UnsubscribeToken) -> None:
        with self.store.engine.begin() as conn:
            suppressions.add(
                conn, token.email, SuppressionReason.UNSUBSCRIBED, scope=token.list_id,
                source=SOURCE, at=self.store.now(),
            )
