"""Public sign-up pages: ``/subscribe/{list}`` and its confirmation link.

The handlers parse requests and render pages; what a submission or a confirmation does is
``readers.signup``'s. A list that takes no sign-ups has no such pages (404).

``?embed=1`` gives the form alone, compact, to be framed by the publication's own site
(``newsletter lists form``): that page, and the answers to a form sent from it, may be
framed by the origin of the publication's ``base_url``, every other page by no one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..models import MailingList
from ..readers.links import LinkProblem
from ..readers.signup import Answer, Outcome, SignupForm, Signups
from .pages import SECURITY_HEADERS, Pages
from .unsubscribe import mask_email

#: The form's fields, and the longest value read of each (longer ones are cut, then refused
#: by the checks: no address or name is that long).
FIELDS = {"email": 400, "name": 400, "website": 400, "started": 200, "embed": 1}


class SignupEndpoints:
    def __init__(self, signups: Callable[[], Signups], pages: Pages) -> None:
        self._signups = signups
        self.pages = pages

    @property
    def signups(self) -> Signups:
        return self._signups()

    @cached_property
    def _framed_by(self) -> str:
        return _origin(self.signups.config.publication.base_url)

    def routes(self) -> list[Route]:
        return [
            Route("/subscribe/{list_id}", self.form_page, methods=["GET"]),
            Route("/subscribe/{list_id}", self.submit, methods=["POST"]),
            Route("/subscribe/{list_id}/confirm/{token}", self.confirm_page, methods=["GET"]),
            Route("/subscribe/{list_id}/confirm/{token}", self.confirm, methods=["POST"]),
        ]

    def _list(self, request: Request) -> MailingList:
        found = self.signups.taking_signups(request.path_params["list_id"])
        if found is None:
            raise HTTPException(404)
        return found

    # -- the form --------------------------------------------------------------------------
    async def form_page(self, request: Request) -> Response:
        mailing_list = self._list(request)
        embed = request.query_params.get("embed") == "1"
        return self._form(mailing_list, embed=embed)

    async def submit(self, request: Request) -> Response:
        mailing_list = self._list(request)
        async with request.form(max_files=0, max_fields=20) as form:
            values = {name: str(form.get(name, ""))[:size] for name, size in FIELDS.items()}
        embed = values.pop("embed") == "1"
        submitted = SignupForm(list_id=mailing_list.id, **values)
        client = request.client.host if request.client else None
        answer = await run_in_threadpool(self.signups.request, submitted, client)
        return self._answer(mailing_list, submitted, answer, embed)

    def _answer(
        self, mailing_list: MailingList, form: SignupForm, answer: Answer, embed: bool
    ) -> Response:
        if answer.outcome is Outcome.ACCEPTED:
            return self._page("subscribe_sent.html", mailing_list, embed=embed)
        if answer.outcome is Outcome.THROTTLED:
            response = self._page("subscribe_busy.html", mailing_list, status=429, embed=embed)
            response.headers["Retry-After"] = str(answer.retry_after)
            return response
        if answer.outcome is Outcome.INVALID:
            return self._form(mailing_list, form=form, error=answer.problem, status=400,
                              embed=embed)
        return self._form(mailing_list, form=form, again=True, embed=embed)

    def _form(
        self, mailing_list: MailingList, *, form: SignupForm | None = None, error: str = "",
        again: bool = False, status: int = 200, embed: bool = False,
    ) -> Response:
        signup_form = {
            "list_id": mailing_list.id,
            "started": self.signups.stamp(mailing_list.id),
            "email": form.email if form else "",
            "name": form.name if form else "",
            "error": error,
            "again": again,
            "embed": embed,
        }
        return self._page("subscribe.html", mailing_list, status=status, embed=embed,
                          signup_form=signup_form)

    # -- the link --------------------------------------------------------------------------
    async def confirm_page(self, request: Request) -> Response:
        mailing_list = self._list(request)
        token = request.path_params["token"]
        link = await run_in_threadpool(self.signups.check, mailing_list.id, token)
        if isinstance(link, LinkProblem):
            return self._bad_link(mailing_list, link)
        return self._page("subscribe_confirm.html", mailing_list,
                          masked_email=mask_email(link.email_key))

    async def confirm(self, request: Request) -> Response:
        mailing_list = self._list(request)
        token = request.path_params["token"]
        done = await run_in_threadpool(self.signups.confirm, mailing_list.id, token)
        if isinstance(done, LinkProblem):
            return self._bad_link(mailing_list, done)
        return self._page("subscribe_confirmed.html", mailing_list,
                          masked_email=mask_email(done.email))

    def _bad_link(self, mailing_list: MailingList, problem: LinkProblem) -> Response:
        return self._page("subscribe_link.html", mailing_list, status=400, problem=str(problem))

    # -- pages -----------------------------------------------------------------------------
    def _page(
        self, name: str, mailing_list: MailingList, *, status: int = 200, embed: bool = False,
        **context: Any,
    ) -> HTMLResponse:
        response = self.pages.render(name, status=status, mailing_list=mailing_list,
                                     embed=embed, **context)
        if embed and self._framed_by:
            policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
                "frame-ancestors 'none'", f"frame-ancestors {self._framed_by}"
            )
            response.headers["Content-Security-Policy"] = policy
            response.headers["X-Frame-Options"] = ""  # left out: the policy says who frames
        return response


def _origin(url: str) -> str:
    """``https://news.example.org`` of ``https://news.example.org/about``; "" for none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"
