"""``Retry-After`` read as RFC 9110 has it, and never trusted into a send that never ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from newsletter.config import Settings
from newsletter.delivery.base import LONGEST_RETRY_AFTER, retry_after_seconds
from newsletter.delivery.providers.registry import provider_class
from newsletter.errors import TransientProviderError


def answer(retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date gone by: at once
        ("999999999", LONGEST_RETRY_AFTER),
        (None, None),
        ("", None),
        ("soon", None),  # unreadable: the usual backoff
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(answer(header)) == seconds


@pytest.mark.parametrize("utc", [True, False])
def test_retry_after_as_an_http_date(utc: bool) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    text = format_datetime(when, usegmt=True) if utc else format_datetime(when.replace(tzinfo=None))
    seconds = retry_after_seconds(answer(text))
    assert seconds is not None and 85 <= seconds <= 90



@pytest.mark.parametrize(
    ("provider", "header", "value"),
    [
        ("sendgrid", "X-RateLimit-Reset", lambda: str(int(datetime.now(UTC).timestamp()) + 60)),
        ("brevo", "x-sib-ratelimit-reset", lambda: "60"),
    ],
)
def test_a_reset_header_stands_in_for_a_missing_retry_after(
    settings: Settings, provider: str, header: str, value: Callable[[], str]
) -> None:
    """SendGrid and Brevo say when a rate limit resets in a header of their own."""
    sender = provider_class(provider)(settings)
    limited = answer(None)
    limited.headers[header] = value()
    with pytest.raises(TransientProviderError) as raised:
        sender.raise_for_error(limited)  # type: ignore[attr-defined]
    assert raised.value.retry_after is not None and 55 <= raised.value.retry_after <= 60
    limited.headers["Retry-After"] = "5"  # the standard header, when sent, wins
    assert sender.wait_asked(limited) == 5.0  # type: ignore[attr-defined]
