"""Collecting: ask every source what it has and keep what is new."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import NewsletterError, SourceError
from ..store import Store
from ..store import articles as article_store
from ..store.tables import collections
from .base import SourceSpec, make_source

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
    """Fetch every source; one that fails is reported and the others still collected."""
    reports = tuple(_collect_one(settings, store, spec) for spec in sources.values())
    with store.engine.begin() as conn:
        conn.execute(
            collections.insert().values(at=store.now(), report=CollectReport(reports).as_dict())
        )
    return CollectReport(reports)


def _collect_one(settings: Settings, store: Store, spec: SourceSpec) -> SourceReport:
    now = store.now()
    with store.engine.begin() as conn:
        state, seen_before = article_store.fetch_state(conn, spec.id)
    try:
        result = make_source(spec, settings).fetch(state)
    except NewsletterError as exc:
        # A SourceError's text starts with the source id, which the report shows already.
        reason = exc.reason if isinstance(exc, SourceError) else str(exc)
        log.warning("source %s: %s", spec.id, reason)
        if seen_before:  # a source never fetched stays new, so its first success looks back
            with store.engine.begin() as conn:
                article_store.record_fetch(conn, spec.id, at=now, status="error", error=reason)
        return SourceReport(spec.id, "error", error=reason)
    archive_before = (
        None
        if seen_before
        else article_store.lookback_start(now, spec.lookback_days or settings.lookback_days)
    )
    with store.engine.begin() as conn:
        counts = article_store.upsert(conn, result.articles, at=now, archive_before=archive_before)
        article_store.record_fetch(
            conn,
            spec.id,
            at=now,
            status="not-modified" if result.not_modified else "ok",
            etag=result.etag,
            last_modified=result.last_modified,
            new=counts.new,
            first=not seen_before,
        )
    status = "not-modified" if result.not_modified else "ok"
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
