"""Resend webhooks, signed the Svix way with a whsec_ secret generated here."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from svix.webhooks import Webhook

from newsletter.config import Secret, Settings
from newsletter.errors import ConfigError
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
    sqlite_store,
    suppression_rows,
)

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about signatures; SQL on both databases is tested elsewhere."""
    with sqlite_store(tmp_path) as opened:
        yield opened


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    configured = settings.with_changes(resend_webhook_secret=Secret(SECRET))
    with WebApp(create_app(configured, store, site=SITE)) as running:
        yield running


def resend_event(kind: str, **data: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "created_at": "2026-11-25T10:30:00.000Z",
        "data": {
            "email_id": EMAIL_ID,
            "from": "Example <editor@example.org>",
            "to": ["alice@example.com"],
            "subject": "This week",
            "created_at": "2026-11-25T10:29:58.000Z",
            **data,
        },
    }


def post(web: WebApp, body: str, *, msg_id: str = "", secret: str = SECRET,
         at: datetime | None = None) -> Any:
    msg_id = msg_id or f"msg_{secrets.token_hex(8)}"
    when = at or datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(int(when.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, when, body),
    }
    return web.session.post(web.url("/webhooks/resend"), data=body.encode(), headers=headers)


def test_a_permanent_bounce_suppresses_and_updates_the_ledger(web: WebApp, store: Store) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=EMAIL_ID)
    bounce = resend_event("email.bounced", bounce={
        "message": "The recipient's mailbox does not exist.", "subType": "General",
        "type": "Permanent",
    })

    response = post(web, json.dumps(bounce), msg_id="msg_bounce1")

    assert response.json() == {"received": 1, "applied": 1}
    row = recipient(store, rid)
    assert (row["status"], row["error"]) == (
        DeliveryStatus.BOUNCED_HARD, "The recipient's mailbox does not exist.",
    )
    [suppressed] = suppression_rows(store)
    assert suppressed.email == "alice@example.com"
    assert suppressed.reason == SuppressionReason.BOUNCED_HARD
    [logged] = event_rows(store)
    assert logged["event_id"] == "msg_bounce1"


@pytest.mark.parametrize(("kind", "status"), [
    ("email.delivered", DeliveryStatus.DELIVERED),
    ("email.opened", DeliveryStatus.OPENED),
    ("email.clicked", DeliveryStatus.CLICKED),
    ("email.complained", DeliveryStatus.COMPLAINED),
])
def test_event_types_map_to_ledger_statuses(
    web: WebApp, store: Store, kind: str, status: DeliveryStatus
) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=EMAIL_ID)

    assert post(web, json.dumps(resend_event(kind))).status_code == 200
    assert recipient(store, rid)["status"] == status


def test_other_event_types_are_accepted_and_ignored(web: WebApp, store: Store) -> None:
    response = post(web, json.dumps(resend_event("email.delivery_delayed")))

    assert response.json() == {"received": 0, "applied": 0}
    assert event_rows(store) == []


def test_a_retried_delivery_is_applied_once(web: WebApp, store: Store) -> None:
    body = json.dumps(resend_event("email.bounced", bounce={"type": "Transient"}))
    first = post(web, body, msg_id="msg_retry")
    again = post(web, body, msg_id="msg_retry")

    assert (first.json()["applied"], again.json()["applied"]) == (1, 0)


def test_wrong_secret_tampered_body_and_stale_timestamp_are_refused(
    web: WebApp, store: Store
) -> None:
    body = json.dumps(resend_event("email.complained"))
    other = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    stale = datetime.now(UTC) - timedelta(minutes=10)

    assert post(web, body, secret=other).status_code == 403
    assert post(web, body, at=stale).status_code == 403
    now = datetime.now(UTC)
    signed_then_changed = web.session.post(
        web.url("/webhooks/resend"), data=body.replace("complained", "delivered").encode(),
        headers={"svix-id": "msg_1", "svix-timestamp": str(int(now.timestamp())),
                 "svix-signature": Webhook(SECRET).sign("msg_1", now, body)},
    )
    assert signed_then_changed.status_code == 403
    assert suppression_rows(store) == [] and event_rows(store) == []


def test_malformed_json_after_a_valid_signature_is_400(web: WebApp, store: Store) -> None:
    assert post(web, '{"type": "email.bounced", ').status_code == 400
    assert post(web, json.dumps({"type": "email.bounced", "data": {}})).status_code == 400
    assert event_rows(store) == []


def test_the_secret_must_be_a_svix_secret(settings: Settings, store: Store) -> None:
    with pytest.raises(ConfigError, match="whsec_"):
        bad = settings.with_changes(resend_webhook_secret=Secret("hunter2!"))
        create_app(bad, store, site=SITE)
