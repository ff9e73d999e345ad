"""Brevo transactional webhooks: HTTP Basic credentials and Brevo's event names."""

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

USER, PASSWORD = "brevo", "s3cret-Webhook-pass"
MESSAGE_ID = "<202611251030.12345678901@smtp-relay.mailin.fr>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about credentials; SQL on both databases is tested elsewhere."""
    with sqlite_store(tmp_path) as opened:
        yield opened


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    configured = settings.with_changes(
        brevo_webhook_user=USER, brevo_webhook_password=Secret(PASSWORD)
    )
    with WebApp(create_app(configured, store, site=SITE)) as running:
        yield running


def brevo_event(kind: str, ts: int = 1795602600, **extra: Any) -> dict[str, Any]:
    return {
        "event": kind, "email": "alice@example.com", "id": 512345, "date": "2026-11-25 10:30:00",
        "ts": ts, "message-id": MESSAGE_ID, "ts_event": ts, "subject": "This week",
        "tag": "issue-7", "ts_epoch": ts * 1000 + 123, **extra,
    }


def post(web: WebApp, payload: Any, auth: tuple[str, str] = (USER, PASSWORD)) -> Any:
    return web.session.post(web.url("/webhooks/brevo"), data=json.dumps(payload).encode(),
                            headers={"Content-Type": "application/json", **basic_auth(*auth)})


def test_a_hard_bounce_suppresses_and_updates_the_ledger(web: WebApp, store: Store) -> None:
    # Brevo's send answer and its events both carry the id in angle brackets.
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=MESSAGE_ID)

    response = post(web, brevo_event("hard_bounce", reason="550 mailbox unavailable"))

    assert response.json() == {"received": 1, "applied": 1}
    assert recipient(store, rid)["status"] == DeliveryStatus.BOUNCED_HARD
    [row] = suppression_rows(store)
    assert (row.email, row.reason, row.detail) == (
        "alice@example.com", SuppressionReason.BOUNCED_HARD, "550 mailbox unavailable",
    )
    assert event_rows(store)[0]["provider_message_id"] == MESSAGE_ID.strip("<>")


def test_soft_bounces_suppress_at_the_limit(web: WebApp, store: Store, settings: Settings) -> None:
    for n in range(settings.soft_bounce_limit):
        assert suppression_rows(store) == []
        assert post(web, brevo_event("soft_bounce", ts=1795602600 + n)).json()["applied"] == 1

    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.BOUNCED_SOFT]


@pytest.mark.parametrize(("kind", "status", "reason"), [
    ("delivered", DeliveryStatus.DELIVERED, None),
    ("unique_opened", DeliveryStatus.OPENED, None),
    ("click", DeliveryStatus.CLICKED, None),
    ("spam", DeliveryStatus.COMPLAINED, SuppressionReason.COMPLAINED),
    ("unsubscribed", DeliveryStatus.UNSUBSCRIBED, SuppressionReason.UNSUBSCRIBED),
    ("blocked", DeliveryStatus.BOUNCED_HARD, SuppressionReason.BOUNCED_HARD),
])
def test_event_names(web: WebApp, store: Store, kind: str, status: DeliveryStatus,
                     reason: SuppressionReason | None) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=MESSAGE_ID)

    assert post(web, brevo_event(kind)).status_code == 200
    assert recipient(store, rid)["status"] == status
    assert [r.reason for r in suppression_rows(store)] == ([reason] if reason else [])


def test_batched_events_and_redeliveries(web: WebApp, store: Store) -> None:
    batch = [brevo_event("delivered"), brevo_event("opened"), brevo_event("request")]

    assert post(web, batch).json() == {"received": 2, "applied": 2}
    assert post(web, batch).json() == {"received": 2, "applied": 0}


def test_wrong_credentials_are_refused(web: WebApp, store: Store) -> None:
    response = post(web, brevo_event("hard_bounce"), auth=(USER, PASSWORD + "x"))

    assert response.status_code == 401
    assert suppression_rows(store) == [] and event_rows(store) == []


def test_without_configured_credentials_everything_is_refused(
    settings: Settings, store: Store
) -> None:
    with WebApp(create_app(settings, store, site=SITE)) as web:
        assert post(web, brevo_event("hard_bounce"), auth=("", "")).status_code == 403


def test_malformed_json_with_good_credentials_is_400(web: WebApp, store: Store) -> None:
    assert post(web, "just a string").status_code == 400
    assert post(web, {"event": "delivered", "email": "a@example.com"}).status_code == 400  # no time
    assert event_rows(store) == []
