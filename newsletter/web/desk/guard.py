"""What every desk request goes through: the session, the role, and for a POST the CSRF
token and the browser's own word on where the request came from (OWASP's advice: a
synchronizer token, with ``Origin`` and ``Sec-Fetch-Site`` checked when sent).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .sessions import CookiePolicy, DeskSession, Sessions

SIGNIN = "/desk/signin"
HOME = "/desk/issues"
#: A sign-in form is good for an hour after it was shown.
SIGNIN_FORM_SECONDS = 3600
CSRF_FIELD = "csrf"

Handler = Callable[[Request, DeskSession, FormData | None], Awaitable[Response]]
Refusal = Callable[[Request, int, str], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only a path of the desk itself, else the issues list.
    ``//evil.example``, ``/\\evil.example``, ``https://…`` and control characters are out."""
    if not value or len(value) > 500:
        return HOME
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or not value.startswith("/desk/")
        or "\\" in value
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value)
        or value.startswith(SIGNIN)
    ):
        return HOME
    return value


def signin_redirect(request: Request) -> RedirectResponse:
    """To the sign-in form, which comes back here after; a POST comes back to the list (a
    form's action is no page to return to, and its token died with the session)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in ("GET", "HEAD"):
        here = HOME
    return RedirectResponse(f"{SIGNIN}?next={quote(safe_next(here), safe='/')}", status_code=303)


def from_this_site(request: Request, public_origin: str) -> bool:
    """False when the browser says the request was made by another site. Browsers that send
    neither header are left to the token."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin in {own, public_origin}


def tokens_match(given: object, expected: str) -> bool:
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """Wraps desk endpoints: no session → 303 to sign-in; wrong role → 403; a POST without
    its token, or from another site → 403, before the endpoint runs."""

    def __init__(
        self,
        sessions: Sessions,
        policy: CookiePolicy,
        secret: str,
        public_origin: str,
        refuse: Refusal,
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.public_origin = public_origin
        self.refuse = refuse
        self._signin_tokens = URLSafeTimedSerializer(secret, salt="newsletter.desk.signin")

    async def session_of(self, request: Request) -> DeskSession | None:
        return await run_in_threadpool(self.sessions.find, request.cookies.get(self.policy.name))

    def __call__(self, role: str = "editor") -> Callable[[Handler], Endpoint]:
        def decorate(handler: Handler) -> Endpoint:
            @wraps(handler)
            async def endpoint(request: Request) -> Response:
                session = await self.session_of(request)
                if session is None:
                    return signin_redirect(request)
                if role == "admin" and session.user.role != "admin":
                    return self.refuse(request, 403, "This page is for administrators.")
                form = None
                if request.method == "POST":
                    form = await request.form()
                    if not self.post_allowed(request, form.get(CSRF_FIELD), session.csrf_token):
                        return self.refuse(request, 403, FORGED)
                return await handler(request, session, form)

            endpoint.desk_role = role  # type: ignore[attr-defined]
            return endpoint

        return decorate

    def post_allowed(self, request: Request, given: object, expected: str) -> bool:
        return from_this_site(request, self.public_origin) and tokens_match(given, expected)

    # -- the sign-in form's own token, before any session exists ---------------------------
    def new_signin_token(self) -> tuple[str, str]:
        """A nonce for a short-lived cookie, and the signed copy of it the form carries."""
        nonce = secrets.token_urlsafe(32)
        return nonce, self._signin_tokens.dumps(nonce)

    def signin_token_ok(self, request: Request, given: object) -> bool:
        nonce = request.cookies.get(self.policy.pre_name)
        if not isinstance(given, str) or not nonce:
            return False
        if not from_this_site(request, self.public_origin):
            return False
        try:
            signed = self._signin_tokens.loads(given, max_age=SIGNIN_FORM_SECONDS)
        except BadSignature:
            return False
        return isinstance(signed, str) and tokens_match(signed, nonce)


FORGED = (
    "This form has expired or did not come from the desk. Go back, reload the page and "
    "try again."
)
