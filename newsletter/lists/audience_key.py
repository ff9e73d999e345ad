"""The key of what a list's audience is read from, for copying it from issue to issue.

An issue's audience is what its list's member files give when read with the day's rules:
the files' bytes, in their order; the columns the issue's templates use; the readers
forgotten at their request (left out as the files are read); and the rules themselves,
which are email-validator's version and this project's reading rules (the address cache
is named after both, ``addresscache.cache_path``) and ``FORMAT`` below. Two freezes with
the same key read the same audience, so the second may copy the first's ledger rows
(``store.audience_sources``). Suppressions are not in it: every freeze applies them.

A list checked for deliverability has no key: its verdicts depend on DNS at the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from pathlib import Path

import orjson

from .addresscache import cache_path, file_digest

#: Bumped whenever a change to how member files are read would give another audience from
#: the same bytes (a new rule for names, addresses or columns): old keys then match nothing.
FORMAT = 1


def audience_key(
    paths: Sequence[Path],
    list_id: str,
    keep: Set[str] | None,
    *,
    var_dir: Path,
    forgotten: Set[bytes],
    check_deliverability: bool = False,
) -> str:
    """The SHA-256, in hex, of everything the audience read from ``paths`` depends on;
    "" (no key) when ``check_deliverability``."""
    if check_deliverability:
        return ""
    shape = {
        "format": FORMAT,
        "list": list_id,
        "files": [[path.name, file_digest(path)] for path in paths],
        "columns": None if keep is None else sorted(keep),
        "rules": cache_path(var_dir).name,
        "forgotten": hashlib.sha256(b"".join(sorted(forgotten))).hexdigest(),
    }
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()
