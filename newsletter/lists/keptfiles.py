"""A list's kept check, file by file: after a change to its last files, only they are read.

Every reader confirmed on the desk's host is appended to the list's sign-up file, which is
read last. The list's bytes then differ, so its kept check (``keptchecks``) no longer
holds, and checking a million-member list again took about ten seconds: the desk's lists
page waited that long after every sign-up. Yet the files before the sign-up file read as
before, and repeats are found in file order (the first wins), so what the check found in
them stands. Kept here beside the check, for each file: its SHA-256, the check's counts
and problems once it was read, and its members (8 bytes of each address's one-way hash,
sorted, with the line it was read on). A check taken up after the files that are
unchanged reads the others alone, with those members standing for the addresses read
before (``CheckSoFar.earlier``), so a repeat of one is reported with its file and line.

Two addresses whose hashes share their first 8 bytes would read as one: about once in
10¹³ for a million members (the same hashes count the suppressions, ``listing``).
"""

from __future__ import annotations

import logging
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .check import CheckSoFar, ListCheck
from .keptchecks import (
    Digests,
    decoded,
    encoded,
    problem_from,
    problem_json,
    read_document,
    replace_file,
)
from .problems import Counts
from .seen import Earlier

log = logging.getLogger(__name__)

#: Bumped when what is kept here changes shape; older files are then made again.
FORMAT = 1

#: The low bits of a recorded member, which hold its line (a file of 2³¹ lines is not read).
LINE_BITS = 0xFFFF_FFFF

#: An address's 8-byte hash, as a signed integer.
MemberKey = Callable[[str], int]


def files_path(check_path: Path) -> Path:
    """Kept beside the list's check (``keptchecks.kept_path``): ``<list>.files.json``."""
    return check_path.with_name(f"{check_path.stem}.files.json")


@dataclass(frozen=True, slots=True)
class FileRead:
    """One file as a check read it, and the check once it had."""

    path: str
    digest: str
    so_far: CheckSoFar
    keys: array[int]  # members first read in this file: hashes, sorted
    lines: array[int]  # the line each was read on, in the same order (4 bytes each)


@dataclass(slots=True)
class FileRecorder:
    """Watches a check (``check.FileWatch``) and keeps what each file gave."""

    member_key: MemberKey
    digests: Digests
    files: list[FileRead] = field(default_factory=list)
    #: This file's members so far, each as its hash and line in one integer (hash << 32 |
    #: line): sorted as plain integers, a million of them take a fraction of the time tuples do.
    _read: list[int] = field(default_factory=list)

    def member(self, key: str, line: int) -> None:
        self._read.append(self.member_key(key) << 32 | line)

    def file_read(self, index: int, so_far: CheckSoFar) -> None:
        self._read.sort()
        # No digests when a file could not be read: then nothing is kept (``save``).
        path, digest = self.digests[index] if index < len(self.digests) else ("", "")
        keys = array("q", [both >> 32 for both in self._read])
        lines = array("i", [both & LINE_BITS for both in self._read])
        self.files.append(FileRead(path, digest, so_far, keys, lines))
        self._read = []

    def members(self) -> array[int]:
        """Every member's hash, sorted: what the lists page counts suppressions against."""
        return array("q", sorted(k for f in self.files for k in f.keys))

    def resume(self, kept: Path, check_deliverability: bool) -> CheckSoFar | None:
        """The check kept at ``kept`` as it stood after the files unchanged since (their
        records taken over), or None when the first file changed or nothing is kept."""
        files = _load(kept, check_deliverability)
        same = _unchanged(files or [], self.digests)
        if not files or same == 0:
            return None
        self.files = files[:same]
        last = self.files[-1].so_far
        return CheckSoFar(same, last.counts, last.problems, last.errors, last.warnings,
                          _earlier(self.files, self.member_key))

    def save(self, kept: Path, check_deliverability: bool, check: ListCheck) -> None:
        """Keep the files' records; a failure to write is logged, as for the check."""
        document = {
            "key": _key(check_deliverability),
            "problems": [problem_json(p) for p in check.problems],
            "files": [_file_json(f) for f in self.files],
        }
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            replace_file(kept, orjson.dumps(document))
        except OSError as exc:
            log.warning("%s: could not keep the list's files (%s)", kept, exc)


def _unchanged(files: Sequence[FileRead], digests: Digests) -> int:
    """How many of the list's first files are as they were when ``files`` were kept."""
    same = 0
    for read, (path, digest) in zip(files, digests, strict=False):
        if (read.path, read.digest) != (path, digest):
            break
        same += 1
    return same


def _earlier(files: Sequence[FileRead], member_key: MemberKey) -> Earlier:
    def earlier(key: str) -> tuple[int, int] | None:
        wanted = member_key(key)
        for index, read in enumerate(files):
            at = bisect_left(read.keys, wanted)
            if at < len(read.keys) and read.keys[at] == wanted:
                return index, read.lines[at]
        return None

    return earlier


def _key(check_deliverability: bool) -> dict[str, Any]:
    return {"format": FORMAT, "byteorder": sys.byteorder,
            "check_deliverability": check_deliverability}


def _file_json(read: FileRead) -> dict[str, Any]:
    so_far, counts = read.so_far, read.so_far.counts
    return {
        "path": read.path, "digest": read.digest,
        "counts": [counts.rows, counts.members, counts.invalid, counts.duplicates],
        "problems": len(so_far.problems), "errors": so_far.errors, "warnings": so_far.warnings,
        "keys": encoded(read.keys), "lines": encoded(read.lines),
    }


def _load(kept: Path, check_deliverability: bool) -> list[FileRead] | None:
    document = read_document(kept, _key(check_deliverability), "files")
    if document is None:
        return None
    try:
        problems = tuple(problem_from(p) for p in document["problems"])
        return [_file_from(f, problems) for f in document["files"]]
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: a list's kept files are not as written (%r); reading them", kept, exc)
        return None


def _file_from(kept: dict[str, Any], problems: tuple[Any, ...]) -> FileRead:
    rows, members, invalid, duplicates = kept["counts"]
    counts = Counts(int(rows), int(members), int(invalid), int(duplicates))
    count = int(kept["problems"])
    if not 0 <= count <= len(problems):
        raise ValueError(f"{count} problems of {len(problems)}")
    so_far = CheckSoFar(0, counts, problems[:count], int(kept["errors"]), int(kept["warnings"]))
    keys, lines = decoded(kept["keys"], "q"), decoded(kept["lines"], "i")
    if len(keys) != len(lines):
        raise ValueError(f"{len(keys)} members but {len(lines)} lines")
    return FileRead(str(kept["path"]), str(kept["digest"]), so_far, keys, lines)
