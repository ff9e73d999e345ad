"""Checking the publication file and every list's members files: what ``newsletter lists
check`` prints and what the desk's lists page shows.

A problem is reported to ``on_problem`` as it is found, once even when two lists read the
same file, and kept with each list whose files have it (up to ``keep`` a list, the rest
counted). Invalid rows, unreadable files and bad headers are errors; duplicates and a list
with no members are warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings
from ..errors import ListError
from .addresscache import AddressCache
from .admin import reader_for
from .config import ConfigFileError, PublicationConfig, load_config
from .problems import Counts, Problem, Severity
from .seen import Earlier

ProblemSink = Callable[[Problem], None]


@dataclass(frozen=True, slots=True)
class ListCheck:
    """One list's files, what was read from them, and their problems."""

    list_id: str
    files: tuple[Path, ...]
    counts: Counts
    problems: tuple[Problem, ...]
    #: Every problem found, by severity (``problems`` keeps only the first few, if asked).
    errors: int = 0
    warnings: int = 0

    @property
    def more_problems(self) -> int:
        """Problems found beyond those kept."""
        return self.errors + self.warnings - len(self.problems)

    def summary(self) -> dict[str, Any]:
        """The list's part of ``lists check --json``."""
        return {
            "files": [str(p) for p in self.files],
            "rows": self.counts.rows,
            "members": self.counts.members,
            "invalid": self.counts.invalid,
            "duplicates": self.counts.duplicates,
        }


@dataclass(frozen=True, slots=True)
class CheckSoFar:
    """A list's check after its first ``files`` files: what ``check_list`` takes up."""

    files: int = 0
    counts: Counts = field(default_factory=Counts)
    problems: tuple[Problem, ...] = ()
    errors: int = 0
    warnings: int = 0
    #: Where an address was read in those files, as (file index, line), if it was.
    earlier: Earlier | None = None


class FileWatch(Protocol):
    """Told, as a list is checked, of each member and of each file read to its end."""

    def member(self, key: str, line: int) -> None: ...

    def file_read(self, index: int, so_far: CheckSoFar) -> None: ...


def _added(a: Counts, b: Counts) -> Counts:
    return Counts(a.rows + b.rows, a.members + b.members, a.invalid + b.invalid,
                  a.duplicates + b.duplicates)


class PublicationCheck:
    """One check: ``load`` the publication file, then ``check_list`` each list."""

    def __init__(
        self, settings: Settings, *, on_problem: ProblemSink | None = None,
        keep: int | None = None,
    ) -> None:
        self.settings = settings
        self.on_problem = on_problem
        self.keep = keep
        #: Every problem found, each once.
        self.problems: list[Problem] = []
        self._seen: set[tuple[Path, int | None, str]] = set()

    def load(self) -> PublicationConfig | None:
        """The publication, or None when its file has problems (each one reported)."""
        try:
            return load_config(self.settings)
        except ListError as exc:
            found = exc.problems if isinstance(exc, ConfigFileError) else (exc,)
            for error in found:
                self._report(Problem(error.path, error.line, error.reason))
            return None

    def check_list(
        self, config: PublicationConfig, list_id: str, cache: AddressCache | None, *,
        resume: CheckSoFar | None = None, files: FileWatch | None = None,
    ) -> ListCheck:
        """Read the list's files once. ``resume``: the check of the list's first files,
        taken up from there (only the others are read). ``files``: told of each member (its
        address as suppressions compare them, and its line) and of each file's end."""
        start = resume or CheckSoFar()
        kept: list[Problem] = list(start.problems)
        found = {Severity.ERROR: start.errors, Severity.WARNING: start.warnings}

        def report(problem: Problem) -> None:
            found[problem.severity] += 1
            if self.keep is None or len(kept) < self.keep:
                kept.append(problem)
            self._report(problem)

        reader = reader_for(config, list_id, on_problem=report, cache=cache,
                            check_deliverability=self.settings.check_deliverability)

        def file_read(index: int) -> None:
            if files is not None:
                files.file_read(index, CheckSoFar(
                    index + 1, _added(start.counts, reader.counts), tuple(kept),
                    found[Severity.ERROR], found[Severity.WARNING]))

        noted = files.member if files is not None else None
        for member in reader.members(start=start.files, earlier=start.earlier,
                                     after_file=file_read):
            if noted is not None:
                noted(member.key, member.line)
        counts = _added(start.counts, reader.counts)
        if counts.members == 0:
            report(Problem(reader.paths[0], None, f"list {list_id!r} has no members",
                           Severity.WARNING))
        return ListCheck(list_id, reader.paths, counts, tuple(kept),
                         found[Severity.ERROR], found[Severity.WARNING])

    def tally(self, severity: Severity) -> int:
        return sum(1 for p in self.problems if p.severity == severity)

    def _report(self, problem: Problem) -> None:
        key = (problem.path, problem.line, problem.reason)
        if key in self._seen:
            return
        self._seen.add(key)
        self.problems.append(problem)
        if self.on_problem is not None:
            self.on_problem(problem)
