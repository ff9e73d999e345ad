"""What a list's files are found to hold wrong (``Problem``: ``file:line: reason``, an error
or a warning), and the counts of a read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ListError

log = logging.getLogger(__name__)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a file or one of its rows; ``str()`` reads ``file:line: reason``."""

    path: Path
    line: int | None
    reason: str
    severity: Severity = Severity.ERROR
    first: tuple[Path, int] | None = None  # for duplicates: the row that was kept

    def __str__(self) -> str:
        return str(self.as_error())

    def as_error(self) -> ListError:
        return ListError(self.path, self.line, self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "line": self.line,
            "reason": self.reason,
            "severity": str(self.severity),
        }


@dataclass(slots=True)
class Counts:
    rows: int = 0
    members: int = 0
    invalid: int = 0
    duplicates: int = 0


class SkippedRows:
    """The invalid rows met while a list is read for a send: counted per file, the first kept."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[int, Problem]] = {}

    def add(self, problem: Problem) -> None:
        count, first = self._files.get(problem.path, (0, problem))
        self._files[problem.path] = (count + 1, first)

    def log(self) -> None:
        for path, (count, first) in self._files.items():
            log.warning(
                "%s: %s invalid row%s skipped (the first, line %s: %s); `newsletter lists "
                "check` lists every one", path, f"{count:,}", "" if count == 1 else "s",
                first.line, first.reason,
            )
