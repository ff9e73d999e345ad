"""Collecting: ask every source what it has and keep what is new."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field

from sqlalchemy import Connection

from ..config import Settings
from ..models import FetchState
from ..store import Store
from ..store import articles as article_store
from ..store.articles import Fetched
from ..store.tables import collections
from .base import FetchResult, SourceSpec
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

    Sources are fetched side by side (``lanes``). What they found is stored here, a batch of
    finished sources per transaction, each source's articles with its fetch state so that
    a fetch state is never recorded without the articles it stands for. Sources that found
    nothing (a 304, a failure) have only a fetch state to record: theirs are written all
    together at the end, with the pass's report, so a pass where every feed answers 304
    writes one transaction. The report lists the sources in the publication file's order,
    whatever order they finished in.
    """
    specs = list(sources.values())
    with store.engine.begin() as conn:
        states = article_store.fetch_states(conn, [spec.id for spec in specs])
    reports: list[SourceReport | None] = [None] * len(specs)
    quiet: list[Fetched] = []
    # closing: a failed write stops the lanes at once, not when the generator is collected
    with closing(fetch_all(settings, specs, states)) as batches:
        for batch in batches:
            found = [(o, o.result) for o in batch if o.result and not o.result.not_modified]
            for outcome in batch:
                if outcome.result is None or outcome.result.not_modified:
                    reports[outcome.index] = _report_quiet(outcome, states, quiet)
            if found:
                with store.engine.begin() as conn:
                    for outcome, result in found:
                        reports[outcome.index] = _store(
                            settings, store, conn, outcome.spec, result, states
                        )
    done = CollectReport(tuple(report for report in reports if report is not None))
    with store.engine.begin() as conn:
        article_store.record_fetches(conn, quiet, at=store.now())
        conn.execute(collections.insert().values(at=store.now(), report=done.as_dict()))
    return done


def _report_quiet(
    outcome: Outcome, states: Mapping[str, FetchState], quiet: list[Fetched]
) -> SourceReport:
    """A source that failed or answered 304: its fetch state joins ``quiet``, to be written
    at the end of the pass."""
    spec, result, seen_before = outcome.spec, outcome.result, outcome.spec.id in states
    if result is None:
        log.warning("source %s: %s", spec.id, outcome.error)
        if seen_before:  # a source never fetched stays new, so its first success looks back
            quiet.append(Fetched(spec.id, "error", error=outcome.error))
        return SourceReport(spec.id, "error", error=outcome.error)
    first = not seen_before
    quiet.append(Fetched(spec.id, "not-modified", result.etag, result.last_modified, first=first))
    return SourceReport(spec.id, "not-modified")


def _store(
    settings: Settings,
    store: Store,
    conn: Connection,
    spec: SourceSpec,
    result: FetchResult,
    states: Mapping[str, FetchState],
) -> SourceReport:
    """A source that found a document: its articles and its fetch state, together."""
    now, seen_before = store.now(), spec.id in states
    archive_before = (
        None
        if seen_before
        else article_store.lookback_start(now, spec.lookback_days or settings.lookback_days)
    )
    counts = article_store.upsert(conn, result.articles, at=now, archive_before=archive_before)
    fetched = Fetched(
        spec.id, "ok", result.etag, result.last_modified, new=counts.new, first=not seen_before
    )
    article_store.record_fetches(conn, [fetched], at=now)
    problems = tuple(getattr(result, "problems", ()))
    for problem in problems:  # the daemon's only report: one line per skipped or odd entry
        log.warning("source %s: %s", spec.id, problem)
    return SourceReport(
        spec.id,
        "ok",
        counts.new,
        counts.edited,
        counts.unchanged,
        counts.archived,
        problems=problems,
    )
