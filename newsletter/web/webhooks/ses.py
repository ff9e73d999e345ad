"""Amazon SES events delivered by SNS: the SNS envelope is verified, then its ``Message`` read.

SNS signs a canonical string built from some of the envelope's fields (which ones depends on
the message type) with the RSA key of a certificate it publishes; ``SignatureVersion`` 1 means
SHA1withRSA and 2 SHA256withRSA. The certificate URL is only fetched when it is an HTTPS URL
on an ``sns.<region>.amazonaws.com`` host, and the fetcher is injectable so tests serve a
certificate of their own. A ``SubscriptionConfirmation`` is confirmed by fetching its
``SubscribeURL`` under the same host rule.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ...config import Settings
from ...models import DeliveryStatus
from .base import (
    Clock,
    Headers,
    Receiver,
    WebhookAuthError,
    WebhookEvent,
    WebhookPayloadError,
    WebhookUnavailableError,
    field,
    from_iso,
    load_json,
    text_field,
)

log = logging.getLogger(__name__)

#: Reads an HTTPS URL; raises ``WebhookUnavailableError`` when it cannot.
Fetcher = Callable[[str], bytes]

SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}
OPTIONAL_FIELDS = frozenset({"Subject"})
SIGNATURE_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}
MAX_FETCH_BYTES = 64 * 1024
CACHED_CERTIFICATES = 16

# SES event type -> the section of the event that holds its time and details.
SECTIONS = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
}


def https_fetcher(settings: Settings) -> Fetcher:
    """The real fetcher: one GET, no redirects followed, a small size cap."""

    def fetch(url: str) -> bytes:
        with requests.Session() as session:
            session.trust_env = False
            if settings.http_proxy:
                session.proxies = {"https": settings.http_proxy}
            try:
                return _get(session, url, settings.http_timeout)
            except requests.RequestException as exc:
                raise WebhookUnavailableError(f"cannot fetch {url}: {exc}") from exc

    return fetch


def _get(session: requests.Session, url: str, timeout: float) -> bytes:
    with session.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
        if response.status_code != 200:
            raise WebhookUnavailableError(f"cannot fetch {url}: HTTP {response.status_code}")
        content = response.raw.read(MAX_FETCH_BYTES + 1, decode_content=True)
    if len(content) > MAX_FETCH_BYTES:
        raise WebhookUnavailableError(f"{url}: answer larger than {MAX_FETCH_BYTES} bytes")
    return bytes(content)


def check_sns_url(url: str, what: str) -> None:
    """Refuse, before any request is made, a URL that is not HTTPS on an SNS host."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise WebhookAuthError(f"{what} has a bad port") from exc
    trusted = (
        parts.scheme == "https"
        and SNS_HOST.fullmatch(parts.hostname or "") is not None
        and parts.username is None
        and port in (None, 443)
    )
    if not trusted:
        raise WebhookAuthError(f"{what} is not an HTTPS URL on an sns.<region>.amazonaws.com host")


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """AWS's canonical form: ``name\\nvalue\\n`` for each signed field, in this fixed order."""
    names = SIGNED_FIELDS.get(str(message.get("Type")))
    if names is None:
        raise WebhookAuthError(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in names:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise WebhookAuthError(f"SNS message has no {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


class SesReceiver(Receiver):
    name = "ses"

    def __init__(self, settings: Settings, clock: Clock, fetch: Fetcher | None = None) -> None:
        super().__init__(settings, clock)
        self._fetch = fetch or https_fetcher(settings)
        self._certificates: dict[str, x509.Certificate] = {}
        if settings.provider == self.name and not settings.ses_sns_topic_arns:
            # Anyone can create a topic and have AWS sign its messages to this endpoint.
            log.warning("SES_SNS_TOPIC_ARNS is not set: SNS messages from any topic are accepted")

    def authenticate(self, headers: Headers, body: bytes) -> str:
        message = _envelope(body)
        self._check_topic(message)
        self._verify(message)
        if message["Type"] == "SubscriptionConfirmation":
            self._confirm(message)
        return ""

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        message = _envelope(body)
        if message["Type"] != "Notification":
            return []
        document = load_json(text_field(message, "Message"), "the SNS Message")
        if not isinstance(document, Mapping):
            raise WebhookPayloadError("the SNS Message is not an SES event object")
        return self._events(document, text_field(message, "MessageId"))

    # -- verification ---------------------------------------------------------------------
    def _check_topic(self, message: Mapping[str, Any]) -> None:
        allowed = self.settings.ses_sns_topic_arns
        if allowed and message.get("TopicArn") not in allowed:
            raise WebhookAuthError("TopicArn is not one of SES_SNS_TOPIC_ARNS")

    def _verify(self, message: Mapping[str, Any]) -> None:
        algorithm = SIGNATURE_HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise WebhookAuthError("unsupported SNS SignatureVersion")
        canonical = string_to_sign(message)
        key = self._public_key(str(message.get("SigningCertURL", "")))
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
            key.verify(signature, canonical, padding.PKCS1v15(), algorithm())
        except (binascii.Error, InvalidSignature) as exc:
            raise WebhookAuthError("invalid SNS signature") from exc

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        check_sns_url(url, "SigningCertURL")
        certificate = self._certificates.get(url)
        if certificate is None:
            certificate = _load_certificate(self._fetch(url), url)
            if len(self._certificates) >= CACHED_CERTIFICATES:
                self._certificates.clear()
            self._certificates[url] = certificate
        _check_validity(certificate, self.clock())
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookAuthError("the SNS signing certificate does not hold an RSA key")
        return key

    def _confirm(self, message: Mapping[str, Any]) -> None:
        url = str(message.get("SubscribeURL", ""))
        check_sns_url(url, "SubscribeURL")
        self._fetch(url)

    # -- SES events ----------------------------------------------------------------------
    def _events(self, document: Mapping[str, Any], sns_id: str) -> list[WebhookEvent]:
        kind = str(document.get("eventType") or document.get("notificationType") or "")
        if kind not in SECTIONS:
            return []
        section = field(document, SECTIONS[kind])
        message_id = text_field(document, "mail", "messageId")
        at = from_iso(field(section, "timestamp"))
        status = _status(kind, section)
        return [
            WebhookEvent(
                provider=self.name, event_id=f"{sns_id}:{email.lower()}", type=status,
                email=email, provider_message_id=message_id, at=at, detail=detail,
            )
            for email, detail in _recipients(kind, document, section)
        ]


def _envelope(body: bytes) -> Mapping[str, Any]:
    """The SNS envelope; one that is not a JSON object cannot be verified, so it is refused."""
    try:
        message = load_json(body)
    except WebhookPayloadError as exc:
        raise WebhookAuthError("not an SNS message") from exc
    if not isinstance(message, Mapping) or message.get("Type") not in SIGNED_FIELDS:
        raise WebhookAuthError("not an SNS message")
    return message


def _load_certificate(pem: bytes, url: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise WebhookAuthError(f"{url} is not a PEM certificate") from exc


def _check_validity(certificate: x509.Certificate, now: datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookAuthError("the SNS signing certificate is not valid now")


def _status(kind: str, section: Mapping[str, Any]) -> DeliveryStatus:
    if kind == "Bounce":
        permanent = section.get("bounceType") == "Permanent"
        return DeliveryStatus.BOUNCED_HARD if permanent else DeliveryStatus.BOUNCED_SOFT
    return {
        "Complaint": DeliveryStatus.COMPLAINED,
        "Delivery": DeliveryStatus.DELIVERED,
        "Open": DeliveryStatus.OPENED,
        "Click": DeliveryStatus.CLICKED,
    }[kind]


def _recipients(
    kind: str, document: Mapping[str, Any], section: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(address, detail) for everyone the event concerns."""
    if kind == "Bounce":
        summary = f"{section.get('bounceType', '')}/{section.get('bounceSubType', '')}"
        return [(text_field(r, "emailAddress"), str(r.get("diagnosticCode") or summary))
                for r in _list(section, "bouncedRecipients")]
    if kind == "Complaint":
        feedback = str(section.get("complaintFeedbackType") or "")
        return [(text_field(r, "emailAddress"), feedback)
                for r in _list(section, "complainedRecipients")]
    if kind == "Delivery":
        response = str(section.get("smtpResponse") or "")
        return [(str(a), response) for a in _list(section, "recipients")]
    link = str(section.get("link") or "")  # opens and clicks concern the message's recipients
    return [(str(a), link) for a in _list(document["mail"], "destination")]


def _list(section: Mapping[str, Any], name: str) -> list[Any]:
    value = field(section, name)
    if not isinstance(value, list):
        raise WebhookPayloadError(f"event field {name!r} is not a list")
    return value
