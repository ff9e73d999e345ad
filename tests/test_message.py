"""MIME messages: headers parsed back byte-exact, parts in order, no 8bit, no injection."""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, MIMEPart
from email.utils import formataddr
from typing import Any

import pytest

from newsletter.delivery.base import BatchRecipient, to_header, to_headers
from newsletter.errors import MessageError
from newsletter.render.merge import escape_html
from newsletter.render.message import build_message, make_message_id, message_bytes

SUBJECT = "Workers–Internationalist: “quotes”, café — and 🚲"
UNSUBSCRIBE = (
    "<https://news.example.org/unsubscribe/"
    + "t0K3n" * 40
    + ">, <mailto:u@example.org?subject=unsubscribe%20weekly>"
)


def build(**changes: Any) -> EmailMessage:
    arguments: dict[str, Any] = {
        "subject": SUBJECT,
        "from_header": '"Workers–Internationalist" <news@example.org>',
        "to_header": "Zoë Ångström <zoe@example.net>",
        "reply_to": "Editor <editor@example.org>",
        "text": "Hi Zoë,\n\nThe “digest” is here.\n",
        "html": "<p>Hi Zoë,</p><p>The “digest” is here.</p>",
        "headers": {
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": '"Weekly" <weekly.news.example.org>',
        },
        "message_id": "<abc123@example.org>",
        "date": datetime(2026, 11, 24, 8, 0, tzinfo=timezone(timedelta(hours=1))),
    }
    arguments.update(changes)
    return build_message(**arguments)


def content(part: MIMEPart) -> str:
    """A part's decoded text with the wire's CRLF line ends read as newlines."""
    return str(part.get_content()).replace("\r\n", "\n")


def round_trip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message_bytes(msg), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class TestHeaders:
    def test_non_ascii_subject_and_names_are_encoded_and_survive(self) -> None:
        data = message_bytes(build())
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()
        assert b"=?utf-8?" in head
        parsed = round_trip(build())
        assert str(parsed["Subject"]) == SUBJECT
        assert parsed["From"].addresses[0].display_name == "Workers–Internationalist"
        assert parsed["From"].addresses[0].addr_spec == "news@example.org"
        assert parsed["To"].addresses[0].display_name == "Zoë Ångström"
        assert parsed["Reply-To"].addresses[0].addr_spec == "editor@example.org"

    def test_standard_headers(self) -> None:
        parsed = round_trip(build())
        assert parsed["MIME-Version"] == "1.0"
        assert parsed["Message-ID"] == "<abc123@example.org>"
        assert parsed["Date"] == "Tue, 24 Nov 2026 08:00:00 +0100"

    def test_list_headers_pass_through_unencoded(self) -> None:
        data = message_bytes(build())
        assert b"List-Unsubscribe: <https://news.example.org/unsubscribe/t0K3n" in data
        parsed = round_trip(build())
        assert parsed["List-Unsubscribe"] == UNSUBSCRIBE
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["List-Id"] == '"Weekly" <weekly.news.example.org>'

    def test_reply_to_is_optional(self) -> None:
        assert round_trip(build(reply_to=""))["Reply-To"] is None

    def test_date_defaults_to_now(self) -> None:
        parsed = round_trip(build(date=None))
        sent = parsed["Date"].datetime
        assert abs(datetime.now(UTC) - sent) < timedelta(minutes=5)


class TestBody:
    def test_alternative_parts_in_order_with_utf8(self) -> None:
        parsed = round_trip(build())
        assert parsed.get_content_type() == "multipart/alternative"
        parts = list(parsed.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        assert all(p["MIME-Version"] is None for p in parts)
        assert content(parts[0]) == "Hi Zoë,\n\nThe “digest” is here.\n"
        assert content(parts[1]) == "<p>Hi Zoë,</p><p>The “digest” is here.</p>\n"

    def test_never_8bit_and_crlf_lines_within_limit(self) -> None:
        long_html = "<p>" + "x" * 5000 + "</p><p>" + "é" * 3000 + "</p>"
        data = message_bytes(build(html=long_html, text="é" * 4000))
        assert data.isascii()
        assert b"8bit" not in data.lower()
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        parsed = round_trip(build(html=long_html))
        encodings = [p["Content-Transfer-Encoding"] for p in parsed.iter_parts()]
        assert set(encodings) <= {"quoted-printable", "base64"}
        html_part = parsed.get_body(("html",))
        assert html_part is not None
        assert content(html_part) == long_html + "\n"


class TestRefusals:
    @pytest.mark.parametrize("bad", ["a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\u2028b"])
    def test_line_breaks_in_subject(self, bad: str) -> None:
        with pytest.raises(MessageError, match=r"Subject.*line break"):
            build(subject=bad)

    def test_line_breaks_in_extra_header(self) -> None:
        with pytest.raises(MessageError, match=r"List-Unsubscribe.*line break"):
            build(headers={"List-Unsubscribe": "<https://x.example>\r\nBcc: x@evil.example"})

    def test_line_breaks_in_addresses(self) -> None:
        with pytest.raises(MessageError, match=r"To.*line break"):
            build(to_header="a@example.net\nBcc: x@evil.example")

    @pytest.mark.parametrize(
        ("bad", "shown"),
        [("Zo\x1b[2Jë", "U+001B"), ("Zoë\x00", "U+0000"), ("Zo\te", "U+0009"),
         ("Zo\x7fë", "U+007F"), ("Zo\x9bë", "U+009B")],
    )
    def test_other_control_characters_in_names_and_subjects(self, bad: str, shown: str) -> None:
        with pytest.raises(MessageError, match=rf"To: .*{re.escape(shown)}"):
            build(to_header=to_header(bad, "zoe@example.net"))  # an encoded word, if need be
        with pytest.raises(MessageError, match=rf"Subject: .*{re.escape(shown)}"):
            build(subject=f"News for {bad}")

    def test_invalid_header_name(self) -> None:
        with pytest.raises(MessageError, match="invalid header name"):
            build(headers={"X Bad:": "v"})

    def test_extra_headers_cannot_override_own_headers(self) -> None:
        with pytest.raises(MessageError, match="Subject is set by the message builder"):
            build(headers={"Subject": "other"})

    def test_incomplete_address(self) -> None:
        with pytest.raises(MessageError, match="From"):
            build(from_header="Nobody")

    def test_naive_date(self) -> None:
        with pytest.raises(MessageError, match="no time zone"):
            build(date=datetime(2026, 11, 24, 8, 0))


class TestMessageId:
    def test_unique_and_on_the_domain(self) -> None:
        first, second = make_message_id("news.example.org"), make_message_id("news.example.org")
        assert first != second
        assert first.startswith("<") and first.endswith("@news.example.org>")

    def test_international_domain_is_punycoded(self) -> None:
        assert make_message_id("bücher.example").endswith("@xn--bcher-kva.example>")

    @pytest.mark.parametrize("bad", ["", "exa mple.org", "a>b"])
    def test_invalid_domain(self, bad: str) -> None:
        with pytest.raises(MessageError, match="not a valid domain"):
            make_message_id(bad)


# -- per-recipient shortcuts agree with the standard library -----------------------------------
NAMES = [
    "", "Ann", "Ann Lee", "O'Brien", "Lee, Ann", "Dr. Who", 'Ann "Nan" Lee', "a\\b", "Zoë Ångström",
    "[team]", "x@y", "semi;colon", "  padded  ", "tab\there", "Ann (work)",
]


@pytest.mark.parametrize("name", NAMES)
def test_to_header_is_formataddr(name: str) -> None:
    assert to_header(name, "ann@example.org") == formataddr((name, "ann@example.org"))


@pytest.mark.parametrize("odd", [*NAMES, None])
def test_to_headers_of_a_batch_are_each_to_header(odd: str | None) -> None:
    """A batch of plain names, alone and with one name of each other kind."""
    names = ["Ann Lee", "Bo", "Cy Young"] + ([odd] if odd is not None else [])
    batch = [BatchRecipient(n, f"r{n}@example.org", name, {}) for n, name in enumerate(names)]
    assert to_headers(batch) == [formataddr((r.name, r.email)) for r in batch]


@pytest.mark.parametrize(
    "value",
    ["plain", "https://x.org/u/abc.DEF_-?a=1&b=2", "<b>", "a > b", "'q'", '"q"', "Ø & Ö", ""],
)
def test_escape_html_is_html_escape(value: str) -> None:
    assert escape_html(value) == html.escape(value, quote=True)
