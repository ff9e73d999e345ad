"""Fetching many sources at once: one lane per host, a bounded number of lanes in flight.

The feeds of one host are fetched one after another over one ``requests`` session, so they
share a kept-alive connection and a host is never sent more than one request at a time;
different hosts are fetched side by side, at most ``NEWSLETTER_COLLECT_CONCURRENCY`` at
once. A lane's session carries the address guard of ``netguard`` like any feed session:
sources that may reach private addresses and sources that may not never share one.

Workers only fetch and parse; the caller receives each outcome as it comes and does all
the storing itself, in its own thread.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from ..config import Settings
from ..errors import NewsletterError, SourceError
from ..models import FetchState
from .base import FetchResult, SourceSpec, make_source
from .feed import FeedSource, feed_session


@dataclass(frozen=True, slots=True)
class Outcome:
    """One source's fetch: a result, or the reason it failed."""

    index: int
    spec: SourceSpec
    result: FetchResult | None = None
    error: str = ""


def lane_key(spec: SourceSpec) -> tuple[str, ...]:
    """Sources with the same key share a lane (and, for feeds, a session)."""
    if spec.type != "feed":
        return ("source", spec.id)
    parts = urlsplit(spec.url.strip())
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return ("source", spec.id)  # refused by the source itself, with its own message
    private = "private" if spec.allow_private_network else "public"
    return ("feed", private, parts.scheme.lower(), parts.netloc.lower())


def fetch_all(
    settings: Settings,
    specs: Sequence[SourceSpec],
    states: Mapping[str, FetchState],
) -> Generator[list[Outcome]]:
    """Every source fetched, yielded in batches of whatever has finished since the last one."""
    lanes: dict[tuple[str, ...], list[int]] = {}
    for index, spec in enumerate(specs):
        lanes.setdefault(lane_key(spec), []).append(index)
    finished: queue.SimpleQueue[Outcome | BaseException] = queue.SimpleQueue()

    def run(indices: list[int]) -> None:
        try:
            _run_lane(settings, [specs[i] for i in indices], indices, states, finished.put)
        except BaseException as exc:  # a bug, not a source failing: the caller re-raises it
            finished.put(exc)

    workers = max(1, min(settings.collect_concurrency, len(lanes)))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="collect")
    try:
        for indices in lanes.values():
            pool.submit(run, indices)
        remaining = len(specs)
        while remaining:
            batch = [finished.get()]  # wait for one, then take whatever else is ready
            while True:
                try:
                    batch.append(finished.get_nowait())
                except queue.Empty:
                    break
            failures = [item for item in batch if isinstance(item, BaseException)]
            if failures:
                raise failures[0]
            outcomes = [item for item in batch if isinstance(item, Outcome)]
            remaining -= len(outcomes)
            yield outcomes
    finally:  # the caller gave up (its store failed): lanes not yet started never start
        pool.shutdown(wait=True, cancel_futures=True)


def _run_lane(
    settings: Settings,
    specs: Sequence[SourceSpec],
    indices: Sequence[int],
    states: Mapping[str, FetchState],
    report: Callable[[Outcome], None],
) -> None:
    feeds = [spec for spec in specs if spec.type == "feed"]
    allow_private = bool(feeds) and feeds[0].allow_private_network
    with feed_session(settings, allow_private=allow_private) as session:
        for index, spec in zip(indices, specs, strict=True):
            report(_fetch_one(settings, spec, index, states.get(spec.id, FetchState()), session))


def _fetch_one(
    settings: Settings,
    spec: SourceSpec,
    index: int,
    state: FetchState,
    session: requests.Session,
) -> Outcome:
    try:
        source = make_source(spec, settings)
        if isinstance(source, FeedSource):
            source.session = session
        return Outcome(index, spec, result=source.fetch(state))
    except NewsletterError as exc:
        # A SourceError's text starts with the source id, which the report shows already.
        return Outcome(index, spec, error=exc.reason if isinstance(exc, SourceError) else str(exc))
