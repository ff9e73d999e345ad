"""The key of what a list's audience is read from, and whether an earlier audience can be
copied for it.

An issue's audience is what its list's member files give when read with the day's rules:
the files' bytes, in their order; the columns the issue's templates use; the readers
forgotten at their request (left out as the files are read); and the rules themselves,
which are email-validator's version and this project's reading rules (the address cache
is named after both, ``addresscache.cache_path``) and ``FORMAT`` below. Two freezes with
the same key read the same audience, so the second may copy the first's ledger rows
(``store.audience_sources``); when the files differ only by rows appended to the last one,
it copies them and reads the appended rows (``lists.appended``), and when a file was added
after the others, it copies them and reads that file. Suppressions are not in the key: every
freeze applies them.

A list checked for deliverability has no key: its verdicts depend on DNS at the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Connection

from ..store import audience_sources
from ..store.audience_sources import AudienceSource, FileMark, SourceKey
from .addresscache import AddressCache, cache_path
from .appended import TailStart, appended_since

#: Bumped whenever a change to how member files are read would give another audience from
#: the same bytes (a new rule for names, addresses or columns): old keys then match nothing.
FORMAT = 2


def audience_key(
    paths: Sequence[Path],
    list_id: str,
    keep: Set[str] | None,
    *,
    var_dir: Path,
    forgotten: Set[bytes],
    check_deliverability: bool = False,
) -> SourceKey | None:
    """What the audience read from ``paths`` depends on; None (no key) when
    ``check_deliverability``."""
    if check_deliverability:
        return None
    shape = {
        "format": FORMAT,
        "list": list_id,
        "columns": None if keep is None else sorted(keep),
        "rules": cache_path(var_dir).name,
        "forgotten": hashlib.sha256(b"".join(sorted(forgotten))).hexdigest(),
    }
    rules = hashlib.sha256(orjson.dumps(shape)).hexdigest()
    return SourceKey(rules, tuple(file_mark(path) for path in paths))


def file_mark(path: Path) -> FileMark:
    """The file's name, and the size and SHA-256 of the same bytes (it may be growing)."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return FileMark(path.name, handle.tell(), digest)


@dataclass(frozen=True, slots=True)
class Reuse:
    """An earlier audience to copy, and where the rows appended to the list's last file
    since it was read begin (None: the files read the same)."""

    source: AudienceSource
    after: TailStart | None


def reusable(conn: Connection, list_id: str, key: SourceKey, paths: Sequence[Path],
             cache: AddressCache) -> Reuse | None:
    """The newest earlier audience of ``list_id`` that ``key``'s files give again, whole, or
    give with rows appended to the last file; None when there is none."""
    for source in audience_sources.candidates(conn, list_id, key.rules):
        if source.files == key.files:
            after = None
        elif (after := _appended(source.files, key.files, paths, cache)) is None:
            continue
        if audience_sources.is_whole(conn, source):
            return Reuse(source, after)
    return None


def _appended(then: tuple[FileMark, ...], now: tuple[FileMark, ...], paths: Sequence[Path],
              cache: AddressCache) -> TailStart | None:
    """Where the rows appended to the last file begin, when every other file is as it was;
    a last file added since (a list's first sign-up makes its sign-up file) is read whole."""
    if now and then == now[:-1]:
        return TailStart(0, 0)
    if not now or len(then) != len(now) or then[:-1] != now[:-1]:
        return None
    return appended_since(paths[-1], then[-1], now[-1], cache)
