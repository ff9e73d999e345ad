"""SMTP delivery with the standard library: one kept-open connection per sender thread.

A fallback for publishers with a mail server or relay. Each recipient gets their own
message (their own unsubscribe URL). Refused recipients are failed individually; a lost
connection after the message data was sent leaves that batch's outcome unknown.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading

from ...errors import ProviderAuthError, TransientProviderError, UnknownOutcomeError
from ...models import DeliveryStatus, SuppressionReason
from ...render.message import make_message_id, message_bytes
from ..base import (
    BatchResult,
    OutgoingBatch,
    PreparedIssue,
    Provider,
    RecipientResult,
    mime_message,
)


class SmtpProvider(Provider):
    name = "smtp"
    max_batch = 50
    idempotent = False

    def __init__(self, settings: object) -> None:
        super().__init__(settings)  # type: ignore[arg-type]
        self._local = threading.local()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        timeout = s.http_timeout
        try:
            if s.smtp_security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
                if s.smtp_security == "starttls":
                    conn.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                conn.login(s.smtp_username, s.smtp_password.reveal())
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderAuthError(f"login refused: {exc.smtp_code}", provider=self.name) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientProviderError(
                f"could not connect to {s.smtp_host}:{s.smtp_port}: {exc}: check SMTP_HOST and "
                "SMTP_PORT", provider=self.name
            ) from exc
        return conn

    @property
    def connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        results = []
        for index, recipient in enumerate(batch.recipients):
            try:
                results.append(
                    self._send_one(issue, recipient.values, recipient.email, recipient.to_header)
                )
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if index == 0:
                    raise TransientProviderError(
                        f"connection lost: {exc}", provider=self.name
                    ) from exc
                raise UnknownOutcomeError(
                    f"connection lost mid-batch: {exc}", provider=self.name
                ) from exc
        return BatchResult(results)

    def _send_one(
        self, issue: PreparedIssue, values: dict[str, str] | object, address: str, to_header: str
    ) -> RecipientResult:
        message_id = make_message_id(issue.message_id_domain)
        copy = issue.merge(values)  # type: ignore[arg-type]
        data = message_bytes(mime_message(issue, copy, to_header, message_id))
        try:
            self.connection.sendmail(issue.from_email, [address], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(address, (550, b"refused"))
            return _refused(address, code, reply)
        except smtplib.SMTPResponseException as exc:
            if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
                return _refused(address, exc.smtp_code, exc.smtp_error)
            raise
        return RecipientResult(address, DeliveryStatus.SENT, message_id)

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
            self._local.conn = None


def _refused(address: str, code: int, reply: bytes | str) -> RecipientResult:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    temporary = 400 <= code < 500
    return RecipientResult(
        address,
        DeliveryStatus.FAILED,
        error=f"{code} {text}"[:500],
        retryable=temporary,
        suppress=SuppressionReason.BOUNCED_HARD if code in (550, 551, 553) else None,
    )
