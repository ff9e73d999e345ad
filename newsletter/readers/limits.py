"""The readers' pages' limits, counted in the database every process shares: so many
sign-up submissions per client and per email address within a window
(``NEWSLETTER_SIGNUP_*``), and so many views and saves of a reader's own page per client
(``NEWSLETTER_READER_PAGE_LIMIT``), each counted apart.

A client is its IP address as the web app sees it (behind a reverse proxy, the address the
proxy forwarded, when ``newsletter serve --forwarded-allow-ips`` trusts it); an IPv6 client
counts by its /64, which one household or machine usually holds whole.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..config import Settings
from ..store import Store, reader_limits

IPV6_PREFIX = 64


def client_key(host: str | None) -> str:
    """The counter of the client at ``host``: ``client:<address or /64 network>``."""
    try:
        address = ipaddress.ip_address((host or "").strip())
    except ValueError:
        return "client:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"client:{address.ipv4_mapped}"
        return f"client:{ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)}"
    return f"client:{address}"


def address_key(email_key: str) -> str:
    return f"address:{email_key}"


def page_key(host: str | None) -> str:
    """The counter of the reader's page for the client at ``host`` (not the form's)."""
    return f"page-{client_key(host)}"


@dataclass(frozen=True, slots=True)
class Limits:
    client: int
    address: int
    window: timedelta
    page: int = 0

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.signup_client_limit, settings.signup_address_limit,
                   timedelta(minutes=settings.signup_window_minutes),
                   settings.reader_page_limit)

    def over(self, conn: Connection, key: str, limit: int, at: datetime) -> int:
        """Count a hit of ``key``; the seconds until its window ends when it is past
        ``limit``, else 0."""
        hits = reader_limits.hit(conn, key, at=at, window=self.window)
        if hits.hits <= limit:
            return 0
        left = (hits.window_start + self.window - at).total_seconds()
        return max(1, math.ceil(left))

    def page_view(self, store: Store, client: str | None) -> int:
        """Count a view or save of a reader's page from ``client`` in a transaction of its
        own; the seconds to wait when it is past the limit, else 0."""
        with store.engine.begin() as conn:
            return self.over(conn, page_key(client), self.page, store.now())
