"""The one form an address takes everywhere: the form every provider can deliver to."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

from email_validator import EmailNotValidError, validate_email

from ..errors import ConfigError

#: The module (its package exports a function of the same name in its place).
_library = importlib.import_module("email_validator.validate_email")

#: How many distinct domains keep their verdict (a few hundred bytes each).
DOMAINS_REMEMBERED = 4096


def _remembering_domains() -> None:
    """email-validator checks the domain of every address afresh: three quarters of its time
    (IDNA and UTS #46 character checks in Python), though a list's million members share a
    few thousand domains. The check is a pure function of the domain and two flags, and its
    result (two strings) is only read, so its verdicts on valid domains are kept; a domain
    it refuses raises as before, every time. Left alone if a version moves the function."""
    check = getattr(_library, "validate_email_domain_name", None)
    if check is None or hasattr(check, "cache_info"):
        return
    remembered = functools.lru_cache(maxsize=DOMAINS_REMEMBERED)(check)

    @functools.wraps(check)
    def domain_verdict(domain: str, **flags: Any) -> Any:
        return dict(remembered(domain, **flags))  # a copy: the caller may keep or change it

    domain_verdict.cache_info = remembered.cache_info  # type: ignore[attr-defined]
    domain_verdict.cache_clear = remembered.cache_clear  # type: ignore[attr-defined]
    setattr(_library, "validate_email_domain_name", domain_verdict)  # noqa: B010 - a module


_remembering_domains()


def sendable_address(raw: str, *, check_deliverability: bool = False) -> str:
    """email-validator's normalised form of ``raw``, with an internationalised domain in its
    ASCII (IDNA) form; ``EmailNotValidError`` when ``raw`` is not a valid address.

    Characters outside ASCII before the @ would need SMTPUTF8 (RFC 6531). Amazon SES does
    not accept it, and the email package will not put such an address in a To header, so it
    is refused here, with the row that holds it, rather than failing a send. A Unicode
    domain is sent as ``xn--…``, as SES asks, and compared in that form too.

    RFC 5321's limits (§4.5.3.1) hold: email-validator always refuses an address over 254
    octets (the 256-octet path less its angle brackets) and a domain over 253; ``strict``
    adds the local part's 64, which relays enforce and email-validator otherwise waives.
    """
    valid = validate_email(
        raw, check_deliverability=check_deliverability, allow_smtputf8=False, strict=True
    )
    return valid.ascii_email or valid.normalized


def address_key(email: str) -> str:
    """How addresses are compared: case-insensitively, as the suppression store does."""
    return email.strip().lower()


def normalise_address(raw: str, *, check_deliverability: bool = False) -> str:
    """The address in its normalised form (``sendable_address``), or ConfigError."""
    address = raw.strip()
    if not address:
        raise ConfigError("no email address")
    try:
        return sendable_address(address, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise ConfigError(f"invalid address {address!r}: {exc}") from exc


def row_key(raw: str) -> str:
    """The comparison key of an address as written in a file, valid or not."""
    try:
        return address_key(normalise_address(raw))
    except ConfigError:
        return address_key(raw)


def same_address(raw: str, key: str) -> bool:
    """Whether ``row_key(raw) == key``, asking email-validator (about 20 µs) only about an
    address whose part before the @ could be the key's: its normalisation changes only the
    case of the domain, its IDNA form and quoting there, so other rows are answered at once."""
    written = address_key(raw)
    if written == key:
        return True
    if _local_part(written) != _local_part(key):
        return False
    return row_key(raw) == key


def _local_part(address: str) -> str:
    """The part before the last @, without quotes or escapes (which normalising may drop)."""
    return address.rpartition("@")[0].replace('"', "").replace("\\", "")


class AddressKeys:
    """Many address keys that rows of a file are matched against at once, as ``same_address``
    would match them: email-validator is asked only about a row whose part before the @
    could be one of theirs."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = frozenset(keys)
        self._local_parts = {_local_part(key) for key in self.keys}

    def find(self, raw: str) -> str | None:
        """The key the address written as ``raw`` has, if it is one of these."""
        written = address_key(raw)
        if written in self.keys:
            return written
        if _local_part(written) not in self._local_parts:
            return None
        key = row_key(raw)
        return key if key in self.keys else None
