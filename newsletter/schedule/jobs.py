"""The scheduler's jobs, and what they share inside one scheduler process.

The job store pickles a reference to each job function and its arguments, so the jobs are
module-level functions taking plain strings: the publication's home and a list id. Inside
``newsletter run`` they use the installed ``Runtime`` (the open store, and the sends in
flight so that a stop can finish them cleanly); called anywhere else, they build what they
need from the home's settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from ..config import Settings, load_settings
from ..delivery.base import Provider
from ..delivery.engine import Engine
from ..delivery.outage import ProviderHealth
from ..delivery.report import Progress, SendReport
from ..errors import IssueMovedOnError, NewsletterError
from ..publisher import Publisher
from ..render.issue import Renderer
from ..store import Store, tally
from ..store import issues as issue_store
from . import cadence

log = logging.getLogger(__name__)

#: How often the dispatcher runs. An issue whose batches all wait longer than this for a
#: retry is handed back, so that other due issues go out meanwhile; a later dispatch
#: resumes it (at most one interval after its retry is due).
DISPATCH_SECONDS = 30


class Runtime:
    """What the jobs of one scheduler process share."""

    def __init__(
        self, settings: Settings, store: Store, *, provider: Provider | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.stopping = threading.Event()
        self._provider = provider
        self._engines: set[Engine] = set()
        self._lock = threading.Lock()
        # What the last sends saw of the provider: an outage outlives one dispatch.
        self.provider_health = ProviderHealth(time.time)

    def publisher(self) -> Publisher:
        """A fresh publisher per run, so an edited publication file is read again."""
        publisher = Publisher(self.settings, self.store, provider=self._provider)
        publisher.renderer = self.renderer  # parsed stylesheets are kept for the next run
        return publisher

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.settings)

    def engine(self, publisher: Publisher) -> Engine:
        # Waits between retries end early on a stop instead of sleeping up to a minute.
        return Engine(
            self.settings,
            self.store,
            publisher.provider,
            publisher.sending_values(),
            sleep=self._pause,
            hand_back_after=DISPATCH_SECONDS,
            health=self.provider_health,
        )

    def _pause(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def send_due(self) -> list[SendReport]:
        """Send every due issue, one after another, until done or asked to stop.

        Not ``Publisher.send_due``: it shares one engine between issues, and an engine clears
        its stop flag when it starts a run, so a stop could be lost between two issues.
        """
        publisher = self.publisher()
        reports = []
        for issue_id in publisher.due_issues():
            if self.stopping.is_set():
                break
            report = self._send(publisher, issue_id)
            if report is not None:
                reports.append(report)
        return reports

    def _send(self, publisher: Publisher, issue_id: int) -> SendReport | None:
        engine = self.engine(publisher)
        with self._tracking(engine, issue_id) as progress:
            try:
                report = publisher.send_issue(issue_id, progress, engine)
            except IssueMovedOnError as exc:  # another sender finished it meanwhile
                log.info("%s", exc)
                return None
            except NewsletterError as exc:  # one issue's trouble must not stop the others
                log.error("issue %s not sent: %s", issue_id, exc)
                return None
        counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items()))
        log.info("issue %s: %s (%s)", issue_id, report.final_state, counts or "no recipients")
        return report

    @contextmanager
    def _tracking(self, engine: Engine, issue_id: int) -> Iterator[Progress]:
        started = False

        def progress(count: int) -> None:
            nonlocal started
            if count == 0 and not started:  # the audience is frozen; the first batch is next
                started = True
                self._log_start(issue_id)
            if self.stopping.is_set():  # a stop that came before the engine began running
                engine.stop()

        with self._lock:
            self._engines.add(engine)
        try:
            yield progress
        finally:
            with self._lock:
                self._engines.discard(engine)

    def _log_start(self, issue_id: int) -> None:
        with self.store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
            left = tally.open_recipients(conn, issue_id)
        log.info("issue %s (%s): sending, %s recipient(s) to go", issue_id, record.list_id, left)

    def stop(self) -> None:
        """Take no new work; sends in flight finish their current batches and return."""
        self.stopping.set()
        with self._lock:
            engines = list(self._engines)
        for engine in engines:
            engine.stop()


_installed: Runtime | None = None


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """Make ``runtime`` the one this process's jobs use, for the ``with`` block."""
    global _installed
    _installed = runtime
    try:
        yield runtime
    finally:
        _installed = None


@contextmanager
def runtime_for(home: str) -> Iterator[Runtime]:
    """The installed runtime of this publication, or one built from its settings."""
    current = _installed
    if current is not None and current.settings.home == Path(home):
        yield current
        return
    settings = load_settings(home)
    store = Store.open(settings.database_url)
    try:
        yield Runtime(settings, store)
    finally:
        store.close()


def _run(what: str, home: str, work: Callable[[Runtime], object]) -> None:
    with runtime_for(home) as runtime:
        if runtime.stopping.is_set():
            log.info("%s skipped: the scheduler is stopping", what)
            return
        try:
            work(runtime)
        except NewsletterError as exc:  # expected trouble is logged; the next run tries again
            log.error("%s failed: %s", what, exc)


def _collect(runtime: Runtime) -> None:
    report = cadence.collect_and_publish(runtime.publisher()).report
    log.info(
        "collected %s new article(s) from %s source(s), %s failing",
        report.new,
        len(report.sources),
        len(report.errors),
    )


def collect_job(home: str) -> None:
    """Collect every source, then draft (and queue) issues for the ``instant`` lists."""
    _run("collection", home, _collect)


def digest_job(home: str, list_id: str) -> None:
    """Draft (and queue) the digest of ``list_id`` that its schedule says is due."""
    _run(
        f"digest of {list_id}",
        home,
        lambda runtime: cadence.run_digest(runtime.publisher(), list_id),
    )


def dispatch_job(home: str) -> None:
    """Send the queued issues that are due, and finish interrupted sends."""
    _run("dispatch", home, lambda runtime: runtime.send_due())
