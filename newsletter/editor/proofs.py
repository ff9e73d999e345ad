"""A proof: the real message of an issue, marked [TEST], sent to the publication's test
recipients or to addresses an editor names, each checked before anything is sent.

``Publisher.test_send`` sends it; this is where the addresses come from. A proof is sent
outside the ledger: the issue's state and counts stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError

from ..errors import ConfigError
from ..lists.address import sendable_address

if TYPE_CHECKING:
    from ..publisher import Publisher

#: A proof goes to a few people who check it, not to a list.
MAX_PROOF_ADDRESSES = 10
#: Between addresses typed in one field: commas, semicolons, spaces or new lines.
SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class ProofSent:
    """Where a proof went, and the provider's answer for each address ('a@b.org: sent')."""

    addresses: tuple[str, ...]
    results: tuple[str, ...]


def proof_addresses(publisher: Publisher, typed: str = "", *, field: str = "--to") -> list[str]:
    """The addresses in ``typed``, each checked and written as a provider takes it; with
    none typed, the test recipients of the settings (``NEWSLETTER_TEST_RECIPIENTS``).
    ``ConfigError`` names ``field`` and the first address that is no address."""
    given = [a for a in SEPARATORS.split(typed) if a]
    if not given:
        configured = list(publisher.settings.test_recipients)
        if not configured:
            raise ConfigError(
                f"{field}: give an address; no test recipients are set "
                "(NEWSLETTER_TEST_RECIPIENTS)"
            )
        return configured
    if len(given) > MAX_PROOF_ADDRESSES:
        raise ConfigError(
            f"{field}: {len(given)} addresses; a test goes to at most {MAX_PROOF_ADDRESSES}"
        )
    return [_checked(a, field) for a in given]


def _checked(address: str, field: str) -> str:
    try:
        return sendable_address(address)
    except EmailNotValidError as exc:
        shown = address if len(address) <= 80 else address[:79] + "…"
        raise ConfigError(f"{field}: {shown!r} is not an email address: {exc}") from exc


def send_proof(publisher: Publisher, issue_id: int, addresses: list[str]) -> ProofSent:
    """Send the issue, marked [TEST], to ``addresses`` (from ``proof_addresses``)."""
    return ProofSent(tuple(addresses), tuple(publisher.test_send(issue_id, addresses)))
