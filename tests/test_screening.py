"""Screening a batch before the provider: the recipients whose copy cannot be built."""

from __future__ import annotations

from dataclasses import replace

import pytest

from newsletter.config import Settings
from newsletter.delivery.base import BatchRecipient, OutgoingBatch
from newsletter.delivery.providers.outbox import OutboxProvider
from newsletter.delivery.screening import send_screened, unsendable
from newsletter.errors import PermanentProviderError
from newsletter.models import DeliveryStatus
from newsletter.render.merge import MergeTemplate
from tests.servers.fake_provider import sample_batch, sample_issue


def with_name(batch: OutgoingBatch, index: int, name: str) -> OutgoingBatch:
    recipients = list(batch.recipients)
    old = recipients[index]
    recipients[index] = BatchRecipient(old.recipient_id, old.email, name,
                                       {**old.values, "name": name})
    return replace(batch, recipients=recipients)


def test_names_outside_ascii_and_unusual_spaces_are_sendable() -> None:
    """Not printable to ``str.isprintable`` (a no-break space), yet fine in a header."""
    batch = with_name(sample_batch(3), 0, "Zoë\u00a0Ångström")
    assert unsendable(sample_issue(), batch.recipients) == {}


def test_a_subject_field_is_screened_and_a_body_only_field_is_not() -> None:
    batch = with_name(sample_batch(2), 1, "Ann")
    values = {**batch.recipients[0].values, "f_note": "two\nlines"}
    first = batch.recipients[0]._replace(values=values)
    batch = replace(batch, recipients=[first, batch.recipients[1]])
    in_body = sample_issue(text=MergeTemplate.parse("%%nl:f_note%% %%nl:unsubscribe_url%%"))
    assert unsendable(in_body, batch.recipients) == {}
    in_subject = sample_issue(subject=MergeTemplate.parse("About %%nl:f_note%%"))
    assert unsendable(in_subject, batch.recipients) == {
        first.recipient_id: "note holds a line feed (U+000A), which cannot go in the Subject "
                            "header"
    }


def test_a_batch_of_only_unsendable_recipients_never_reaches_the_provider(
    settings: Settings,
) -> None:
    batch = with_name(sample_batch(1), 0, "Eve\r\nBcc: x@attacker.example")
    provider = OutboxProvider(settings)
    result = send_screened(provider, sample_issue(), batch)
    assert [(r.status, r.error) for r in result.results] == [(
        DeliveryStatus.FAILED,
        "name holds a carriage return (U+000D), which cannot go in the To header",
    )]
    assert not provider.folder(sample_issue()).exists()


def test_a_copy_that_still_cannot_be_built_fails_its_batch_instead_of_the_send(
    settings: Settings,
) -> None:
    """A message the builder refuses for a reason screening does not know (here a
    Message-ID domain that is not one) is a permanent failure of the batch, which the
    engine records, never an exception that leaves the issue ``sending``."""
    issue = sample_issue(message_id_domain="not a domain!")
    with pytest.raises(PermanentProviderError, match="could not be built"):
        send_screened(OutboxProvider(settings), issue, sample_batch(2))


def test_a_subject_typed_with_a_control_character_fails_the_batch_with_the_reason(
    settings: Settings,
) -> None:
    """Every copy carries it alike, so no recipient is to blame and none is sent it."""
    issue = sample_issue(subject=MergeTemplate.parse("Harbour\x1b[2J news for %%nl:name%%"))
    provider = OutboxProvider(settings)
    with pytest.raises(PermanentProviderError,
                       match=r"Subject header holds a control character \(U\+001B\)"):
        send_screened(provider, issue, sample_batch(2))
    assert not provider.folder(issue).exists()
