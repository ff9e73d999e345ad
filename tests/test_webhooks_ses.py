"""Amazon SES through SNS: envelopes signed with an RSA key and certificate made here.

The certificate is handed to the app by an injected fetcher, which also records every URL
the app asks for, so the tests see exactly what would have gone over the network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.config import Settings
from newsletter.models import DeliveryStatus, SuppressionReason
from newsletter.store import Store
from newsletter.web import create_app
from newsletter.web.webhooks.base import WebhookUnavailableError
from newsletter.web.webhooks.ses import https_fetcher
from tests.servers.feedserver import FeedServer
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

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768"
)
SES_ID = "0102018c1a2b3c4d-5e6f7a8b-9c0d-1e2f-3a4b-5c6d7e8f9a0b-000000"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey, *, expired: bool = False) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    start, end = (now - timedelta(days=30), now - timedelta(days=1)) if expired else (
        now - timedelta(days=1), now + timedelta(days=30))
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class FakeAws:
    """Serves the signing certificate; records every URL it is asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.files:
            raise WebhookUnavailableError(f"cannot fetch {url}: HTTP 404")
        return self.files[url]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these tests are about signatures; SQL on both databases is tested elsewhere."""
    with sqlite_store(tmp_path) as opened:
        yield opened


@pytest.fixture
def aws() -> FakeAws:
    return FakeAws({CERT_URL: certificate(KEY), SUBSCRIBE_URL: b"<ConfirmSubscriptionResponse/>"})


def start(
    settings: Settings, store: Store, aws: FakeAws, topics: tuple[str, ...] = (TOPIC,)
) -> WebApp:
    configured = settings.with_changes(ses_sns_topic_arns=topics)
    return WebApp(create_app(configured, store, site=SITE, fetch=aws))


@pytest.fixture
def web(settings: Settings, store: Store, aws: FakeAws) -> Iterator[WebApp]:
    with start(settings, store, aws) as running:
        yield running


def canonical(message: dict[str, Any]) -> bytes:
    """The string AWS signs, written out independently of the code under test."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def sign(
    message: dict[str, Any], version: str = "2", key: rsa.RSAPrivateKey = KEY
) -> dict[str, Any]:
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(canonical(message), padding.PKCS1v15(), algorithm)
    return {**message, "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(), "SigningCertURL": CERT_URL}


def notification(
    ses_event: dict[str, Any], message_id: str = "sns-1", **extra: Any
) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-11-25T10:30:00.123Z",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        **extra,
    }


def bounce(kind: str = "Permanent", *addresses: str) -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": kind, "bounceSubType": "General", "timestamp": "2026-11-25T10:29:59.000Z",
            "feedbackId": "0102018c-feedback",
            "bouncedRecipients": [
                {"emailAddress": a, "action": "failed", "status": "5.1.1",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
                for a in addresses or ("alice@example.com",)
            ],
        },
        "mail": {"timestamp": "2026-11-25T10:29:50.000Z", "messageId": SES_ID,
                 "destination": list(addresses or ("alice@example.com",))},
    }


def post(web: WebApp, message: dict[str, Any] | bytes) -> Any:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return web.session.post(web.url("/webhooks/ses"), data=body,
                            headers={"Content-Type": "text/plain; charset=UTF-8"})


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_bounce_suppresses_every_bounced_recipient(
    web: WebApp, store: Store, aws: FakeAws, version: str
) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=SES_ID)
    message = sign(notification(bounce("Permanent", "alice@example.com", "bob@example.com"),
                                Subject="Amazon SES Email Event Notification"), version)

    response = post(web, message)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "applied": 2}
    assert recipient(store, rid)["status"] == DeliveryStatus.BOUNCED_HARD
    assert recipient(store, rid)["error"] == "smtp; 550 5.1.1 user unknown"
    assert {(r.email, r.reason) for r in suppression_rows(store)} == {
        ("alice@example.com", SuppressionReason.BOUNCED_HARD),
        ("bob@example.com", SuppressionReason.BOUNCED_HARD),
    }
    assert aws.fetched == [CERT_URL]


def test_identity_notifications_and_other_event_types(web: WebApp, store: Store) -> None:
    rid = add_recipient(store, add_issue(store), "alice@example.com", message_id=SES_ID)
    delivery = {"notificationType": "Delivery", "mail": {"messageId": SES_ID},
                "delivery": {"timestamp": "2026-11-25T10:30:01.000Z",
                             "recipients": ["alice@example.com"], "smtpResponse": "250 ok"}}
    complaint = {"notificationType": "Complaint", "mail": {"messageId": SES_ID},
                 "complaint": {"timestamp": "2026-11-25T11:00:00.000Z",
                               "complainedRecipients": [{"emailAddress": "alice@example.com"}],
                               "complaintFeedbackType": "abuse"}}

    assert post(web, sign(notification(delivery, "sns-d"))).json()["applied"] == 1
    assert recipient(store, rid)["status"] == DeliveryStatus.DELIVERED
    assert post(web, sign(notification(complaint, "sns-c"))).json()["applied"] == 1
    assert recipient(store, rid)["status"] == DeliveryStatus.COMPLAINED
    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.COMPLAINED]


def test_transient_bounces_count_towards_the_soft_limit(
    web: WebApp, store: Store, settings: Settings, aws: FakeAws
) -> None:
    for n in range(settings.soft_bounce_limit):
        assert suppression_rows(store) == []
        post(web, sign(notification(bounce("Transient"), f"sns-{n}")))

    assert [r.reason for r in suppression_rows(store)] == [SuppressionReason.BOUNCED_SOFT]
    assert aws.fetched == [CERT_URL]  # the certificate was fetched once and kept


def test_a_tampered_message_is_refused(web: WebApp, store: Store) -> None:
    message = sign(notification(bounce()))
    message["Message"] = message["Message"].replace("alice@", "mallory@")

    assert post(web, message).status_code == 403
    assert event_rows(store) == [] and suppression_rows(store) == []


def test_a_signature_by_another_key_is_refused(web: WebApp, store: Store) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert post(web, sign(notification(bounce()), key=impostor)).status_code == 403
    assert suppression_rows(store) == []


@pytest.mark.parametrize("url", [
    "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
    "http://sns.eu-west-1.amazonaws.com/cert.pem",
    "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
    "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
    "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
])
def test_certificates_are_only_fetched_from_sns_hosts(
    web: WebApp, store: Store, aws: FakeAws, url: str
) -> None:
    message = sign(notification(bounce()))
    message["SigningCertURL"] = url

    assert post(web, message).status_code == 403
    assert aws.fetched == []
    assert suppression_rows(store) == []


def test_subscription_confirmation_visits_the_subscribe_url(web: WebApp, aws: FakeAws) -> None:
    confirmation = sign({
        "Type": "SubscriptionConfirmation", "MessageId": "sns-sub", "Token": "2336412f37fb687f",
        "TopicArn": TOPIC, "SubscribeURL": SUBSCRIBE_URL, "Timestamp": "2026-11-25T10:00:00.000Z",
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
    })

    response = post(web, confirmation)

    assert response.json() == {"received": 0, "applied": 0}
    assert aws.fetched == [CERT_URL, SUBSCRIBE_URL]


def test_a_subscribe_url_elsewhere_is_not_visited(web: WebApp, aws: FakeAws) -> None:
    confirmation = sign({
        "Type": "SubscriptionConfirmation", "MessageId": "sns-sub", "Token": "t",
        "TopicArn": TOPIC, "SubscribeURL": "https://attacker.example/confirm",
        "Timestamp": "2026-11-25T10:00:00.000Z", "Message": "subscribe",
    })

    assert post(web, confirmation).status_code == 403
    assert aws.fetched == [CERT_URL]


def test_other_topics_are_refused_before_anything_is_fetched(
    settings: Settings, store: Store, aws: FakeAws
) -> None:
    with start(settings, store, aws, topics=("arn:aws:sns:eu-west-1:123456789012:other",)) as web:
        response = post(web, sign(notification(bounce())))

    assert response.status_code == 403
    assert aws.fetched == []


def test_an_expired_certificate_is_refused(settings: Settings, store: Store) -> None:
    aws = FakeAws({CERT_URL: certificate(KEY, expired=True)})
    with start(settings, store, aws) as web:
        assert post(web, sign(notification(bounce()))).status_code == 403
    assert suppression_rows(store) == []


def test_an_unreachable_certificate_asks_sns_to_retry(settings: Settings, store: Store) -> None:
    with start(settings, store, FakeAws({})) as web:
        assert post(web, sign(notification(bounce()))).status_code == 503


def test_non_sns_bodies_are_refused_and_bad_ses_json_is_400(web: WebApp, store: Store) -> None:
    assert post(web, b"not json").status_code == 403
    assert post(web, {"Type": "Something"}).status_code == 403
    broken = sign(notification({}))
    broken["Message"] = "{not json"
    broken = sign({k: v for k, v in broken.items() if k not in ("Signature", "SignatureVersion")})
    assert post(web, broken).status_code == 400
    assert event_rows(store) == []


def test_the_real_fetcher_reads_small_answers_only(settings: Settings) -> None:
    fetch = https_fetcher(settings)
    with FeedServer() as server:
        server.route("/cert.pem", body=certificate(KEY), content_type="application/x-pem-file")
        server.route("/big.pem", body=b"x" * 1024, repeat=65)
        server.route("/moved.pem", status=301, headers={"Location": "/cert.pem"})

        assert fetch(server.url("/cert.pem")).startswith(b"-----BEGIN CERTIFICATE-----")
        for path in ("/big.pem", "/moved.pem", "/missing.pem"):
            with pytest.raises(WebhookUnavailableError):
                fetch(server.url(path))
        assert [r.path for r in server.requests_for("/cert.pem")] == ["/cert.pem"]  # not followed
        port = server.port
    with pytest.raises(WebhookUnavailableError, match="cannot fetch"):
        fetch(f"http://127.0.0.1:{port}/cert.pem")  # nothing listens there any more
