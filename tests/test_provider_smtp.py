"""SMTP delivery against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.config import Settings
from newsletter.delivery.base import BatchRecipient, OutgoingBatch, PreparedIssue
from newsletter.delivery.providers.smtp import SmtpProvider
from newsletter.errors import TransientProviderError
from newsletter.models import DeliveryStatus, SuppressionReason
from newsletter.render.merge import MergeTemplate


@dataclass
class Inbox:
    """Accepts mail, refusing some recipients permanently and some temporarily."""

    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        if address in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))  # type: ignore[arg-type]
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def issue() -> PreparedIssue:
    return PreparedIssue(
        issue_id=7,
        list_id="weekly",
        list_id_header='"Weekly" <weekly.news.example.org>',
        from_email="editor@news.example.org",
        from_name="Harbour “Weekly”",
        reply_to="",
        subject=MergeTemplate.parse("Workers–Internationalist news"),
        html=MergeTemplate.parse("<p>Hi %%nl:name%%</p>", escape=True),
        text=MergeTemplate.parse("Hi %%nl:name%%"),
        list_unsubscribe=MergeTemplate.parse("<%%nl:unsubscribe_url%%>"),
        message_id_domain="news.example.org",
    )


def batch(*addresses: str) -> OutgoingBatch:
    recipients = [
        BatchRecipient(
            i,
            a,
            f"Zoë <{i}>",
            {"name": f"Zoë <{i}>", "unsubscribe_url": f"https://x.example/u/{i}"},
        )
        for i, a in enumerate(addresses)
    ]
    return OutgoingBatch(1, 1, "key", recipients)


def smtp_settings(settings: Settings, port: int) -> Settings:
    return settings.with_changes(
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        http_timeout=5.0,
    )


def test_each_recipient_gets_their_own_message(
    settings: Settings, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    provider = SmtpProvider(smtp_settings(settings, port))
    result = provider.send_batch(issue(), batch("a@example.org", "b@example.org"))
    provider.close()
    assert [r.status for r in result.results] == [DeliveryStatus.SENT] * 2
    assert [rcpts for rcpts, _ in handler.messages] == [["a@example.org"], ["b@example.org"]]
    parsed = email.message_from_bytes(handler.messages[1][1], policy=email.policy.default)
    assert parsed["Subject"] == "Workers–Internationalist news"
    assert parsed["List-Unsubscribe"] == "<https://x.example/u/1>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = parsed.get_body(("html",))
    assert html is not None and "Zoë &lt;1&gt;" in html.get_content()


def test_refused_and_deferred_recipients(settings: Settings, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    handler.refuse.add("gone@example.org")
    handler.defer.add("busy@example.org")
    provider = SmtpProvider(smtp_settings(settings, port))
    result = provider.send_batch(
        issue(), batch("gone@example.org", "busy@example.org", "ok@example.org")
    )
    provider.close()
    gone, busy, ok = result.results
    assert gone.status == DeliveryStatus.FAILED and not gone.retryable
    assert gone.suppress == SuppressionReason.BOUNCED_HARD and gone.error.startswith("550")
    assert busy.status == DeliveryStatus.FAILED and busy.retryable
    assert ok.status == DeliveryStatus.SENT
    assert len(handler.messages) == 1


def test_unreachable_server_is_transient(settings: Settings) -> None:
    provider = SmtpProvider(smtp_settings(settings, free_port()))
    refused = "could not connect to 127.0.0.1:.*: check SMTP_HOST and SMTP_PORT"
    with pytest.raises(TransientProviderError, match=refused):
        provider.send_batch(issue(), batch("a@example.org"))
