"""What an action's redirect says on the page it leads to: a notice in the query, signed
with the session's own secret (itsdangerous), so that a link made elsewhere cannot put
words on the desk's page, and shown for a while after, should the page be reloaded."""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from .sessions import DeskSession

#: How long after an action its notice is still shown when the page is reloaded.
NOTICE_SECONDS = 600


def signed(session: DeskSession, text: str) -> str:
    """``text`` as the ``notice`` query parameter carries it."""
    return _signer(session).dumps(text)


def read(request: Request, session: DeskSession) -> str:
    """The notice the query carries, if this session signed it lately; else ""."""
    carried = request.query_params.get("notice", "")
    if not carried:
        return ""
    try:
        return str(_signer(session).loads(carried, max_age=NOTICE_SECONDS))
    except BadSignature:
        return ""


def _signer(session: DeskSession) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(session.csrf_token, salt="newsletter.desk.notice")
