"""``POST /webhooks/{provider}``: verify with the provider's receiver, then apply atomically.

Refusals are answered before anything is written: 401/403 for requests that cannot be
shown to be the provider's, 400 for an authentic body that is malformed, 413 for a body over
``MAX_BODY`` (Starlette's body limit of the route, counted as the body arrives, chunked or
not), 503 when a signing certificate could not be fetched (so the provider retries later).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...config import Settings
from ...store import Store
from ...store.events import apply_events, claim_token
from .base import (
    MAX_AGE,
    MAX_SKEW,
    Headers,
    Receiver,
    WebhookAuthError,
    WebhookCredentialsError,
    WebhookError,
)

log = logging.getLogger(__name__)

#: SendGrid batches events; a few MB is far above any real request and bounds memory use.
MAX_BODY = 5 * 1024 * 1024
#: Replay tokens are kept as long as their timestamp could still be accepted.
TOKEN_MEMORY = MAX_AGE + MAX_SKEW + timedelta(minutes=1)


class WebhookEndpoint:
    def __init__(self, settings: Settings, store: Store, receivers: Mapping[str, Receiver]) -> None:
        self.settings = settings
        self.store = store
        self.receivers = receivers

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/{provider}", self.receive, methods=["POST"], max_body_size=MAX_BODY)
        ]

    async def receive(self, request: Request) -> Response:
        receiver = self.receivers.get(request.path_params["provider"])
        if receiver is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        try:
            body = await request.body()
            applied, total = await run_in_threadpool(self._handle, receiver, request.headers, body)
        except WebhookError as exc:
            log.warning("%s webhook refused (%d): %s", receiver.name, exc.status, exc)
            return _refusal(exc)
        return JSONResponse({"received": total, "applied": applied})

    def _handle(self, receiver: Receiver, headers: Headers, body: bytes) -> tuple[int, int]:
        received = receiver.receive(headers, body)
        now = self.store.now()
        with self.store.engine.begin() as conn:
            token = received.replay_token
            if token and not claim_token(conn, receiver.name, token, now, TOKEN_MEMORY):
                raise WebhookAuthError("this request's token was already used")
            applied = apply_events(
                conn, received.events, soft_bounce_limit=self.settings.soft_bounce_limit, now=now
            )
        return applied, len(received.events)


def _refusal(exc: WebhookError) -> Response:
    headers = {}
    if isinstance(exc, WebhookCredentialsError):
        headers["WWW-Authenticate"] = 'Basic realm="webhooks", charset="UTF-8"'
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
