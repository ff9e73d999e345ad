"""Postmark webhooks: HTTP Basic credentials (Postmark signs nothing) and its record types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
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
    basic_auth,
    event_rows,
    recipient,
    sqlite_store,
    suppression_rows,
)

USER, PASSWORD = "postmark-hooks", "correct horse battery staple"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
AUTH = basic_auth(USER, PASSWORD)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about credentials; SQL on both databases is tested elsewhere."""
    with sqlite_store(tmp_path) as opened:
        yield opened


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    configured = settings.with_changes(
        postmark_webhook_user=USER, postmark_webhook_password=Secret(PASSWORD)
    )
    with WebApp(create_app(configured, store, site=SITE)) as running:
        yield running


def bounce(kind: str = "HardBounce", bounce_id: int = 4323372036854775807) -> dict[str, Any]:
    return {
        "RecordType": "Bounce", "MessageStream": "broadcast", "ID": bounce_id, "Type": kind,
        "TypeCode": 1, "Name": "Hard bounce", "MessageID": MESSAGE_ID,
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account does not exist.",
        "Email": "alice@example.com", "From": "editor@example.org",
        "BouncedAt": "2026-11-25T16:33:54.9070259Z", "Inactive": True,
    }


def post(web: WebApp, payload: Any, headers: dict[str, str] | None = None) -> Any:
    sent = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    return web.session.post(web.url("/webhooks/postmark"), data=json.dumps(payload).encode(),
                            headers=sent)


def test_a_hard_bounce_suppresses_and_updates_the_ledger(web: WebApp, store: Store) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=MESSAGE_ID)

    response = post(web, bounce())

    assert response.json() == {"received": 1, "applied": 1}
    assert recipient(store, rid)["status"] == DeliveryStatus.BOUNCED_HARD
    [row] = suppression_rows(store)
    assert (row.reason, row.scope, row.source) == (
        SuppressionReason.BOUNCED_HARD, "*", "webhook:postmark",
    )
    assert event_rows(store)[0]["event_id"] == "Bounce:4323372036854775807"


def test_soft_and_transient_bounces_suppress_at_the_limit(
    web: WebApp, store: Store, settings: Settings
) -> None:
    kinds = ["SoftBounce", "Transient", "SoftBounce", "Transient"][: settings.soft_bounce_limit]
    for n, kind in enumerate(kinds, start=1):
        assert suppression_rows(store) == []
        post(web, bounce(kind, bounce_id=n))

    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.BOUNCED_SOFT]


def test_other_record_types(web: WebApp, store: Store) -> None:
    rid = add_recipient(store, add_issue(store, list_id="daily"), "alice@example.com",
                        message_id=MESSAGE_ID, list_id="daily")
    delivery = {"RecordType": "Delivery", "MessageID": MESSAGE_ID, "Recipient": "alice@example.com",
                "DeliveredAt": "2026-11-25T16:34:52Z", "Details": "250 ok"}
    click = {"RecordType": "Click", "MessageID": MESSAGE_ID, "Recipient": "alice@example.com",
             "ReceivedAt": "2026-11-25T17:00:00Z", "OriginalLink": "https://example.org/a"}
    change = {"RecordType": "SubscriptionChange", "MessageID": MESSAGE_ID,
              "Recipient": "alice@example.com", "ChangedAt": "2026-11-25T18:00:00Z",
              "SuppressSending": True, "SuppressionReason": "ManualSuppression"}

    for payload, status in [(delivery, DeliveryStatus.DELIVERED), (click, DeliveryStatus.CLICKED),
                            (change, DeliveryStatus.UNSUBSCRIBED)]:
        assert post(web, payload).json()["applied"] == 1
        assert recipient(store, rid)["status"] == status
    assert [(r.scope, r.reason) for r in suppression_rows(store)] == [
        ("daily", SuppressionReason.UNSUBSCRIBED),
    ]
    assert post(web, delivery).json()["applied"] == 0  # the same record again


@pytest.mark.parametrize("headers", [
    {},
    basic_auth(USER, "wrong"),
    basic_auth("someone", PASSWORD),
    {"Authorization": "Bearer " + PASSWORD},
    {"Authorization": "Basic !!!not-base64"},
])
def test_wrong_or_missing_credentials_get_a_challenge(
    web: WebApp, store: Store, headers: dict[str, str]
) -> None:
    response = post(web, bounce(), headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert suppression_rows(store) == [] and event_rows(store) == []


def test_without_configured_credentials_everything_is_refused(
    settings: Settings, store: Store
) -> None:
    with WebApp(create_app(settings, store, site=SITE)) as web:
        response = post(web, bounce(), basic_auth("", ""))

    assert response.status_code == 403
    assert suppression_rows(store) == []


def test_malformed_json_with_good_credentials_is_400(web: WebApp, store: Store) -> None:
    bad = web.session.post(web.url("/webhooks/postmark"), data=b"{oops", headers=AUTH)
    no_address = bounce()
    del no_address["Email"]

    assert bad.status_code == 400
    assert post(web, no_address).status_code == 400
    assert event_rows(store) == []
