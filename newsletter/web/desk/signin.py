"""Signing in and out of the desk."""

from __future__ import annotations

import logging
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...store import Store
from ...store import desk as desk_store
from ...wording import counted
from . import accounts
from .guard import CSRF_FIELD, FORGED, SIGNIN, SIGNIN_FORM_SECONDS, Guard, safe_next
from .pages import DeskPages
from .sessions import DeskSession, Sessions
from .throttle import Throttle

log = logging.getLogger(__name__)

#: The one answer to any failed sign-in: it does not say which half was wrong.
WRONG = "Wrong name or password."


class SigninEndpoints:
    def __init__(
        self, store: Store, sessions: Sessions, guard: Guard, pages: DeskPages
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.guard = guard
        self.pages = pages
        self.throttle = Throttle(store)

    def routes(self) -> list[Route]:
        return [
            Route(SIGNIN, self.form, methods=["GET"]),
            Route(SIGNIN, self.submit, methods=["POST"]),
            Route("/desk/signout", self.guard()(self.signout), methods=["POST"]),
        ]

    async def form(self, request: Request) -> Response:
        if await self.guard.session_of(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), 303)
        return self._form(request, request.query_params.get("next"), "", 200)

    def _form(
        self, request: Request, next_path: str | None, message: str, status: int,
        name: str = "", headers: dict[str, str] | None = None,
    ) -> Response:
        nonce, token = self.guard.new_signin_token()
        response = self.pages.render(
            "signin.html", None, status, signin_csrf=token, next=safe_next(next_path),
            message=message, name=name,
        )
        response.headers.update(headers or {})
        policy = self.guard.policy
        response.set_cookie(
            policy.pre_name, nonce, max_age=SIGNIN_FORM_SECONDS, path="/", secure=policy.secure,
            httponly=True, samesite="strict",
        )
        return response

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        next_path = _text(form, "next")
        if not self.guard.signin_token_ok(request, form.get(CSRF_FIELD)):
            return self._form(request, next_path, FORGED, 403)
        name, password = _text(form, "name").strip(), _text(form, "password")
        address = request.client.host if request.client else "unknown"
        wait = await run_in_threadpool(self.throttle.retry_after, name, address)
        if wait:
            log.warning("desk: a sign-in from %s refused for %s s (throttled)", address, wait)
            return self._throttled(request, next_path, name, wait)
        verified = await run_in_threadpool(self._verify, name, password)
        if verified is None:
            # The address only: a name typed wrong is sometimes the password.
            log.warning("desk: a failed sign-in from %s", address)
            await run_in_threadpool(self.throttle.failed, name, address)
            return self._form(request, next_path, WRONG, 401, name)
        await run_in_threadpool(self.throttle.succeeded, name)
        session_id = await run_in_threadpool(self.sessions.start, verified.user)
        response = RedirectResponse(safe_next(next_path), status_code=303)
        policy = self.guard.policy
        response.set_cookie(
            policy.name, session_id, max_age=self.sessions.max_age, path="/",
            secure=policy.secure, httponly=True, samesite="lax",
        )
        response.delete_cookie(policy.pre_name, path="/", secure=policy.secure, httponly=True,
                               samesite="strict")
        return response

    def _throttled(self, request: Request, next_path: str, name: str, wait: int) -> Response:
        when = _duration(wait)
        message = f"Too many failed sign-ins. Try again in {when}."
        return self._form(request, next_path, message, 429, name, {"Retry-After": str(wait)})

    def _verify(self, name: str, password: str) -> accounts.Verified | None:
        with self.store.engine.connect() as conn:
            user = desk_store.find_user(conn, name) if name else None
        verified = accounts.verify(user, password)
        if verified is not None and verified.rehashed is not None:
            with self.store.engine.begin() as conn:  # argon2's parameters were raised
                desk_store.set_password_hash(conn, verified.user.id, verified.rehashed)
        return verified

    async def signout(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        await run_in_threadpool(self.sessions.end, session)
        response = RedirectResponse(SIGNIN, status_code=303)
        policy = self.guard.policy
        response.delete_cookie(policy.name, path="/", secure=policy.secure, httponly=True,
                               samesite="lax")
        return response


def _text(form: FormData, field: str) -> str:
    value = form.get(field)
    return value if isinstance(value, str) else ""


def _duration(seconds: int) -> str:
    if seconds < 120:
        return counted(seconds, "second")
    return f"{round(timedelta(seconds=seconds).total_seconds() / 60)} minutes"
