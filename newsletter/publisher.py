"""The publishing pipeline as one object: collect → draft → render → queue → send.

The CLI, the scheduler and the web app call this; it owns no I/O policy of its own
beyond wiring the stages (``sources``, ``issues``, ``render``, ``delivery``, ``store``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .bulkwork import fewer_collections
from .config import Settings
from .delivery.base import PreparedIssue, Provider
from .delivery.beside import Freeze, send_beside
from .delivery.engine import Engine
from .delivery.fanout import helpers_for
from .delivery.outage import resume_after_outage
from .delivery.prepare import RecipientValues, batch_for_test_send, prepare_issue, public_base
from .delivery.providers.registry import make_provider
from .delivery.report import Progress, SendReport
from .delivery.rounds import HAND_BACK_SECONDS, DueRounds
from .errors import IssueMovedOnError, IssueStateError
from .issues import sendtime
from .issues.drafting import Drafter, DraftText
from .lists.addresscache import opened_cache
from .lists.appended import TailStart
from .lists.audience_key import Reuse, audience_key, reusable
from .lists.config import PublicationConfig, PublicationFile
from .lists.problems import SkippedRows
from .lists.reading import stream_recipients
from .lists.signups import apply_before_send
from .lists.tokencache import TokenCache, token_cache_path
from .models import (
    IssueState,
    MailingList,
    Recipient,
    check_transition,
)
from .store import Store, ledger, suppressions, tally
from .store import articles as article_store
from .store import audience as audience_store
from .store import issues as issue_store
from .store.audience_origins import AudienceOrigin
from .store.audience_sources import AudienceSource, Continued, SourceKey
from .tokens import TokenSigner

if TYPE_CHECKING:
    # Imported where used: sending a rendered issue loads no jinja2, premailer, feedparser.
    from .issues.lint import LintReport
    from .render.issue import IssueContent, RenderedIssue, Renderer
    from .sources.collect import CollectReport

log = logging.getLogger(__name__)


class Publisher:
    """Everything an editor, the scheduler or a script can do to a publication."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        config: PublicationConfig | None = None,
        provider: Provider | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._given = config
        self._file = PublicationFile(settings)
        self._provider = provider

    # -- wiring ----------------------------------------------------------------------------
    @property
    def config(self) -> PublicationConfig:
        """The publication file as it is now (unless one was given): read again once its
        stamp moved, so that a long-lived process, the web app, sees an admin's edit (a new
        list or source) as each of the scheduler's runs does."""
        return self._given if self._given is not None else self._file()

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.settings)
        return self._provider

    @cached_property
    def renderer(self) -> Renderer:
        from .render.issue import Renderer

        return Renderer(self.settings)

    @cached_property
    def signer(self) -> TokenSigner:
        return TokenSigner(self.settings.secret_key.reveal())

    @property
    def base_url(self) -> str:
        return public_base(self.settings.public_url, self.config.publication)

    def web_url(self, list_id: str, issue_id: int) -> str:
        return f"{self.base_url}/archive/{list_id}/{issue_id}"

    # -- collect and draft -----------------------------------------------------------------
    def collect(self) -> CollectReport:
        from .sources.collect import collect

        return collect(self.settings, self.store, self.config.sources)

    def draft(
        self,
        list_id: str,
        *,
        article_ids: Sequence[int] | None = None,
        subject: str = "",
        preheader: str = "",
        intro_md: str = "",
    ) -> list[int]:
        """Draft from the list's unsent articles (or the ones named): one issue for a digest,
        one per article for an instant list. Returns the new issue ids (none if nothing new)."""
        text = DraftText(subject, preheader, intro_md)
        return Drafter(self.settings, self.store, self.config).draft(list_id, article_ids, text)

    # -- render ----------------------------------------------------------------------------
    def content(self, issue_id: int) -> IssueContent:
        from markdown_it import MarkdownIt

        from .render.issue import IssueContent
        from .sources.sanitize import clean_html

        with self.store.engine.begin() as conn:
            record = issue_store.get(conn, issue_id)
            items = [
                a for _, a in article_store.by_ids(conn, issue_store.article_ids(conn, issue_id))
            ]
        return IssueContent(
            publication=self.config.publication,
            mailing_list=self.config.list(record.list_id),
            issue_id=issue_id,
            kind=record.kind,
            subject=record.subject,
            preheader=record.preheader,
            intro_html=clean_html(MarkdownIt().render(record.intro_md), self.base_url)
            if record.intro_md
            else "",
            articles=items,
            web_url=self.web_url(record.list_id, issue_id),
            sent_at=record.started_at,
            number=record.number,
        )

    def render(self, issue_id: int, *, store: bool = True) -> RenderedIssue:
        """Render the issue once; per-recipient values are merged later."""
        rendered = self.renderer.render(self.content(issue_id))
        for warning in rendered.warnings:
            log.warning("issue %s: %s", issue_id, warning)
        if store:
            with self.store.engine.begin() as conn:
                issue_store.save_rendering(
                    conn,
                    issue_id,
                    html=rendered.html,
                    text=rendered.text,
                    web_html=rendered.web_html,
                    at=self.store.now(),
                )
        return rendered

    def prepared(self, issue_id: int, *, is_test: bool = False) -> PreparedIssue:
        with self.store.engine.begin() as conn:
            record = issue_store.get(conn, issue_id)
            stored = issue_store.rendering(conn, issue_id)
        if stored is None:
            rendered = self.render(issue_id)
            html, text = rendered.html, rendered.text
        else:
            html, text, _ = stored
        return prepare_issue(
            issue_id=issue_id,
            subject=record.subject,
            html=html,
            text=text,
            publication=self.config.publication,
            mailing_list=self.config.list(record.list_id),
            is_test=is_test,
        )

    def recipient_values(self) -> RecipientValues:
        return RecipientValues(self.signer, self.base_url)

    def sending_values(self) -> RecipientValues:
        """A sender's values: the tokens it signs are kept for the next issue to the same
        list, which reads them back instead of signing them again (``lists.tokencache``)."""
        kept = TokenCache(token_cache_path(self.settings.var_dir, self.signer))
        return RecipientValues(self.signer, self.base_url, kept)

    # -- state changes ---------------------------------------------------------------------
    def transition(
        self, issue_id: int, target: IssueState, note: str = "", **values: object
    ) -> None:
        with self.store.engine.begin() as conn:
            issue_store.transition(conn, issue_id, target, self.store.now(), note, **values)

    def queue(
        self, issue_id: int, at: datetime | None = None, *, force: bool = False
    ) -> LintReport:
        """draft → queued once the pre-send checks pass: errors block; warnings block unless
        ``force``. Returns the findings (warnings a forced queue went past)."""
        with self.store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
        check_transition(issue_id, state := record.state, IssueState.QUEUED)
        if state != IssueState.DRAFT:  # the other ways back to queued are resume and retry
            raise IssueStateError(
                f"issue {issue_id} is {state}; only a draft can be queued "
                "(resume a paused issue, retry a finished one)"
            )
        if at is not None:  # a time already past would send at once
            sendtime.require_future(at, self.store.now(), self.config.list(record.list_id).timezone)
        self.render(issue_id)  # before the checks: they read what will be sent
        report = self.check(issue_id)
        report.check_queueable(force=force)
        self.transition(
            issue_id, IssueState.QUEUED, f"send at {at.isoformat()}" if at else "", send_at=at
        )
        return report

    def check(self, issue_id: int) -> LintReport:
        """The pre-send checks on the issue as it would be sent now."""
        from .issues.lint import lint  # lxml's HTML parser, for the commands that check

        return lint(self.store, issue_id, self.prepared(issue_id), self.recipient_values(),
                    self.config.publication.from_email)

    def cancel(self, issue_id: int) -> None:
        with self.store.engine.begin() as conn:
            issue_store.transition(conn, issue_id, IssueState.CANCELLED, self.store.now())
            if not tally.status_counts(conn, issue_id).get("sent"):
                issue_store.release_articles(conn, issue_id)

    def pause(self, issue_id: int) -> None:
        self.transition(
            issue_id, IssueState.PAUSED, "paused by an editor", pause_reason="paused by an editor"
        )

    def resume(self, issue_id: int) -> None:
        """paused → queued; the sender continues where the ledger says it stopped."""
        with self.store.engine.begin() as conn:
            current = issue_store.get(conn, issue_id).state
            if current != IssueState.PAUSED:
                raise IssueStateError(
                    f"issue {issue_id} is {current}; only a paused issue can "
                    "be resumed (use `issue queue` for a draft)"
                )
            issue_store.transition(
                conn, issue_id, IssueState.QUEUED, self.store.now(), "resumed", pause_reason=""
            )

    def retry(self, issue_id: int, *, unknown: bool = False) -> int:
        """Put failed (or, on request, unknown) recipients back in line; returns how many."""
        from .models import DeliveryStatus

        wanted = [DeliveryStatus.UNKNOWN] if unknown else [DeliveryStatus.FAILED]
        with self.store.engine.begin() as conn:
            record = issue_store.get(conn, issue_id)
            ids = list(ledger.failed_recipient_ids(conn, issue_id, wanted))
            if not ids:
                return 0
            if record.state not in (IssueState.PARTIALLY_FAILED, IssueState.SENT):
                raise IssueStateError(
                    f"issue {issue_id} is {record.state}; retry once it has finished"
                )
            size = self.batch_size()
            for start in range(0, len(ids), size):
                ledger.rebatch(conn, issue_id, ids[start : start + size], at=self.store.now())
            issue_store.transition(
                conn,
                issue_id,
                IssueState.QUEUED,
                self.store.now(),
                f"retry {len(ids)} {'unknown' if unknown else 'failed'}",
            )
        return len(ids)

    # -- send ------------------------------------------------------------------------------
    def batch_size(self) -> int:
        native = self.provider.max_batch
        return min(native, self.settings.batch_size) if self.settings.batch_size else native

    def audience(
        self, mailing_list: MailingList, fields: Set[str] | None = None, *,
        after: TailStart | None = None,
    ) -> Iterator[Recipient]:
        """The list's members, streamed, with only the ``fields`` columns (None: all), or only
        those appended to its last file from ``after`` on; invalid
        rows are skipped, and logged once the list is read as one line per file with their
        count (a list with 100,000 bad rows logged a line for each on every send). Repeats
        are left in: the ledger drops them. Readers forgotten at their request are left out
        before the ledger sees them (an old copy of a member file may still hold them)."""
        skipped = SkippedRows()
        paths = self.config.member_paths(mailing_list.id)  # the sign-up file too, once made
        recipients = stream_recipients(
            paths, mailing_list.id, var_dir=self.settings.var_dir,
            check_deliverability=self.settings.check_deliverability,
            on_problem=skipped.add, keep=fields, after=after,
        )
        with self.store.engine.connect() as conn:
            forgotten = suppressions.ForgottenScreen(suppressions.forgotten_digests(conn))
        yield from forgotten.members(recipients) if forgotten.digests else recipients
        skipped.log()
        if forgotten.left_out:
            log.warning(
                "list %s: %s row%s of readers forgotten at their request left out; is an old "
                "copy of a member file in use?", mailing_list.id, forgotten.left_out,
                "" if forgotten.left_out == 1 else "s",
            )

    def start(self, issue_id: int) -> PreparedIssue:
        """queued → sending; freeze the audience the first time.

        Several workers may start one issue at the same moment: one moves it to sending and
        the others join. One freezes the audience, a chunk at a time under a lease, while
        the others send what is committed (``store.audience``)."""
        prepared, freeze = self._started(issue_id)
        if freeze is not None:
            freeze(lambda: None)
        return prepared

    def _started(self, issue_id: int) -> tuple[PreparedIssue, Freeze | None]:
        """The issue moved to sending, and what freezes its audience (None: frozen), given
        what to call once it holds the freeze's lease."""
        self.settings.require_provider_credentials()
        record = self._begin_sending(issue_id)
        prepared = self.prepared(issue_id)
        if record.audience_frozen:
            return prepared, None
        mailing_list, fields = self.config.list(record.list_id), prepared.member_fields
        return prepared, lambda taken: self._freeze(issue_id, mailing_list, fields, taken)

    def _begin_sending(self, issue_id: int) -> issue_store.IssueRecord:
        with self.store.engine.begin() as conn:
            return issue_store.begin_sending(conn, issue_id, self.provider.name, self.store.now())

    def _freeze(self, issue_id: int, mailing_list: MailingList, fields: Set[str],
                taken: Callable[[], None]) -> None:
        """The ledger keeps of each member only the columns the issue's templates use.
        ``taken`` is called once the freeze's lease is held (its members are read then)."""
        self.apply_signups(mailing_list.id)
        try:
            with fewer_collections():  # a million members made and dropped (``bulkwork``)
                counts = self._frozen(issue_id, mailing_list, fields, taken)
        except audience_store.FreezeLost:
            log.warning("issue %s: another worker took over the audience's freeze", issue_id)
            return
        if counts is None:
            log.info("issue %s: audience frozen, or being frozen, by another worker", issue_id)
            return
        numbers = (counts.queued, counts.batches, counts.suppressed, counts.duplicates)
        log.info("issue %s: %s recipients in %s batches (%s suppressed, %s duplicates)",
                 issue_id, *numbers)

    def _frozen(self, issue_id: int, mailing_list: MailingList, fields: Set[str],
                taken: Callable[[], None]) -> audience_store.FreezeCounts | None:
        """The audience copied from an earlier issue read from the same files (then the rows
        appended to the last one since read), else read."""
        list_id, settings = mailing_list.id, self.settings
        key = self._audience_key(list_id, fields)
        reuse = self._reusable(list_id, key) if key is not None else None

        def still_read_from() -> SourceKey | None:  # asked once the list is read
            return key if self._audience_key(list_id, fields) == key else None

        counts = audience_store.freeze_audience(
            self.store.engine, issue_id, self._audience_from(mailing_list, fields, reuse),
            batch_size=self.batch_size(), at=self.store.now(), chunk_size=settings.freeze_chunk,
            lease_seconds=settings.lease_seconds, on_taken=taken,
            provenance=audience_store.Provenance(list_id, still_read_from) if key else None)
        if counts is not None and reuse is not None:
            origin = _origin(reuse, self.config.member_paths(list_id))
            log.info("issue %s: audience %s", issue_id, origin.describe())
        return counts

    def _audience_from(
        self, mailing_list: MailingList, fields: Set[str], reuse: Reuse | None
    ) -> Iterable[Recipient] | AudienceSource | Continued:
        if reuse is None:
            return self.audience(mailing_list, fields)
        if reuse.after is None:
            return reuse.source
        origin = _origin(reuse, self.config.member_paths(mailing_list.id))
        return Continued(reuse.source, self.audience(mailing_list, fields, after=reuse.after),
                         origin.appended_to, origin.from_line)

    def _audience_key(self, list_id: str, fields: Set[str]) -> SourceKey | None:
        """What the list's audience would be read from (``lists.audience_key``); None when it
        cannot be copied."""
        with self.store.engine.connect() as conn:
            forgotten = suppressions.forgotten_digests(conn)
        return audience_key(self.config.member_paths(list_id), list_id, fields,
                            var_dir=self.settings.var_dir, forgotten=forgotten,
                            check_deliverability=self.settings.check_deliverability)

    def _reusable(self, list_id: str, key: SourceKey) -> Reuse | None:
        paths = self.config.member_paths(list_id)
        with self.store.engine.connect() as conn, opened_cache(self.settings.var_dir) as cache:
            return reusable(conn, list_id, key, paths, cache)

    def apply_signups(self, list_id: str) -> None:
        """Copy sign-ups confirmed on any host into this host's files (``apply_before_send``)."""
        apply_before_send(self.config, self.store, list_id)

    def engine(self, *, hand_back_after: float | None = None) -> Engine:
        values, provider = self.sending_values(), self.provider
        return Engine(self.settings, self.store, provider, values, hand_back_after=hand_back_after)

    def send_issue(
        self, issue_id: int, progress: Progress | None = None, engine: Engine | None = None,
        *, send_while_freezing: bool = False,
    ) -> SendReport:
        """``send_while_freezing``: on PostgreSQL, without helper processes, this process's
        senders start on the audience's first chunks while it freezes the rest (``beside``)."""
        engine = engine or self.engine()
        with helpers_for(  # started as it freezes
            self.settings, self.store, issue_id, progress, engine,
            batch_size=self.batch_size(), member_paths=self.config.member_paths,
        ) as helpers:
            if send_while_freezing and not helpers.count and self.store.dialect == "postgresql":
                report = send_beside(engine, *self._started(issue_id), progress)
            else:
                report = engine.run(self.start(issue_id), progress)
        helpers.add_to(report)
        report.final_state, report.counts = self.finish(issue_id)
        return report

    def finish(self, issue_id: int) -> tuple[str, dict[str, int]]:
        """sending → sent / partially-failed once the audience is frozen and no batch is
        pending or in flight. The issue's state, and its recipients counted by status."""
        with self.store.engine.begin() as conn:
            record = issue_store.get(conn, issue_id)
            counts = tally.status_counts(conn, issue_id)  # once: about 0.1 s a million rows
            unfinished = not record.audience_frozen or tally.open_work(conn, issue_id)
            if record.state != IssueState.SENDING or unfinished:
                return str(record.state), counts
            failed = counts.get("failed") or counts.get("unknown")
            target = IssueState.PARTIALLY_FAILED if failed else IssueState.SENT
            note = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            try:
                issue_store.transition(
                    conn, issue_id, target, self.store.now(), note, finished_at=self.store.now()
                )
            except IssueStateError:  # another worker finished (or paused) it first
                return str(issue_store.get(conn, issue_id).state), counts
            return str(target), counts

    def due_issues(self) -> list[int]:
        resume_after_outage(self.store, self.settings.outage_resume_minutes)  # first: due too
        with self.store.engine.connect() as conn:
            return [r.id for r in issue_store.due(conn, self.store.now())]

    def send_due(
        self, progress_for: Callable[[int], Progress | None] | None = None
    ) -> list[SendReport]:
        """Send every due issue, one report each. An issue whose batches all wait for a
        retry is set aside while the others are sent, and taken up again when it is due."""
        engine = self.engine(hand_back_after=HAND_BACK_SECONDS)
        rounds = DueRounds(progress_for)
        ready = self.due_issues()
        while ready:
            for issue_id in ready:
                try:
                    rounds.record(self.send_issue(issue_id, rounds.progress(issue_id), engine))
                except IssueMovedOnError as exc:  # another sender finished it meanwhile
                    log.info("%s", exc)
            ready = rounds.next_round()
        return rounds.reports()

    # -- tests -----------------------------------------------------------------------------
    def test_send(self, issue_id: int, addresses: Sequence[str]) -> list[str]:
        """Send the real message, marked as a test, to ``addresses`` — outside the ledger."""
        self.settings.require_provider_credentials()
        prepared = self.prepared(issue_id, is_test=True)
        key = f"test-{issue_id}-{self.store.now().timestamp():.0f}"
        batch = batch_for_test_send(prepared, self.recipient_values(), addresses, key)
        result = self.provider.send_batch(prepared, batch)
        return [
            f"{r.email}: {r.status}{' — ' + r.error if r.error else ''}" for r in result.results
        ]


def _origin(reuse: Reuse, paths: Sequence[Path]) -> AudienceOrigin:
    """Where a reused audience comes from: the issue copied, and the file read after it."""
    if reuse.after is None:
        return AudienceOrigin(reuse.source.issue_id)
    return AudienceOrigin(reuse.source.issue_id, paths[-1].name, reuse.after.lines + 1)
