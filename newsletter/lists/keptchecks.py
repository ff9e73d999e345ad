"""Each list's check kept on disk (``var/cache/lists/``), shared by every process.

Checking a list of a million members takes about ten seconds. Each process that serves the
desk or the API (``newsletter serve --workers 2`` runs two, each with both) would otherwise
make its own on its first page after a start, and every start would make them again. A
check is written here once it is made and read back by any process, until the bytes of
the list's files change.

A kept check names what it was made from: the SHA-256 of each file, whether deliverability
was checked, and this format's version; it is used only while all of them match. It is
written to a temporary file in the same folder and renamed into place, so a reader finds
a whole check or none. One that cannot be read (written by another version of this
format, cut short by a full disk, edited by hand) is logged and made again.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .check import ListCheck
from .problems import Counts, Problem, Severity

log = logging.getLogger(__name__)

#: Bumped when what a kept check holds changes shape; older files are then made again.
FORMAT = 1

Digests = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CheckKey:
    """What a list's check depends on, besides the code that makes it."""

    digests: Digests
    check_deliverability: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "byteorder": sys.byteorder,
            "digests": [list(pair) for pair in self.digests],
            "check_deliverability": self.check_deliverability,
        }


def kept_path(var_dir: Path, list_id: str) -> Path:
    """Where ``list_id``'s check is kept (list ids are letters, digits, ``-`` and ``_``)."""
    return _folder(var_dir) / f"{list_id}.json"


def _folder(var_dir: Path) -> Path:
    return var_dir / "cache" / "lists"


def load(path: Path, key: CheckKey) -> tuple[ListCheck, array[int]] | None:
    """The check kept at ``path`` and its members' sorted address keys, if it was made from
    what ``key`` names; None when there is none, or it is stale or unreadable."""
    kept = read_document(path, key.as_json(), "check")
    if kept is None:
        return None
    try:
        return _check_from(kept["check"]), decoded(kept["members"], "q")
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: a list's kept check is not as written (%r); checking again", path, exc)
        return None


def save(path: Path, key: CheckKey, check: ListCheck, members: array[int]) -> None:
    """Keep ``check`` and ``members`` at ``path``, replacing any check kept there. A failure
    to write is logged, not raised: the check is still good for this process."""
    document = {
        "key": key.as_json(),
        "check": _check_json(check),
        "members": encoded(members),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, orjson.dumps(document))
    except OSError as exc:
        log.warning("%s: could not keep the list's check (%s)", path, exc)


def forget_all(var_dir: Path) -> int:
    """Remove every kept check (how many): each holds what was read of the members (a key
    of every address, problems that may quote a row), and a reader forgotten at their
    request may be among them. Each is made again on its next view."""
    removed = 0
    for path in _folder(var_dir).glob("*.json"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def replace_file(path: Path, content: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _check_json(check: ListCheck) -> dict[str, Any]:
    counts = check.counts
    return {
        "list_id": check.list_id,
        "files": [str(p) for p in check.files],
        "counts": [counts.rows, counts.members, counts.invalid, counts.duplicates],
        "problems": [problem_json(p) for p in check.problems],
        "errors": check.errors,
        "warnings": check.warnings,
    }


def problem_json(problem: Problem) -> list[Any]:
    first = [str(problem.first[0]), problem.first[1]] if problem.first else None
    return [str(problem.path), problem.line, problem.reason, str(problem.severity), first]


def _check_from(kept: dict[str, Any]) -> ListCheck:
    rows, members, invalid, duplicates = kept["counts"]
    return ListCheck(
        list_id=str(kept["list_id"]),
        files=tuple(Path(p) for p in kept["files"]),
        counts=Counts(int(rows), int(members), int(invalid), int(duplicates)),
        problems=tuple(problem_from(p) for p in kept["problems"]),
        errors=int(kept["errors"]),
        warnings=int(kept["warnings"]),
    )


def problem_from(kept: list[Any]) -> Problem:
    path, line, reason, severity, first = kept
    return Problem(
        Path(path),
        None if line is None else int(line),
        str(reason),
        Severity(severity),
        (Path(first[0]), int(first[1])) if first else None,
    )


def read_document(path: Path, key: dict[str, Any], what: str) -> dict[str, Any] | None:
    """The JSON document kept at ``path`` if it was made from what ``key`` names; None when
    there is none or it is stale, and, logged, when it cannot be read (``what`` it holds)."""
    try:
        kept = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("%s: a list's kept %s could not be read (%s); made again", path, what, exc)
        return None
    if not isinstance(kept, dict) or kept.get("key") != key:
        return None
    return kept


def encoded(values: array[int]) -> str:
    """An array of integers as text for a JSON document (machine byte order, which the
    documents' keys name)."""
    return base64.b64encode(values.tobytes()).decode("ascii")


def decoded(text: str, typecode: str) -> array[int]:
    """``encoded``'s array back; ValueError if it is not what it encoded."""
    values: array[int] = array(typecode)
    values.frombytes(base64.b64decode(text, validate=True))
    return values
