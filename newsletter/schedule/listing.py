"""The mailing lists as the desk's lists page and the HTTP API show them: each list's
title, cadence, schedule and next run (from the scheduler's job store), its members,
suppressed and invalid counts, and the problems ``newsletter lists check`` would report.

Checking a list reads every row of its files (through the address cache the command line
uses), which takes about ten seconds for a list of a million members. ``ListsReader``
remembers each list's check while the bytes of its files stay the same, and keeps it on
disk for every other process and the next start (``keptchecks``), so only the first page
after a change to them waits for it; and with it what each file gave (``keptfiles``), so
that after a change to the last files (a sign-up, which goes to the sign-up file, read
last) only those are read. With the check it keeps the members' addresses
as a sorted array of their hashes (8 bytes a member: the first of the one-way hash that
stands for a forgotten reader), against which the suppressions, forgotten readers
included, are counted afresh at every page: they change all the time, the files seldom.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..lists import keptchecks, keptfiles
from ..lists.addresscache import AddressCache, file_digest, opened_cache
from ..lists.check import ListCheck, PublicationCheck
from ..lists.config import PublicationConfig
from ..lists.problems import Problem
from ..models import Cadence, MailingList
from ..store import Store, suppressions
from .scheduler import read_schedule

#: Problems shown for each list; ``newsletter lists check`` prints every one.
PROBLEMS_KEPT = 50


@dataclass(frozen=True, slots=True)
class ProblemLine:
    """A problem as ``file:line: message``, the file named from the publication's folder."""

    where: str
    message: str
    severity: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "message": self.message, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class ListOverview:
    id: str
    title: str
    description: str
    cadence: str
    schedule: str | None
    timezone: str
    #: The digest's next run in the list's time zone; None for an instant list, or before
    #: the scheduler first ran, or while its job is paused.
    next_run: datetime | None
    files: tuple[str, ...]
    members: int
    suppressed: int
    invalid: int
    duplicates: int
    problems: tuple[ProblemLine, ...]
    errors: int
    warnings: int
    more_problems: int

    @property
    def recipients(self) -> int:
        return self.members - self.suppressed

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "title": self.title, "description": self.description,
            "cadence": self.cadence, "schedule": self.schedule, "timezone": self.timezone,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "files": list(self.files), "members": self.members, "suppressed": self.suppressed,
            "recipients": self.recipients, "invalid": self.invalid,
            "duplicates": self.duplicates, "errors": self.errors, "warnings": self.warnings,
            "problems": [p.as_dict() for p in self.problems],
            "more_problems": self.more_problems,
        }


@dataclass(frozen=True, slots=True)
class ListsOverview:
    """Every list, or the problems of the publication file itself (then no list is read)."""

    lists: tuple[ListOverview, ...]
    problems: tuple[ProblemLine, ...]

    @property
    def errors(self) -> int:
        """Errors in every list's files (a file two lists read counts for each)."""
        return len(self.problems) + sum(m.errors for m in self.lists)

    @property
    def warnings(self) -> int:
        return sum(m.warnings for m in self.lists)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
            "problems": [p.as_dict() for p in self.problems],
            "lists": [m.as_dict() for m in self.lists],
        }


@dataclass(frozen=True, slots=True)
class _Kept:
    """A list's check, what it was made from, and its members' address hashes, sorted."""

    digests: tuple[tuple[str, str], ...]
    check: ListCheck
    members: array[int]

    def suppressed(self, emails: Iterable[str]) -> int:
        """How many members ``emails`` (the suppressions' addresses, or the keys of
        forgotten readers) stand for. Two addresses sharing the first 8 bytes of their hash
        would count one for the other: about once in 10¹³ for a million members."""
        found = set()
        for email in emails:
            key = _member_key(email)
            at = bisect_left(self.members, key) if key is not None else len(self.members)
            if at < len(self.members) and self.members[at] == key:
                found.add(key)
        return len(found)


def _member_key(address: str) -> int | None:
    """8 bytes of the hash of a (lower-cased) address, or of a forgotten reader's key (None
    for a key not in that form)."""
    if not address.startswith(suppressions.FORGOTTEN):
        return _address_key(address)
    try:
        return _first_bytes(bytes.fromhex(address.removeprefix(suppressions.FORGOTTEN)))
    except ValueError:
        return None


def _address_key(address: str) -> int:
    """``_member_key`` of an address read from a member file (never a forgotten reader's
    key, which is not an address)."""
    return _first_bytes(suppressions.forgotten_digest(address))


def _first_bytes(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big", signed=True)


class ListsReader:
    """Reads the lists afresh each time, but remembers each list's check (its counts and
    problems) while its files' bytes are unchanged. Safe to share between threads."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}

    def overview(self) -> ListsOverview:
        check = PublicationCheck(self.settings, keep=PROBLEMS_KEPT)
        config = check.load()
        if config is None:
            return ListsOverview((), tuple(_line(self.settings.home, p) for p in check.problems))
        next_runs = {job.id: job.next_run for job in read_schedule(self.store.engine)}
        found = []
        with self._lock, opened_cache(self.settings.var_dir) as cache:
            for mailing_list in config.lists.values():
                kept = self._checked(check, config, mailing_list.id, cache)
                with self.store.engine.connect() as conn:
                    suppressed = kept.suppressed(suppressions.emails_for(conn, mailing_list.id))
                found.append(_overview(self.settings.home, mailing_list, kept.check,
                                       suppressed, next_runs))
        return ListsOverview(tuple(found), ())

    def _checked(
        self, check: PublicationCheck, config: PublicationConfig, list_id: str,
        cache: AddressCache,
    ) -> _Kept:
        """The list's check: this process's, else the one kept on disk by any process, else
        made now (and kept both ways) while the list's files stay the same."""
        digests = _digests(config.member_paths(list_id))
        kept = self._kept.get(list_id)
        if digests is not None and kept is not None and kept.digests == digests:
            return kept
        if digests is None:  # a file cannot be read: nothing to keep the check against
            return self._made(check, config, list_id, cache, (), None)
        key = keptchecks.CheckKey(digests, self.settings.check_deliverability)
        path = keptchecks.kept_path(self.settings.var_dir, list_id)
        found = keptchecks.load(path, key)
        if found is not None:
            kept = _Kept(digests, *found)
        else:
            kept = self._made(check, config, list_id, cache, digests, path)
            keptchecks.save(path, key, kept.check, kept.members)
        self._kept[list_id] = kept
        return kept

    def _made(
        self, check: PublicationCheck, config: PublicationConfig, list_id: str,
        cache: AddressCache, digests: keptchecks.Digests, kept_at: Path | None,
    ) -> _Kept:
        """The list checked now: only the files after those unchanged since the check kept
        file by file at ``kept_at`` (``keptfiles``), which is kept again; every file when
        ``kept_at`` is None."""
        recorder = keptfiles.FileRecorder(_address_key, digests)
        deliverability = self.settings.check_deliverability
        files_at = keptfiles.files_path(kept_at) if kept_at is not None else None
        resume = recorder.resume(files_at, deliverability) if files_at is not None else None
        checked = check.check_list(config, list_id, cache, resume=resume, files=recorder)
        if files_at is not None:
            recorder.save(files_at, deliverability, checked)
        return _Kept(digests, checked, recorder.members())


def _digests(paths: Iterable[Path]) -> keptchecks.Digests | None:
    """The SHA-256 of each file; None when one cannot be read (such a list is read every
    time, which is quick: nothing is in it)."""
    try:
        return tuple((str(p), file_digest(p)) for p in paths)
    except OSError:
        return None


def lists_overview(settings: Settings, store: Store) -> ListsOverview:
    """Every list checked afresh, remembering nothing."""
    return ListsReader(settings, store).overview()


def _overview(
    home: Path, m: MailingList, checked: ListCheck, suppressed: int,
    next_runs: dict[str, datetime | None],
) -> ListOverview:
    digest = m.cadence == Cadence.DIGEST
    return ListOverview(
        id=m.id, title=m.title, description=m.description, cadence=str(m.cadence),
        schedule=m.schedule if digest else None, timezone=m.timezone,
        next_run=next_runs.get(f"digest:{m.id}") if digest else None,
        files=tuple(_shown(home, p) for p in checked.files),
        members=checked.counts.members, suppressed=suppressed,
        invalid=checked.counts.invalid, duplicates=checked.counts.duplicates,
        problems=tuple(_line(home, p) for p in checked.problems),
        errors=checked.errors, warnings=checked.warnings, more_problems=checked.more_problems,
    )


def _line(home: Path, problem: Problem) -> ProblemLine:
    where = _shown(home, problem.path)
    if problem.line is not None:
        where += f":{problem.line}"
    return ProblemLine(where, problem.reason, str(problem.severity))


def _shown(home: Path, path: Path) -> str:
    try:
        return str(path.relative_to(home))
    except ValueError:
        return str(path)
