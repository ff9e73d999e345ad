"""The one form an address takes everywhere: the form every provider can deliver to."""

from __future__ import annotations

from email_validator import validate_email


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
