"""The ways a list's member files are read from outside this package's editors: one file's
subscribers (``iter_members``), or a list's members as an issue's recipients with the address
cache (``stream_recipients``), both over ``members.MemberReader``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Set
from pathlib import Path

from ..models import Recipient, Subscriber
from .addresscache import opened_cache
from .appended import TailStart
from .members import MemberReader
from .problems import Problem, Severity


def iter_members(
    path: Path, check_deliverability: bool = False, problems: list[Problem] | None = None
) -> Iterator[Subscriber]:
    """The valid subscribers of one member file, streaming.

    Problems are appended to ``problems`` when it is given; without it the first invalid
    row raises ``ListError`` (duplicates are still dropped quietly, the first row winning).
    """

    def fail(problem: Problem) -> None:
        if problem.severity == Severity.ERROR:
            raise problem.as_error()

    report = problems.append if problems is not None else fail
    yield from MemberReader([path], check_deliverability=check_deliverability, on_problem=report)


def stream_recipients(
    paths: Sequence[Path],
    list_id: str,
    *,
    var_dir: Path,
    check_deliverability: bool,
    on_problem: Callable[[Problem], None],
    keep: Set[str] | None = None,
    after: TailStart | None = None,
) -> Iterator[Recipient]:
    """A list's members as recipients, streamed with the address cache under ``var_dir``;
    an invalid row goes to ``on_problem`` and is skipped. Repeats are left in. ``after``:
    only the rows appended to the last file from there on."""
    with opened_cache(var_dir) as cache:
        reader = MemberReader(paths, check_deliverability=check_deliverability,
                              on_problem=on_problem, cache=cache, dedupe=False)
        yield from reader.recipients(list_id, keep, after=after)
