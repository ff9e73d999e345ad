"""Mailgun webhooks: HMAC signature, freshness, replayed tokens, and what each event changes."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from newsletter.config import Secret, Settings
from newsletter.models import DeliveryStatus, SuppressionReason
from newsletter.store import Store
from newsletter.web import create_app
from tests.servers.webapp import (
    SITE,
    WebApp,
    add_issue,
    add_recipient,
    event_rows,
    recipient,
    suppression_rows,
)

SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    configured = settings.with_changes(mailgun_webhook_signing_key=Secret(SIGNING_KEY))
    with WebApp(create_app(configured, store, site=SITE)) as running:
        yield running


def signed(event_data: dict[str, Any], *, timestamp: float | None = None, token: str = "",
           key: str = SIGNING_KEY) -> dict[str, Any]:
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": digest},
        "event-data": event_data,
    }


def event(kind: str, recipient: str = "alice@example.com", **extra: Any) -> dict[str, Any]:
    data = {
        "id": secrets.token_urlsafe(16),
        "timestamp": time.time(),
        "event": kind,
        "recipient": recipient,
        "message": {"headers": {"message-id": "20261125.batch7@mg.example.org"}},
    }
    data.update(extra)
    return data


def post(web: WebApp, payload: dict[str, Any]) -> Any:
    return web.session.post(web.url("/webhooks/mailgun"), json=payload)


def test_permanent_failure_suppresses_and_updates_the_ledger(web: WebApp, store: Store) -> None:
    issue_id = add_issue(store)
    # The send answer carried the id in angle brackets; events carry it bare.
    batch = "<20261125.batch7@mg.example.org>"
    alice = add_recipient(store, issue_id, "alice@example.com", message_id=batch)
    bob = add_recipient(store, issue_id, "bob@example.com", message_id=batch)
    failure = event("failed", severity="permanent")
    failure["delivery-status"] = {"code": 550, "description": "550 5.1.1 no such user"}

    response = post(web, signed(failure))

    assert response.status_code == 200
    assert response.json() == {"received": 1, "applied": 1}
    assert recipient(store, alice)["status"] == DeliveryStatus.BOUNCED_HARD
    assert recipient(store, alice)["error"] == "550 5.1.1 no such user"
    assert recipient(store, bob)["status"] == DeliveryStatus.SENT  # same batch id, other address
    [row] = suppression_rows(store)
    assert (row.email, row.scope, row.reason, row.source) == (
        "alice@example.com", "*", SuppressionReason.BOUNCED_HARD, "webhook:mailgun",
    )
    [logged] = event_rows(store)
    assert (logged["event_id"], logged["issue_id"]) == (failure["id"], issue_id)


@pytest.mark.parametrize(("kind", "status"), [
    ("delivered", DeliveryStatus.DELIVERED),
    ("opened", DeliveryStatus.OPENED),
    ("clicked", DeliveryStatus.CLICKED),
    ("complained", DeliveryStatus.COMPLAINED),
    ("unsubscribed", DeliveryStatus.UNSUBSCRIBED),
])
def test_each_event_kind_sets_the_ledger_status(
    web: WebApp, store: Store, kind: str, status: DeliveryStatus
) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com",
                        message_id="20261125.batch7@mg.example.org")

    assert post(web, signed(event(kind))).status_code == 200
    assert recipient(store, rid)["status"] == status


def test_soft_bounces_suppress_at_the_limit(web: WebApp, store: Store, settings: Settings) -> None:
    for n in range(1, settings.soft_bounce_limit + 1):
        assert suppression_rows(store) == [], n
        response = post(web, signed(event("failed", severity="temporary")))
        assert response.json()["applied"] == 1

    [row] = suppression_rows(store)
    assert row.reason == SuppressionReason.BOUNCED_SOFT
    assert row.scope == "*"


def test_a_bad_signature_is_refused_and_changes_nothing(web: WebApp, store: Store) -> None:
    forged = signed(event("failed", severity="permanent"), key="not-the-key")
    response = post(web, forged)

    assert response.status_code == 403
    assert event_rows(store) == [] and suppression_rows(store) == []


@pytest.mark.parametrize("age", [-600, 420])  # ten minutes old; seven minutes from now
def test_stale_or_future_timestamps_are_refused(web: WebApp, store: Store, age: float) -> None:
    response = post(web, signed(event("complained"), timestamp=time.time() + age))

    assert response.status_code == 403
    assert "timestamp" in response.json()["error"]
    assert suppression_rows(store) == []


def test_a_replayed_token_is_refused(web: WebApp, store: Store) -> None:
    payload = signed(event("delivered"))
    first = post(web, payload)
    replay = post(web, payload)
    other_event_same_token = post(
        web, signed(event("complained"), token=payload["signature"]["token"])
    )

    assert first.status_code == 200
    assert (replay.status_code, other_event_same_token.status_code) == (403, 403)
    assert len(event_rows(store)) == 1
    assert suppression_rows(store) == []


def test_a_redelivered_event_is_applied_once(web: WebApp, store: Store) -> None:
    bounce = event("failed", severity="temporary")
    first = post(web, signed(bounce))
    again = post(web, signed(bounce))  # Mailgun retries with a new token

    assert (first.json()["applied"], again.json()["applied"]) == (1, 0)
    assert len(event_rows(store)) == 1


def test_malformed_event_data_after_a_valid_signature_is_400(web: WebApp, store: Store) -> None:
    no_recipient = event("delivered")
    del no_recipient["recipient"]

    assert post(web, signed(no_recipient)).status_code == 400
    assert post(web, signed("not an object")).status_code == 400  # type: ignore[arg-type]
    assert event_rows(store) == []


def test_unsigned_or_non_json_requests_are_refused(web: WebApp, store: Store) -> None:
    assert post(web, {"event-data": event("delivered")}).status_code == 403
    raw = web.session.post(web.url("/webhooks/mailgun"), data=b"\xff not json")
    assert raw.status_code == 403


def test_without_a_signing_key_every_request_is_refused(settings: Settings, store: Store) -> None:
    with WebApp(create_app(settings, store, site=SITE)) as web:
        response = post(web, signed(event("delivered")))

    assert response.status_code == 403
    assert json.loads(response.text)["error"] == "MAILGUN_WEBHOOK_SIGNING_KEY is not configured"
