"""The send loop's decisions, driven through the provider seam with scripted answers.

The providers themselves are tested against the fake provider server; here a provider
that answers from a script lets each branch of the loop be reached exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sqlalchemy import select, update

from newsletter.config import Settings
from newsletter.delivery.base import (
    BatchRecipient,
    BatchResult,
    OutgoingBatch,
    PreparedIssue,
    Provider,
    RecipientResult,
)
from newsletter.delivery.engine import Engine
from newsletter.delivery.outage import ProviderHealth
from newsletter.delivery.prepare import RecipientValues
from newsletter.delivery.providers.brevo import BrevoProvider
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.delivery.providers.resend import ResendProvider
from newsletter.delivery.ratelimit import TokenBucket
from newsletter.delivery.report import SendReport
from newsletter.delivery.request_start import LeaseLost, RequestStart
from newsletter.errors import (
    PermanentProviderError,
    ProviderAuthError,
    TransientProviderError,
    UnknownOutcomeError,
)
from newsletter.models import DeliveryStatus, IssueKind, IssueState, Recipient, SuppressionReason
from newsletter.render.merge import MergeTemplate
from newsletter.store import Store, audience, events, ledger, suppressions, tally
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients
from newsletter.tokens import TokenSigner
from tests.clocks import FakeClock

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
Answer = Callable[[OutgoingBatch], BatchResult]


class ScriptedProvider(Provider):
    """Answers each call with the next scripted step; records what it was given."""

    name = "scripted"
    max_batch = 2

    def __init__(
        self,
        settings: Settings,
        steps: list[Answer | Exception],
        idempotent: bool = False,
        reconciled: BatchResult | None = None,
    ) -> None:
        super().__init__(settings)
        self.steps = steps
        self.calls: list[OutgoingBatch] = []
        self.idempotent = idempotent  # type: ignore[misc]
        self.reconciled = reconciled

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        self.calls.append(batch)
        step = self.steps.pop(0) if self.steps else sent
        if isinstance(step, Exception):
            raise step
        return step(batch)

    def reconcile(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult | None:
        return self.reconciled


def sent(batch: OutgoingBatch) -> BatchResult:
    return BatchResult.all_sent(batch, f"<batch-{batch.seq}>")


def prepared(
    issue_id: int,
    html: str = "<p>Hi %%nl:name%% %%nl:f_city%%</p>",
    text: str = "Hi %%nl:name%%",
) -> PreparedIssue:
    return PreparedIssue(
        issue_id=issue_id,
        list_id="weekly",
        list_id_header="<weekly.example.org>",
        from_email="editor@example.org",
        from_name="Editor",
        reply_to="",
        subject=MergeTemplate.parse("Hello"),
        html=MergeTemplate.parse(html, escape=True),
        text=MergeTemplate.parse(text),
        list_unsubscribe=MergeTemplate.parse("<%%nl:unsubscribe_url%%>"),
        message_id_domain="example.org",
    )


@pytest.fixture
def sending(store: Store) -> int:
    return start_sending(store)


def start_sending(store: Store) -> int:
    """An issue being sent, its five members frozen in batches of two."""
    with store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="S",
            preheader="",
            intro_md="",
            article_ids=[],
            at=NOW,
        )
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    members = [Recipient(f"u{i}@example.org", f"U{i}", {}, "weekly") for i in range(5)]
    audience.freeze_audience(store.engine, issue_id, members, batch_size=2, at=NOW)
    return issue_id


def engine(settings: Settings, store: Store, provider: Provider) -> Engine:
    values = RecipientValues(TokenSigner("k"), "https://news.example.org")
    fast = settings.with_changes(concurrency=1, max_attempts=3)
    clock = FakeClock()
    return Engine(fast, store, provider, values, clock=clock.time, sleep=clock.sleep)


def counts(store: Store, issue_id: int) -> dict[str, int]:
    with store.engine.connect() as conn:
        return tally.status_counts(conn, issue_id)


def test_every_batch_sent_once_with_merge_values(
    settings: Settings, store: Store, sending: int
) -> None:
    provider = ScriptedProvider(settings, [])
    report = engine(settings, store, provider).run(prepared(sending))
    assert [len(b.recipients) for b in provider.calls] == [2, 2, 1]
    assert {b.sent_after for b in provider.calls} == {1_000_000.0}  # claimed at FakeClock's now
    assert counts(store, sending) == {"sent": 5}
    first = provider.calls[0].recipients[0]
    assert first.values["name"] == "U0" and first.values["f_city"] == ""
    assert first.values["unsubscribe_url"].startswith("https://news.example.org/unsubscribe/")
    assert report.recipients_sent == 5


def test_a_batch_wide_message_id_is_kept_on_the_batch_and_still_finds_each_recipient(
    settings: Settings, store: Store, sending: int
) -> None:
    engine(settings, store, ScriptedProvider(settings, [])).run(prepared(sending))
    with store.engine.begin() as conn:
        rows = conn.execute(select(recipients.c.email, recipients.c.provider_message_id)).all()
        kept = conn.execute(select(batches.c.provider_batch_id).order_by(batches.c.seq)).scalars()
        assert list(kept) == ["<batch-1>", "<batch-2>", "<batch-3>"]
        assert {message_id for _, message_id in rows} == {""}
        found = events.find_recipient(conn, "batch-2", "U3@example.org")
        assert found is not None and found.email == "u3@example.org"
        assert events.find_recipient(conn, "batch-2", "u0@example.org") is None
        assert events.find_recipient(conn, "batch-2", "") is None


def test_a_batch_sent_whole_is_recorded_on_the_batch_and_reads_as_sent(
    settings: Settings, store: Store, sending: int
) -> None:
    engine(settings, store, ScriptedProvider(settings, [])).run(prepared(sending))
    with store.engine.begin() as conn:
        raw = conn.execute(select(recipients.c.status)).scalars().all()
        assert set(raw) == {"queued"}  # untouched: the batch says it all
        as_read = conn.execute(
            select(recipients.c.email, tally.recipient_status)
            .select_from(tally.recipients_with_batch)
        ).all()
        assert {status for _, status in as_read} == {"sent"}
        assert tally.problems(conn, sending) == []
        assert list(ledger.failed_recipient_ids(conn, sending, [DeliveryStatus.FAILED])) == []
        # A later event about one recipient is written on that row and wins over the batch.
        found = events.find_recipient(conn, "batch-1", "u1@example.org")
        assert found is not None
        conn.execute(
            update(recipients).where(recipients.c.id == found.id).values(status="bounced-hard")
        )
        assert tally.status_counts(conn, sending) == {"sent": 4, "bounced-hard": 1}


def test_a_uniform_id_without_a_batch_id_is_kept_on_the_batch(
    settings: Settings, store: Store, sending: int
) -> None:
    def one_id(batch: OutgoingBatch) -> BatchResult:
        ids = [RecipientResult(r.email, DeliveryStatus.SENT, "<same>") for r in batch.recipients]
        return BatchResult(ids)

    engine(settings, store, ScriptedProvider(settings, [one_id])).run(prepared(sending))
    with store.engine.begin() as conn:
        kept = conn.execute(select(batches.c.provider_batch_id).order_by(batches.c.seq))
        assert list(kept.scalars()) == ["<same>", "<batch-2>", "<batch-3>"]
        assert tally.status_counts(conn, sending) == {"sent": 5}


def test_member_fields_are_read_only_when_a_template_uses_one(
    settings: Settings, store: Store, sending: int
) -> None:
    plain = replace(prepared(sending), html=MergeTemplate.parse("<p>Hi %%nl:name%%</p>"))
    assert prepared(sending).uses_member_fields and not plain.uses_member_fields
    provider = ScriptedProvider(settings, [])
    engine(settings, store, provider).run(plain)
    assert counts(store, sending) == {"sent": 5}
    assert provider.calls[0].recipients[0].values["name"] == "U0"


def test_only_a_whole_batch_reads_as_uniformly_sent() -> None:
    batch = OutgoingBatch(1, 1, "k", [])
    whole = BatchResult.all_sent(batch, "<id>")
    assert whole.whole and whole.uniformly_sent(batch)
    assert not BatchResult([]).uniformly_sent(batch)  # an answer that names nobody


def test_transient_errors_retry_with_the_same_key(
    settings: Settings, store: Store, sending: int
) -> None:
    provider = ScriptedProvider(
        settings, [TransientProviderError("busy", status=429, retry_after=0)]
    )
    engine(settings, store, provider).run(prepared(sending))
    first_batch = [b.idempotency_key for b in provider.calls if b.seq == 1]
    assert len(first_batch) == 2 and first_batch[0] == first_batch[1]
    assert len(provider.calls) == 4
    assert counts(store, sending) == {"sent": 5}


def test_a_temporary_failure_holds_every_sender_until_its_retry(
    settings: Settings, store: Store, sending: int
) -> None:
    busy = TransientProviderError("slow down", status=429, retry_after=30)
    provider = ScriptedProvider(settings, [busy])
    engine(settings, store, provider).run(prepared(sending))
    first, *later = [call.sent_after for call in provider.calls]
    assert len(later) == 3 and min(later) >= first + 30  # no other batch went meanwhile
    assert counts(store, sending) == {"sent": 5}


def test_a_batch_that_keeps_failing_while_others_go_through_gives_up(
    settings: Settings, store: Store, sending: int
) -> None:
    def first_batch_down(batch: OutgoingBatch) -> BatchResult:
        if batch.seq == 1:
            raise TransientProviderError("down", status=503)
        return sent(batch)

    provider = ScriptedProvider(settings, [first_batch_down] * 9)
    report = engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"failed": 2, "sent": 3}
    assert [call.seq for call in provider.calls].count(1) == 3  # max_attempts
    first, second = provider.calls[:2]
    assert (first.seq, second.seq) == (1, 2) and second.sent_after == first.sent_after
    assert report.paused == ""


def test_an_outage_pauses_the_issue_and_fails_nobody(
    settings: Settings, store: Store, sending: int
) -> None:
    boom: list[Answer | Exception] = [TransientProviderError("down", status=503) for _ in range(9)]
    provider = ScriptedProvider(settings, boom)
    report = engine(settings, store, provider).run(prepared(sending))
    calls = provider.calls
    assert [call.seq for call in calls] == [1, 2, 3]  # then one probe at a time, untried
    gaps = [later.sent_after - call.sent_after for call, later in pairwise(calls)]
    assert gaps[0] == 0  # one failure alone holds only its batch
    assert gaps[1] >= 1  # the second in a row holds every sender: backoff(2) is 1-2 s
    assert "provider unavailable, 3 attempts in a row failed: HTTP 503: down" in report.paused
    assert counts(store, sending) == {"queued": 5}
    with store.engine.begin() as conn:
        record = issue_store.get(conn, sending)
        assert record.state == IssueState.PAUSED and "unavailable" in record.pause_reason
        attempts = conn.execute(select(batches.c.attempts)).scalars()
        assert set(attempts) == {0}  # spent on the provider, not the batches: all again
        issue_store.transition(conn, sending, IssueState.QUEUED, NOW, pause_reason="")
        issue_store.transition(conn, sending, IssueState.SENDING, NOW)
    provider.steps = [TransientProviderError("down", status=503)] * 2
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"sent": 5}


def test_a_new_engine_of_the_process_waits_for_the_provider_as_the_last_one_did(
    settings: Settings, store: Store, sending: int
) -> None:
    clock = FakeClock()
    health = ProviderHealth(clock.time)
    busy = TransientProviderError("busy", status=429, retry_after=30)
    provider = ScriptedProvider(settings, [busy])

    def run_engine() -> SendReport:  # as the daemon does, a new engine each dispatch
        values = RecipientValues(TokenSigner("k"), "https://news.example.org")
        return Engine(settings.with_changes(concurrency=1), store, provider, values,
                      clock=clock.time, sleep=clock.sleep, hand_back_after=0.1,
                      health=health).run(prepared(sending))

    handed_back = run_engine().retry_at
    assert handed_back is not None and len(provider.calls) == 1
    assert run_engine().retry_at == handed_back and len(provider.calls) == 1  # no new try
    clock.now = handed_back
    assert run_engine().retry_at is None
    assert counts(store, sending) == {"sent": 5}


def test_auth_error_pauses_the_issue(settings: Settings, store: Store, sending: int) -> None:
    provider = ScriptedProvider(settings, [sent, ProviderAuthError("bad key", status=401)])
    report = engine(settings, store, provider).run(prepared(sending))
    assert "bad key" in report.paused and len(provider.calls) == 2
    with store.engine.connect() as conn:
        record = issue_store.get(conn, sending)
        assert record.state == IssueState.PAUSED and "bad key" in record.pause_reason
        assert tally.batch_counts(conn, sending) == {"pending": 2, "sent": 1}


def test_unknown_outcome_is_held_unless_idempotent(
    settings: Settings, store: Store, sending: int
) -> None:
    provider = ScriptedProvider(settings, [UnknownOutcomeError("reset")])
    report = engine(settings, store, provider).run(prepared(sending))
    assert report.unknown_batches == 1 and len(provider.calls) == 3
    assert counts(store, sending) == {"unknown": 2, "sent": 3}


def test_unknown_outcome_resent_on_idempotent_providers(
    settings: Settings, store: Store, sending: int
) -> None:
    provider = ScriptedProvider(settings, [UnknownOutcomeError("reset")], idempotent=True)
    engine(settings, store, provider).run(prepared(sending))
    first_batch = [b.idempotency_key for b in provider.calls if b.seq == 1]
    assert len(first_batch) == 2 and first_batch[0] == first_batch[1]
    assert counts(store, sending) == {"sent": 5}


def test_unknown_outcome_reconciled(settings: Settings, store: Store, sending: int) -> None:
    found = BatchResult(
        [
            RecipientResult("u0@example.org", DeliveryStatus.SENT, "<x>"),
            RecipientResult("u1@example.org", DeliveryStatus.FAILED, error="bounced"),
        ]
    )
    provider = ScriptedProvider(settings, [UnknownOutcomeError("reset")], reconciled=found)
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"failed": 1, "sent": 4}


def test_per_recipient_outcomes(settings: Settings, store: Store, sending: int) -> None:
    def mixed(batch: OutgoingBatch) -> BatchResult:
        a, b = batch.recipients
        return BatchResult(
            [
                RecipientResult(
                    a.email,
                    DeliveryStatus.FAILED,
                    error="inactive",
                    suppress=SuppressionReason.BOUNCED_HARD,
                ),
                RecipientResult(b.email, DeliveryStatus.FAILED, error="throttled", retryable=True),
            ]
        )

    provider = ScriptedProvider(settings, [mixed])
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"failed": 1, "sent": 4}
    with store.engine.connect() as conn:
        assert suppressions.is_suppressed(conn, "u0@example.org", "weekly")
    assert [r.email for r in provider.calls[-1].recipients] == ["u1@example.org"]


def test_permanent_error_fails_the_batch(settings: Settings, store: Store, sending: int) -> None:
    provider = ScriptedProvider(settings, [PermanentProviderError("bad from", status=400)])
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"failed": 2, "sent": 3}
    with store.engine.connect() as conn:
        assert {p["error"] for p in tally.problems(conn, sending)} == {"HTTP 400: bad from"}


def test_results_missing_a_recipient_are_unknown(
    settings: Settings, store: Store, sending: int
) -> None:
    def partial(batch: OutgoingBatch) -> BatchResult:
        first = batch.recipients[0]
        return BatchResult([RecipientResult(first.email, DeliveryStatus.SENT, "<1>")])

    provider = ScriptedProvider(settings, [partial])
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"sent": 4, "unknown": 1}


def test_dead_workers_batches_are_settled_on_restart(
    settings: Settings, store: Store, sending: int
) -> None:
    """A dead worker's batch whose request had started is in doubt; one it had only claimed
    (waiting for the rate limiter) was not sent, and goes like any other."""
    with store.engine.begin() as conn:
        started = ledger.claim(conn, sending, owner="elsewhere:1:a", now=0.0, lease_seconds=10,
                               at=NOW)
        assert started is not None
        assert ledger.start_request(conn, started.id, "elsewhere:1:a", now=1.0, lease_seconds=10,
                                    at=NOW)
        waiting = ledger.claim(conn, sending, owner="elsewhere:1:a", now=0.0, lease_seconds=10,
                               at=NOW)
        assert waiting is not None
    provider = ScriptedProvider(settings, [])
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"sent": 3, "unknown": 2}
    called = [r.email for batch in provider.calls for r in batch.recipients]
    assert sorted(called) == ["u2@example.org", "u3@example.org", "u4@example.org"]
    with store.engine.connect() as conn:
        attempts = conn.execute(select(batches.c.attempts).where(batches.c.id == waiting.id))
        assert attempts.scalar_one() == 1  # the claim that sent nothing did not count
    idempotent = ScriptedProvider(settings, [], idempotent=True)
    assert idempotent.idempotent


def test_a_sender_whose_lease_ran_out_while_it_waited_sends_nothing(
    settings: Settings, store: Store, sending: int
) -> None:
    """A sender held by the rate limiter past its lease finds, when it would start the
    request, that another worker took the batch back and sent it: it sends nothing."""
    with store.engine.begin() as conn:
        waited = ledger.claim(conn, sending, owner="elsewhere:1:a", now=0.0, lease_seconds=10,
                              at=NOW)
        assert waited is not None
    provider = ScriptedProvider(settings, [])
    engine(settings, store, provider).run(prepared(sending))
    assert counts(store, sending) == {"sent": 5}
    late = RequestStart(store, "elsewhere:1:a", 10)
    with pytest.raises(LeaseLost):
        late.begin(prepared(sending), waited, OutgoingBatch(waited.id, waited.seq, "k", []))


def test_a_late_answer_after_a_takeover_is_not_recorded(
    settings: Settings, store: Store, sending: int
) -> None:
    """The lease ran out mid-request and another worker took the batch: its outcome is theirs."""

    def taken_over_meanwhile(batch: OutgoingBatch) -> BatchResult:
        with store.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch.batch_id)
                .values(lease_owner="elsewhere:1:b", lease_until=0.0)
            )
        return sent(batch)

    provider = ScriptedProvider(settings, [taken_over_meanwhile])
    engine(settings, store, provider).run(prepared(sending))
    # The other worker never came back, so this one later settled the batch as unknown;
    # the answer that arrived after the takeover was not written over the other's lease.
    assert counts(store, sending) == {"sent": 3, "unknown": 2}


class RecordedLimits:
    """A limiter factory that remembers the rate each bucket was made with."""

    def __init__(self) -> None:
        self.rates: dict[str, float] = {}

    def __call__(self, name: str, rate: float, capacity: float) -> TokenBucket:
        self.rates[name] = rate
        return TokenBucket(rate, capacity)


@pytest.mark.parametrize(
    ("provider", "configured", "expected"),
    [
        (ResendProvider, None, 2.0),
        (ResendProvider, 0.0, 0.0),
        (ResendProvider, 10.0, 10.0),
        (MailgunProvider, None, 0.0),
        (BrevoProvider, None, 100 / 60),
    ],
)
def test_a_providers_documented_rate_applies_unless_the_publisher_sets_one(
    settings: Settings,
    store: Store,
    provider: type[Provider],
    configured: float | None,
    expected: float,
) -> None:
    chosen = settings.with_changes(rate_requests=configured)
    limits = RecordedLimits()
    Engine(chosen, store, provider(chosen), RecipientValues(TokenSigner("k"), "x"),
           limiters=limits)
    assert limits.rates[f"{provider.name}:requests"] == expected


def test_a_batch_sent_whole_lists_each_recipient_on_demand() -> None:
    recipients = [BatchRecipient(i, f"u{i}@example.org", f"U{i}", {}) for i in range(3)]
    result = BatchResult.all_sent(OutgoingBatch(7, 1, "key", recipients), "<id@mg>")
    assert len(result.results) == 3 and result.results[-1].email == "u2@example.org"
    assert list(result.results) == [
        RecipientResult(f"u{i}@example.org", DeliveryStatus.SENT, "<id@mg>") for i in range(3)
    ]
    assert result.results[1:] == list(result.results)[1:]
    assert result.uniformly_sent(OutgoingBatch(7, 1, "key", recipients))


def test_a_stop_after_an_outcome_still_sends_the_batch_claimed_with_it(
    settings: Settings, store: Store, sending: int
) -> None:
    provider = ScriptedProvider(settings, [])
    sender = engine(settings, store, provider)
    sender.run(prepared(sending), progress=lambda n: sender.stop() if n else None)
    # The first outcome was committed with the claim of the second batch: that one is in
    # flight, so it goes; nothing more is claimed and nothing is left ``sending``.
    assert [b.seq for b in provider.calls] == [1, 2]
    with store.engine.connect() as conn:
        assert tally.batch_counts(conn, sending) == {"pending": 1, "sent": 2}


def test_no_batch_is_claimed_with_an_outcome_once_the_issue_is_paused(
    settings: Settings, store: Store, sending: int
) -> None:
    def pause_meanwhile(batch: OutgoingBatch) -> BatchResult:
        with store.engine.begin() as conn:  # another process pauses it during the request
            issue_store.transition(conn, sending, IssueState.PAUSED, NOW, "by an editor")
        return sent(batch)

    provider = ScriptedProvider(settings, [pause_meanwhile])
    engine(settings, store, provider).run(prepared(sending))
    assert len(provider.calls) == 1
    with store.engine.connect() as conn:
        assert tally.batch_counts(conn, sending) == {"pending": 2, "sent": 1}


def test_values_for_a_send_hold_exactly_what_the_templates_use() -> None:
    make = RecipientValues(TokenSigner("k"), "https://news.example.org")
    needed = frozenset({"greeting_name", "unsubscribe_url", "f_city", "f_absent"})
    values = make.only(needed)("ann@example.org", "Ann Lee", "weekly", {"city": "Port", "zip": "1"})
    full = make("ann@example.org", "Ann Lee", "weekly", {"city": "Port", "zip": "1"})
    assert values == {
        "greeting_name": "Ann",
        "unsubscribe_url": full["unsubscribe_url"],
        "f_city": "Port",
        "f_absent": "",  # a column the member file lacks is empty, as in a preview
    }


def test_batch_variables_are_the_same_whether_values_are_copied_whole_or_key_by_key() -> None:
    from newsletter.delivery.variables import batch_variables

    issue = prepared(1)  # name and f_city in the HTML, name in the text, the URL in a header
    make = RecipientValues(TokenSigner("k"), "https://news.example.org")
    exact = make.only(issue.field_names)("u@example.org", "U", "weekly", {"city": "a"})
    extra = make("v@example.org", "V", "weekly", {"city": "b"})  # a test send's full values
    batch = OutgoingBatch(1, 1, "k", [BatchRecipient(1, "u@example.org", "U", exact),
                                      BatchRecipient(2, "v@example.org", "V", extra)])
    found = batch_variables(issue, batch).per_recipient
    assert found[0] == exact and found[0] is not exact  # copied: a provider may add to it
    assert found[1] == {k: extra[k] for k in ("name", "f_city", "unsubscribe_url")}
