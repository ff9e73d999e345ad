"""SendGrid Event Webhook: ECDSA P-256 signatures made with a key generated here."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.config import Settings
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

KEY = ec.generate_private_key(ec.SECP256R1())
DER_PUBLIC = KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
BATCH_ID = "ZpLB2Vd8TvuAsdbwz3Vxdg"


def configured(settings: Settings, public_key: str | None = None) -> Settings:
    shown = public_key if public_key is not None else base64.b64encode(DER_PUBLIC).decode()
    return settings.with_changes(sendgrid_webhook_public_key=shown)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about signatures; SQL on both databases is tested elsewhere."""
    with sqlite_store(tmp_path) as opened:
        yield opened


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(configured(settings), store, site=SITE)) as running:
        yield running


def sg_event(
    kind: str, email: str = "alice@example.com", n: int = 0, **extra: Any
) -> dict[str, Any]:
    item = {
        "email": email,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": f"{kind}-{email}-{n}",
        "sg_message_id": f"{BATCH_ID}.filterdrecv-5bf99c48d-2ld8b-18-5CD5B5C6-3A.{n}",
    }
    item.update(extra)
    return item


def post(web: WebApp, body: bytes, *, timestamp: int | None = None,
         key: ec.EllipticCurvePrivateKey = KEY, tamper: bool = False) -> Any:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    return web.session.post(web.url("/webhooks/sendgrid"), data=body + (b" " if tamper else b""),
                            headers=headers)


def as_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def test_a_batch_of_events_updates_each_recipient(web: WebApp, store: Store) -> None:
    issue_id = add_issue(store)
    alice = add_recipient(store, issue_id, "alice@example.com", message_id=BATCH_ID)
    bob = add_recipient(store, issue_id, "bob@example.com", message_id=BATCH_ID)
    carol = add_recipient(store, issue_id, "carol@example.com", message_id=BATCH_ID)
    body = as_body([
        sg_event("processed", "alice@example.com"),
        sg_event("delivered", "alice@example.com"),
        sg_event("bounce", "bob@example.com", type="bounce", reason="550 unknown user"),
        sg_event("spamreport", "carol@example.com"),
    ])

    response = post(web, body)

    assert response.status_code == 200
    assert response.json() == {"received": 3, "applied": 3}  # "processed" is not a status
    assert recipient(store, alice)["status"] == DeliveryStatus.DELIVERED
    assert recipient(store, bob)["status"] == DeliveryStatus.BOUNCED_HARD
    assert recipient(store, carol)["status"] == DeliveryStatus.COMPLAINED
    assert {(r.email, r.reason, r.scope) for r in suppression_rows(store)} == {
        ("bob@example.com", SuppressionReason.BOUNCED_HARD, "*"),
        ("carol@example.com", SuppressionReason.COMPLAINED, "*"),
    }
    assert {e["issue_id"] for e in event_rows(store)} == {issue_id}


def test_blocked_bounces_are_soft_until_the_limit(
    web: WebApp, store: Store, settings: Settings
) -> None:
    limit = settings.soft_bounce_limit
    body = as_body([sg_event("bounce", type="blocked", n=n) for n in range(limit - 1)])
    assert post(web, body).json()["applied"] == limit - 1
    assert suppression_rows(store) == []

    post(web, as_body([sg_event("bounce", type="blocked", n=limit)]))

    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.BOUNCED_SOFT]


def test_unsubscribes_and_drops_mirror_sendgrid_suppressions(web: WebApp, store: Store) -> None:
    rid = add_recipient(store, add_issue(store, list_id="daily"), "alice@example.com",
                        message_id=BATCH_ID, list_id="daily")
    body = as_body([
        sg_event("group_unsubscribe", "alice@example.com"),
        sg_event("dropped", "dan@example.com", reason="Bounced Address"),
        sg_event("dropped", "erin@example.com", reason="Spam Content"),  # not about the address
        sg_event("deferred", "erin@example.com"),
    ])

    assert post(web, body).json() == {"received": 2, "applied": 2}
    assert recipient(store, rid)["status"] == DeliveryStatus.UNSUBSCRIBED
    assert {(r.email, r.scope, r.reason) for r in suppression_rows(store)} == {
        ("alice@example.com", "daily", SuppressionReason.UNSUBSCRIBED),
        ("dan@example.com", "*", SuppressionReason.BOUNCED_HARD),
    }


def test_signatures_from_another_key_or_over_another_body_are_refused(
    web: WebApp, store: Store
) -> None:
    body = as_body([sg_event("spamreport")])
    other = ec.generate_private_key(ec.SECP256R1())

    assert post(web, body, key=other).status_code == 403
    assert post(web, body, tamper=True).status_code == 403
    unsigned = web.session.post(web.url("/webhooks/sendgrid"), data=body)
    assert unsigned.status_code == 403
    assert event_rows(store) == [] and suppression_rows(store) == []


def test_stale_timestamps_are_refused(web: WebApp, store: Store) -> None:
    response = post(web, as_body([sg_event("spamreport")]), timestamp=int(time.time()) - 3600)

    assert response.status_code == 403
    assert suppression_rows(store) == []


def test_malformed_json_after_a_valid_signature_is_400(web: WebApp, store: Store) -> None:
    assert post(web, b'[{"event": "bounce",').status_code == 400
    assert post(web, json.dumps(sg_event("delivered")).encode()).status_code == 400  # not an array
    assert post(web, as_body([{"event": "delivered"}])).status_code == 400  # no sg_event_id
    assert event_rows(store) == []


def test_the_key_may_be_given_as_pem(settings: Settings, store: Store) -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with WebApp(create_app(configured(settings, pem), store, site=SITE)) as web:
        assert post(web, as_body([sg_event("open")])).status_code == 200


def test_a_key_that_is_not_p256_stops_the_app_at_start(settings: Settings, store: Store) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigError, match="P-256"):
        create_app(configured(settings, base64.b64encode(p384).decode()), store, site=SITE)
    with pytest.raises(ConfigError, match="not a public key"):
        create_app(configured(settings, "bm90IGEga2V5"), store, site=SITE)
