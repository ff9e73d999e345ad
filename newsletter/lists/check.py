"""Checking the publication file and every list's members files: what ``newsletter lists
check`` prints and what the desk's lists page shows.

A problem is reported to ``on_problem`` as it is found, once even when two lists read the
same file, and kept with each list whose files have it (up to ``keep`` a list, the rest
counted). Invalid rows, unreadable files and bad headers are errors; duplicates and a list
with no members are warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ListError
from .addresscache import AddressCache
from .admin import reader_for
from .config import ConfigFileError, PublicationConfig, load_config
from .problems import Counts, Problem, Severity

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
        self, config: PublicationConfig, list_id: str, cache: AddressCache | None,
        on_address: Callable[[str], None] | None = None,
    ) -> ListCheck:
        """Read the list's files once, handing each member's address (as suppressions
        compare them) to ``on_address`` if given."""
        kept: list[Problem] = []
        found = {Severity.ERROR: 0, Severity.WARNING: 0}

        def report(problem: Problem) -> None:
            found[problem.severity] += 1
            if self.keep is None or len(kept) < self.keep:
                kept.append(problem)
            self._report(problem)

        reader = reader_for(config, list_id, on_problem=report, cache=cache,
                            check_deliverability=self.settings.check_deliverability)
        if on_address is None:
            reader.count()
        else:
            for address in reader.addresses():
                on_address(address)
        if reader.counts.members == 0:
            report(Problem(reader.paths[0], None, f"list {list_id!r} has no members",
                           Severity.WARNING))
        return ListCheck(list_id, reader.paths, reader.counts, tuple(kept),
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
