"""Forgetting a reader at their request: what ``newsletter subscribers forget`` does.

What goes: the address's rows in every list's member files, through the edit ``lists
remove`` uses (streamed into a temporary file, every other byte copied as it was, put in
place by an atomic rename, and abandoned if someone else changed the file meanwhile); its
suppressions and soft-bounce count; what the address cache remembers of it, the
unsubscribe tokens kept for it (``tokencache``), and the lists' checks the desk keeps
(``keptchecks``), which hold a key of its address and may quote its row. Its ledger rows
and provider events are made anonymous (``store.reader_rows``), so that every issue's
numbers stay true.

What stays: one suppression for every list keyed by a one-way hash of the address
(``suppressions.forgotten_key``), not by the address. Every suppression check honours it:
a send leaves the address out if an old copy of a member file still holds it, an import
or ``lists add`` refuses it, and a late webhook event about it is stored without it. Lifting
it (``newsletter suppressions remove EMAIL``) is how a reader who subscribes again is mailed.

Its sign-ups go too: the journal entries that copy it into each host's files, its sign-up
requests and the messages queued to it (``store.reader_signups``).

The hash goes in first, then the sign-up rows (so that no host's journal puts the address
back), then the files change — holding each list's journal lock, so that a journal being
applied at that moment finishes first and its row is removed too — then the store, then
the cache; each step can be run again. So if a step stops (a member file edited by someone
else meanwhile), the reader can already not be mailed, and running the command again
finishes the job.

A forgetting waits for the sends that may mail the address: it refuses while one is under
way, paused or queued to send again with the address in its list or ledger, or while any
issue is reading its list to start sending (the file being read may be one this edits).
The check is made again once the hash is in place, so a send starting in between is either
seen, or reads its list after the hash is there and leaves the address out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IssueStateError, ListError
from ..store import Store, reader_signups, suppressions
from ..store import reader_rows as rows
from ..store.reader_signups import SIGNUP_KINDS, SignupRows
from . import keptchecks, tokencache
from .addresscache import AddressCache, cache_path
from .appending import held
from .config import PublicationConfig
from .edit import remove_member
from .reader_data import Membership, ReaderData, list_files, reader_data
from .signups import position_path


@dataclass(frozen=True, slots=True)
class FileEdit:
    """The rows of the address taken out of one member file."""

    path: Path
    lines: tuple[int, ...]
    lists: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.path), "lines": list(self.lines), "lists": list(self.lists)}


@dataclass(slots=True)
class ForgetReport:
    """What a forgetting did (or, in a dry run, would do)."""

    address: str
    dry_run: bool
    files: list[FileEdit] = field(default_factory=list)
    ledger_rows: int = 0
    issues: tuple[int, ...] = ()
    not_retried: int = 0
    events: int = 0
    suppressions: int = 0
    soft_bounces: int = 0
    cache_entries: int = 0
    #: Sign-up journal entries, sign-up requests and one-off messages of the address.
    signups: SignupRows = field(default_factory=lambda: SignupRows(0, 0, 0))
    #: The suppression kept instead of the address, and whether it was there before.
    kept: str = ""
    already_forgotten: bool = False
    #: Rows in CSV files no list reads: not edited, since nothing sends from them.
    left_alone: list[Membership] = field(default_factory=list)

    @property
    def anything_held(self) -> bool:
        return bool(self.files or self.ledger_rows or self.events or self.suppressions
                    or self.soft_bounces or self.cache_entries or self.signups)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "dry_run": self.dry_run,
            "member_files": [f.to_json() for f in self.files],
            "ledger": {"anonymised": self.ledger_rows, "issues": list(self.issues),
                       "failed_or_unknown_now_suppressed": self.not_retried},
            "events_anonymised": self.events,
            "suppressions_removed": self.suppressions,
            "soft_bounces_removed": self.soft_bounces,
            "address_cache_entries_removed": self.cache_entries,
            "signups_removed": {"journal_entries": self.signups.journal_entries,
                                "requests": self.signups.requests,
                                "messages": self.signups.messages},
            "kept": {"suppression": self.kept, "list": "*",
                     "already_there": self.already_forgotten},
            "left_alone": [m.to_json() for m in self.left_alone],
        }


def plan_forget(
    config: PublicationConfig, store: Store, var_dir: Path, email: str
) -> ForgetReport:
    """What forgetting ``email`` would do, changing nothing; refused as ``forget`` would be."""
    data = reader_data(config, store, var_dir, email)
    refuse_while_sending(store, data)
    return _planned(data)


def forget(config: PublicationConfig, store: Store, var_dir: Path, email: str) -> ForgetReport:
    """Forget ``email``: see the module's docstring for what goes, what stays, and in what
    order. ``IssueStateError`` while a send may mail it; ``ListError`` if a member file
    cannot be read (before anything changes) or is edited by someone else meanwhile."""
    data = reader_data(config, store, var_dir, email)  # every file read before any change
    refuse_while_sending(store, data)
    key = data.address
    report = ForgetReport(key, dry_run=False, kept=suppressions.forgotten_key(key),
                          left_alone=data.unlisted)
    with store.engine.begin() as conn:
        report.already_forgotten = not suppressions.add_forgotten(conn, key, at=store.now())
    _check_again(store, data, added=not report.already_forgotten)
    with store.engine.begin() as conn:
        report.signups = reader_signups.erase(conn, key)
    with _journals_held(config):
        report.files = _remove_from_files(config, key)
    with store.engine.begin() as conn:
        _note_erased(report, rows.erase(conn, key))
    report.cache_entries = _forget_in_cache(var_dir, key)
    return report


def refuse_while_sending(store: Store, data: ReaderData) -> None:
    with store.engine.connect() as conn:
        flying = rows.issues_in_flight(conn, data.address, data.lists)
    if flying:
        issues = "; ".join(str(issue) for issue in flying)
        raise IssueStateError(
            f"{data.address} cannot be forgotten while a send may still mail it: {issues}. "
            "Nothing was changed; run this again once the send has finished (or the issue "
            "is cancelled)"
        )


def _check_again(store: Store, data: ReaderData, *, added: bool) -> None:
    """The in-flight check, now that the hash is in place; a refusal takes it out again."""
    try:
        refuse_while_sending(store, data)
    except IssueStateError:
        if added:
            with store.engine.begin() as conn:
                suppressions.lift_forgotten(conn, data.address)
        raise


def _planned(data: ReaderData) -> ForgetReport:
    by_file: dict[Path, list[Membership]] = {}
    for found in data.memberships:
        by_file.setdefault(found.path, []).append(found)
    return ForgetReport(
        data.address,
        dry_run=True,
        files=[FileEdit(path, tuple(m.line for m in found), found[0].lists)
               for path, found in by_file.items()],
        ledger_rows=len(data.ledger),
        issues=tuple(dict.fromkeys(r.issue_id for r in data.ledger)),
        not_retried=sum(1 for r in data.ledger if r.recorded_status in rows.RETRIED),
        events=len(data.events),
        suppressions=len(data.suppressions),
        soft_bounces=1 if data.soft_bounces else 0,
        cache_entries=len(data.spellings),
        kept=suppressions.forgotten_key(data.address),
        already_forgotten=data.forgotten_since is not None,
        left_alone=data.unlisted,
        signups=SignupRows(*(len(data.signups[kind]) for kind in SIGNUP_KINDS)),
    )


def _remove_from_files(config: PublicationConfig, key: str) -> list[FileEdit]:
    """Take the address out of every list's member files (each looked at again: a row added
    since it was read goes too)."""
    edits = []
    for path in list_files(config):
        try:
            lines = remove_member(path, key)
        except ListError as exc:
            raise _stopped(exc.path, exc.reason) from exc
        except OSError as exc:  # the folder refused the temporary file, a full disk…
            raise _stopped(path, f"cannot be rewritten: {exc.strerror}") from exc
        if lines:
            edits.append(FileEdit(path, tuple(lines), config.lists_reading(path)))
    return edits


@contextmanager
def _journals_held(config: PublicationConfig) -> Iterator[None]:
    """Every list's journal lock (``signups.apply_journal`` takes one while it applies)."""
    with ExitStack() as stack:
        for list_id in config.lists:
            stack.enter_context(held(position_path(config, list_id)))
        yield


def _stopped(path: Path, reason: str) -> ListError:
    return ListError(
        path, None,
        f"{reason}. Forgetting stopped there: the address can no longer be mailed (the "
        "suppression that stands for it is in place) and the files before this one are done; "
        "run the command again to finish",
    )


def _note_erased(report: ForgetReport, erased: rows.Erased) -> None:
    report.ledger_rows = erased.ledger_rows
    report.issues = erased.issues
    report.not_retried = erased.not_retried
    report.events = erased.events
    report.suppressions = erased.suppressions
    report.soft_bounces = erased.soft_bounces


def _forget_in_cache(var_dir: Path, key: str) -> int:
    """The address cache's entries for ``key`` (how many), and the unsubscribe tokens kept
    for it, which are not counted: they are the address again, signed. The lists' kept
    checks go too (``keptchecks``): they hold a key of the address, and may quote its row."""
    tokencache.forget(var_dir, key)
    keptchecks.forget_all(var_dir)
    path = cache_path(var_dir)
    if not path.exists():
        return 0
    cache = AddressCache(path)
    try:
        return cache.forget(key)
    finally:
        cache.close()
