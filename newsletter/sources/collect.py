"""Collecting: ask every source what it has and keep what is new."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field

from sqlalchemy import Connection

from ..config import Settings
from ..store import Store
from ..store import articles as article_store
from ..store.tables import collections
from .base import SourceSpec
from .lanes import Outcome, fetch_all

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceReport:
    source_id: str
    status: str  # ok | not-modified | error
    new: int = 0
    edited: int = 0
    unchanged: int = 0
    archived: int = 0
    error: str = ""
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CollectReport:
    sources: tuple[SourceReport, ...] = field(default_factory=tuple)

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def errors(self) -> tuple[SourceReport, ...]:
        return tuple(s for s in self.sources if s.status == "error")

    def as_dict(self) -> dict[str, object]:
        return {"new": self.new, "sources": [vars_of(s) for s in self.sources]}


def vars_of(report: SourceReport) -> dict[str, object]:
    return {name: getattr(report, name) for name in report.__slots__}


def collect(settings: Settings, store: Store, sources: Mapping[str, SourceSpec]) -> CollectReport:
    """Fetch every source; one that fails is reported and the others still collected.

    Sources are fetched side by side (``lanes``); what they found is stored here, a batch of
    finished sources per transaction, each source's articles with its fetch state so that
    a fetch state is never recorded without the articles it stands for. The report lists
    the sources in the publication file's order, whatever order they finished in.
    """
    specs = list(sources.values())
    with store.engine.begin() as conn:
        states = article_store.fetch_states(conn, [spec.id for spec in specs])
    reports: list[SourceReport | None] = [None] * len(specs)
    # closing: a failed write stops the lanes at once, not when the generator is collected
    with closing(fetch_all(settings, specs, states)) as batches:
        for batch in batches:
            with store.engine.begin() as conn:
                for outcome in batch:
                    seen_before = outcome.spec.id in states
                    reports[outcome.index] = _store(settings, store, conn, outcome, seen_before)
    done = CollectReport(tuple(report for report in reports if report is not None))
    with store.engine.begin() as conn:
        conn.execute(collections.insert().values(at=store.now(), report=done.as_dict()))
    return done


def _store(
    settings: Settings, store: Store, conn: Connection, outcome: Outcome, seen_before: bool
) -> SourceReport:
    spec, result, now = outcome.spec, outcome.result, store.now()
    if result is None:
        log.warning("source %s: %s", spec.id, outcome.error)
        if seen_before:  # a source never fetched stays new, so its first success looks back
            article_store.record_fetch(conn, spec.id, at=now, status="error", error=outcome.error)
        return SourceReport(spec.id, "error", error=outcome.error)
    archive_before = (
        None
        if seen_before
        else article_store.lookback_start(now, spec.lookback_days or settings.lookback_days)
    )
    counts = article_store.upsert(conn, result.articles, at=now, archive_before=archive_before)
    status = "not-modified" if result.not_modified else "ok"
    article_store.record_fetch(
        conn,
        spec.id,
        at=now,
        status=status,
        etag=result.etag,
        last_modified=result.last_modified,
        new=counts.new,
        first=not seen_before,
    )
    problems = tuple(getattr(result, "problems", ()))
    for problem in problems:  # the daemon's only report: one line per skipped or odd entry
        log.warning("source %s: %s", spec.id, problem)
    return SourceReport(
        spec.id,
        status,
        counts.new,
        counts.edited,
        counts.unchanged,
        counts.archived,
        problems=problems,
    )
