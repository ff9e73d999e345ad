"""Everything held about one reader's address: its rows in the member files, what the store
keeps about it, and what the address cache remembers of it.

``reader_data`` gathers it for ``newsletter subscribers export``, and a forgetting
(``lists.forget``) starts from it. The address is compared as everywhere else, normalised
and lower-cased (``row_key``): ``Ann@Example.ORG`` and ``ann@example.org`` are one reader.
The member files are read a record at a time, as every reader and editor of them does
(``csvfile.iter_records``), so a row's line is the one ``lists check`` would name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ListError
from ..store import Store, reader_signups, suppressions
from ..store import reader_rows as rows
from ..store.suppressions import Suppression
from .address import row_key, same_address
from .addresscache import AddressCache, Spelling, cache_path
from .config import PublicationConfig
from .csvfile import Header, Record, first_header, iter_records


@dataclass(frozen=True, slots=True)
class Membership:
    """A row of a member file that holds the address, with its columns as written."""

    path: Path
    line: int
    lists: tuple[str, ...]
    row: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "line": self.line,
            "at": f"{self.path}:{self.line}",
            "lists": list(self.lists),
            "row": dict(self.row),
        }


@dataclass(frozen=True, slots=True)
class ReaderData:
    """What is held about one address (``address``: its comparison key)."""

    address: str
    memberships: list[Membership]
    #: Rows in CSV files of ``subscribers/`` that no list reads (an old copy, an import).
    unlisted: list[Membership]
    suppressions: list[Suppression]
    forgotten_since: datetime | None
    soft_bounces: rows.SoftBounces | None
    ledger: list[rows.LedgerRow]
    events: list[rows.EventRow]
    spellings: list[Spelling]
    #: Sign-up journal entries, sign-up requests and one-off messages (``reader_signups``).
    signups: dict[str, list[dict[str, Any]]]

    @property
    def lists(self) -> tuple[str, ...]:
        """The lists the address is a member of, by the member files."""
        return tuple(dict.fromkeys(lid for m in self.memberships for lid in m.lists))

    def to_json(self) -> dict[str, Any]:
        forgotten = None
        if self.forgotten_since is not None:
            forgotten = {"since": self.forgotten_since.isoformat(),
                         "kept_as": suppressions.forgotten_key(self.address)}
        return {
            "address": self.address,
            "member_files": [m.to_json() for m in self.memberships],
            "other_files": [m.to_json() for m in self.unlisted],
            "suppressions": [_suppression_json(s) for s in self.suppressions],
            "forgotten": forgotten,
            "soft_bounces": self.soft_bounces.to_json() if self.soft_bounces else None,
            "ledger": [r.to_json() for r in self.ledger],
            "events": [e.to_json() for e in self.events],
            "address_cache": [s._asdict() for s in self.spellings],
            "signups": self.signups,
        }


def _suppression_json(row: Suppression) -> dict[str, Any]:
    return {
        "list": row.scope, "reason": str(row.reason), "source": row.source,
        "detail": row.detail, "created_at": row.created_at.isoformat(),
    }


def reader_key(email: str) -> str:
    """The comparison key of the address given on the command line (valid or not, so that a
    row the lists refuse can be found too)."""
    if not email.strip():
        raise ConfigError("EMAIL: no address given")
    return row_key(email)


def reader_data(
    config: PublicationConfig, store: Store, var_dir: Path, email: str
) -> ReaderData:
    """Everything held about ``email``. A member file that cannot be read stops it
    (``ListError``): the address could be in it."""
    key = reader_key(email)
    found, unlisted = memberships(config, key), unlisted_mentions(config, key)
    with store.engine.connect() as conn:
        ledger = rows.ledger_rows(conn, key)
        message_ids = [r.provider_message_id for r in ledger]
        return ReaderData(
            address=key,
            memberships=found,
            unlisted=unlisted,
            suppressions=rows.suppression_rows(conn, key),
            forgotten_since=suppressions.forgotten_since(conn, key),
            soft_bounces=rows.soft_bounces_of(conn, key),
            ledger=ledger,
            events=rows.event_rows(conn, key, message_ids),
            spellings=remembered_spellings(var_dir, key),
            signups=reader_signups.export(conn, key),
        )


def list_files(config: PublicationConfig) -> list[Path]:
    """Every list's member files, each once, in the order the lists name them."""
    return list(dict.fromkeys(p for lid in config.lists for p in config.member_paths(lid)))


def memberships(config: PublicationConfig, key: str) -> list[Membership]:
    """The rows holding ``key`` in every list's member files."""
    return [
        found
        for path in list_files(config)
        for found in rows_holding(path, key, config.lists_reading(path))
    ]


def unlisted_mentions(config: PublicationConfig, key: str) -> list[Membership]:
    """The rows holding ``key`` in the other CSV files of ``subscribers/``; a file that does
    not read as a member file is passed over (it is not one)."""
    listed = {p.resolve() for p in list_files(config)}
    found: list[Membership] = []
    for path in sorted(config.subscribers_dir.glob("*.csv")):
        if path.resolve() in listed:
            continue
        try:
            found += rows_holding(path, key, ())
        except ListError:
            continue
    return found


def rows_holding(path: Path, key: str, lists: tuple[str, ...]) -> list[Membership]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ListError(path, None, f"cannot read: {exc.strerror}") from exc
    with handle:
        return list(_matching(iter_records(handle, path), path, key, lists))


def _matching(
    records: Iterator[Record], path: Path, key: str, lists: tuple[str, ...]
) -> Iterator[Membership]:
    header = first_header(records, path)
    at = header.email_index
    for record in records:
        fields = record.fields
        if fields is not None and at < len(fields) and same_address(fields[at], key):
            yield Membership(path, record.line, lists, columns_of(record, header))


def columns_of(record: Record, header: Header) -> dict[str, str]:
    """The row as column → value; a row whose values do not line up with the header is
    given whole, as its text."""
    fields = record.fields or []
    if len(fields) != len(header.columns):
        return {"text": record.text.rstrip("\r\n")}
    return dict(zip(header.columns, fields, strict=True))


def remembered_spellings(var_dir: Path, key: str) -> list[Spelling]:
    """What the address cache remembers of ``key`` (nothing if there is no cache yet: none
    is made just to look)."""
    path = cache_path(var_dir)
    if not path.exists():
        return []
    cache = AddressCache(path)
    try:
        return cache.spellings(key)
    finally:
        cache.close()
