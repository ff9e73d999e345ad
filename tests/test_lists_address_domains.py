"""email-validator's verdicts on domains are remembered: the same addresses and the same
refusals as its own checks, a domain checked once."""

from __future__ import annotations

import importlib

from email_validator import EmailNotValidError

from newsletter.lists.address import sendable_address

CORPUS = [
    "ann@example.org", "Bo@EXAMPLE.ORG", "cy@Bücher.DE", "dee@bücher.de", "eve@xn--bcher-kva.de",
    "fay@example..org", "gus@-bad-.org", "hal@exa mple.org", "ida@localhost", "jo@example.test",
    "kim@" + "a" * 64 + ".org", "lee@" + ("b" * 60 + ".") * 4 + "org", "mo@example.org.",
    "nan@[127.0.0.1]", "ora@ex_ample.org", "zoë@example.org", "pat@EXAMPLE.org",
]


def verdict(address: str) -> str:
    try:
        return sendable_address(address)
    except EmailNotValidError as exc:
        return f"refused: {exc}"


def test_remembered_domain_verdicts_equal_checked_ones() -> None:
    check = importlib.import_module("email_validator.validate_email").validate_email_domain_name
    check.cache_clear()
    first = [verdict(a) for a in CORPUS]  # each domain checked by email-validator itself
    hits = check.cache_info().hits
    again = [verdict(a) for a in CORPUS]
    assert again == first
    assert check.cache_info().hits > hits
    assert first[1] == "Bo@example.org" and first[2] == "cy@xn--bcher-kva.de"
    assert first[5].startswith("refused: ") and first[15].startswith("refused: ")
