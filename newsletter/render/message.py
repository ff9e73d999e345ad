"""The MIME message of one copy, for SMTP and for providers that take raw MIME.

Built with the standard library's ``email`` package under an SMTP policy that allows only
7-bit data: bodies go out quoted-printable or base64 (never ``8bit``, which some relays and
SES mangle), and non-ASCII subjects and display names become RFC 2047 encoded words.
Header values are checked before they are set: a CR or LF in a value could otherwise start a
header of its own (header injection), so it, or any other control character, is an error,
never folded or stripped (``header_value_problem``).
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import AddressHeader, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy

from ..errors import MessageError

#: RFC 5322 §2.1.1: a line is at most 998 characters, CRLF excluded.
MAX_LINE = 998

#: Headers holding URIs or ids (RFC 2369, 2919, 8058, Gmail's Feedback-ID). The email package
#: would turn an over-long ASCII token such as a signed unsubscribe URL into RFC 2047 encoded
#: words to fold it, which no client decodes in these headers; they fold at spaces instead.
VERBATIM_HEADERS = (
    "list-unsubscribe", "list-unsubscribe-post", "list-id", "list-help", "list-subscribe",
    "list-post", "list-owner", "list-archive", "archived-at", "feedback-id",
)  # fmt: skip


class _VerbatimHeader(UnstructuredHeader, BaseHeader):
    """An ASCII header folded only at whitespace; non-ASCII values fold as usual."""

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if not value.isascii():
            return str(super().fold(policy=policy))
        limit = policy.max_line_length or MAX_LINE
        lines = [f"{self.name}:"]
        for word in value.split():
            if len(lines[-1]) + 1 + len(word) > limit and lines[-1] != f"{self.name}:":
                lines.append("")
            lines[-1] += f" {word}"
        return policy.linesep.join(lines) + policy.linesep


def _registry() -> HeaderRegistry:
    # A registry of our own: policies share theirs with every clone, email.policy.default's too.
    registry = HeaderRegistry()
    for name in VERBATIM_HEADERS:
        registry.map_to_type(name, _VerbatimHeader)
    return registry


#: 7-bit only: bodies are quoted-printable or base64, never 8bit.
POLICY = email.policy.SMTP.clone(cte_type="7bit", header_factory=_registry())

#: Headers this module writes itself; ``headers`` may not override them.
OWN_HEADERS = frozenset(
    {
        "date", "from", "to", "reply-to", "subject", "message-id", "mime-version",
        "content-type", "content-transfer-encoding",
    }
)  # fmt: skip

#: What no header value may hold: control characters (C0, DEL, C1: CR and LF among them)
#: and the separators ``str.splitlines`` also breaks on, which the email package treats as
#: line ends. Any of them could start a header of its own (header injection).
UNFIT_FOR_HEADERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CHARACTER_NAMES = {
    "\t": "a tab", "\n": "a line feed", "\r": "a carriage return",
    "\u2028": "a line separator", "\u2029": "a paragraph separator",
}  # fmt: skip
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8: printable ASCII except ":"


def build_message(
    *,
    subject: str,
    from_header: str,
    to_header: str,
    reply_to: str,
    text: str,
    html: str,
    headers: Mapping[str, str],
    message_id: str,
    date: datetime | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message: text/plain first, text/html last (preferred)."""
    msg = EmailMessage(policy=POLICY)
    _set_address(msg, "From", from_header)
    _set_address(msg, "To", to_header)
    if reply_to:
        _set_address(msg, "Reply-To", reply_to)
    _set(msg, "Subject", subject)
    _set(msg, "Date", email.utils.format_datetime(_aware(date or datetime.now(UTC))))
    _set(msg, "Message-ID", _bracketed(message_id))
    for name, value in headers.items():
        _set_extra(msg, name, value)
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.make_alternative()
    html_part = EmailMessage(policy=POLICY)
    html_part.set_content(html, subtype="html", charset="utf-8")
    del html_part["MIME-Version"]  # set_content adds it; only the top level carries it
    msg.attach(html_part)
    return msg


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as sent over SMTP: CRLF line ends, no line longer than 998 characters."""
    data = msg.as_bytes(policy=POLICY)
    for number, line in enumerate(data.split(b"\r\n"), start=1):
        if len(line) > MAX_LINE:
            raise MessageError(
                f"line {number} of the message is {len(line)} characters (limit {MAX_LINE}): "
                f"{line[:60]!r}…"
            )
    return data


def make_message_id(domain: str) -> str:
    """A new, globally unique ``<id@domain>``; the domain should be the sender's."""
    try:
        ascii_domain = domain.strip().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise MessageError(f"Message-ID domain {domain!r} is not a valid domain name") from exc
    if not ascii_domain or not re.fullmatch(r"[A-Za-z0-9.-]+", ascii_domain):
        raise MessageError(f"Message-ID domain {domain!r} is not a valid domain name")
    return f"<{uuid.uuid4().hex}@{ascii_domain}>"


def header_value_problem(value: str) -> str:
    """What makes ``value`` unfit for an email header, such as "holds a line feed (U+000A)";
    "" when nothing does. The one rule for headers: ``build_message`` refuses what it
    names, and a send fails a recipient whose values it names before any is built."""
    found = UNFIT_FOR_HEADERS.search(value)
    if found is None:
        return ""
    return f"holds {describe_character(found.group())}"


def describe_character(character: str) -> str:
    """``a line feed (U+000A)``, ``a control character (U+001B)``."""
    what = _CHARACTER_NAMES.get(character, "a control character")
    return f"{what} (U+{ord(character):04X})"


def _set(msg: EmailMessage, name: str, value: str) -> None:
    problem = header_value_problem(value)
    if problem:
        raise MessageError(f"header {name}: the value {problem}, which a header cannot carry "
                           f"(a line break would start a header of its own): {value!r}")
    try:
        msg[name] = value
    except (ValueError, TypeError, IndexError) as exc:
        raise MessageError(f"header {name}: cannot use {value!r}: {exc}") from exc


def _set_address(msg: EmailMessage, name: str, value: str) -> None:
    _set(msg, name, value)
    header = msg[name]
    if not isinstance(header, AddressHeader) or not header.addresses:
        raise MessageError(f"header {name}: no address in {value!r}")
    if any(not address.username or not address.domain for address in header.addresses):
        raise MessageError(f"header {name}: {value!r} is not a complete address")
    for address in header.addresses:  # a name in an encoded word, decoded: the reader sees it
        problem = header_value_problem(address.display_name)
        if problem:
            raise MessageError(f"header {name}: the name {problem}, which a header cannot "
                               f"carry: {address.display_name!r}")


def _set_extra(msg: EmailMessage, name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise MessageError(f"invalid header name {name!r}")
    if name.lower() in OWN_HEADERS:
        raise MessageError(f"header {name} is set by the message builder, not by extra headers")
    _set(msg, name, value)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise MessageError(f"Date {moment.isoformat()} has no time zone")
    return moment


def _bracketed(message_id: str) -> str:
    value = message_id.strip()
    if "@" not in value:
        raise MessageError(f"Message-ID {message_id!r} has no '@domain' part")
    return value if value.startswith("<") else f"<{value}>"
