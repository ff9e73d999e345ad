"""Rows appended to a member file since an audience was read from it: where they begin, and
whether the bytes before them are exactly the ones read.

A list that takes sign-ups grows at the end of its sign-up file from one issue to the next.
Its next freeze copies the audience read before and reads only what was appended
(``MemberReader.recipients(after=...)``), which is what reading the whole file would add
when the bytes before are the ones read then and end where a record ends. They do when:
- the file is at least as long, and its first bytes hash to the digest read then;
- they end with a line break (an append never joins the last line read);
- the address cache remembers those bytes (clean, or with notes): only a file read to its
  end with nothing worse than refusable rows is, so no quoted value was left open at its
  end, and nothing in it failed to decode. Either would make a read of the whole file take
  the appended rows otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..store.audience_sources import FileMark
from .addresscache import AddressCache

#: Bytes hashed at a time.
PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class TailStart:
    """Where the rows appended to a member file begin."""

    offset: int  # bytes before them; 0: the whole file (one added since), header and all
    lines: int  # lines before them: the first one appended is line ``lines + 1``
    #: The whole file's SHA-256, for the address cache to vouch for it once the appended
    #: rows read clean (the bytes before them did); "" when it cannot (they had notes).
    vouch_as: str = ""


class _Prefix(NamedTuple):
    sha256: str
    lines: int
    ends_a_line: bool


def appended_since(
    path: Path, then: FileMark, now: FileMark, cache: AddressCache
) -> TailStart | None:
    """Where the rows appended to ``path`` since it was ``then`` (it is ``now``) begin; None
    when it is not ``then`` with rows appended."""
    if now.name != then.name or not 0 < then.size < now.size:
        return None
    clean = cache.is_clean(then.sha256)
    if not clean and not cache.is_noted(then.sha256):
        return None
    try:
        before = _prefix(path, then.size)
    except OSError:
        return None
    if before is None or before.sha256 != then.sha256 or not before.ends_a_line:
        return None
    return TailStart(then.size, before.lines, now.sha256 if clean else "")


def _prefix(path: Path, size: int) -> _Prefix | None:
    """The SHA-256 of the first ``size`` bytes of ``path`` and the lines they hold, as a
    file read with ``newline=""`` splits them (after ``\\n``, ``\\r\\n`` or a lone ``\\r``);
    None when the file is shorter."""
    digest, lines, last, left = hashlib.sha256(), 0, b"", size
    with path.open("rb") as handle:
        while left:
            piece = handle.read(min(left, PIECE))
            if not piece:
                return None
            digest.update(piece)
            lines += piece.count(b"\n") + piece.count(b"\r") - piece.count(b"\r\n")
            if last.endswith(b"\r") and piece.startswith(b"\n"):  # one line break, split
                lines -= 1
            last, left = piece, left - len(piece)
    return _Prefix(digest.hexdigest(), lines, last.endswith(b"\n"))
