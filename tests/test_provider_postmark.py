"""Postmark: per-item ErrorCodes in a 200 answer, and metadata search reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import UnknownOutcomeError
from newsletter.models import DeliveryStatus, SuppressionReason
from tests.servers.fake_provider import (
    connected,
    expected_copy,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def postmark(server: FakeProviderServer, tmp_path: Path) -> Iterator[PostmarkProvider]:
    with connected(server, tmp_path, "postmark") as provider:
        assert isinstance(provider, PostmarkProvider)
        yield provider


def test_request_holds_one_merged_message_per_recipient(postmark: PostmarkProvider) -> None:
    batch = sample_batch(2)
    request = postmark.build_request(sample_issue(), batch)

    assert request.headers["X-Postmark-Server-Token"] == "pm-test-token"
    first = request.json[0]
    assert first["To"] == batch.recipients[0].to_header
    assert first["Subject"] == expected_copy(batch.recipients[0])["subject"]
    assert first["HtmlBody"] == expected_copy(batch.recipients[0])["html"]
    assert first["MessageStream"] == "broadcast"
    assert first["Metadata"] == {"nl_batch": "batch-7-1", "nl_issue": "7", "nl_rid": "1"}
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["List-Unsubscribe"] == expected_copy(batch.recipients[0])["list_unsubscribe"]


def test_item_errors_are_read_one_by_one(
    server: FakeProviderServer, postmark: PostmarkProvider
) -> None:
    batch = sample_batch(3)
    inactive, invalid = batch.recipients[0].email, batch.recipients[2].email
    server.faults.push("postmark", Fault(FaultKind.RECIPIENT, recipient=inactive))
    server.faults.push("postmark", Fault(FaultKind.RECIPIENT, recipient=invalid, code="300"))

    results = {r.email: r for r in postmark.send_batch(sample_issue(), batch).results}

    assert results[inactive].status == DeliveryStatus.FAILED
    assert results[inactive].suppress == SuppressionReason.BOUNCED_HARD
    assert not results[inactive].retryable
    assert results[invalid].status == DeliveryStatus.FAILED
    assert results[invalid].suppress is None
    assert results[batch.recipients[1].email].status == DeliveryStatus.SENT
    assert server.recorder.count("postmark", inactive) == 0


def test_unknown_batch_is_found_by_metadata_search(
    server: FakeProviderServer, postmark: PostmarkProvider
) -> None:
    batch = sample_batch(3)
    postmark.send_batch(sample_issue(), sample_batch(2, key="other", first_id=90))
    server.faults.push("postmark", Fault(FaultKind.CLOSE))
    with pytest.raises(UnknownOutcomeError):
        postmark.send_batch(sample_issue(), batch)

    result = postmark.reconcile(sample_issue(), batch)

    assert result is not None
    assert [r.email for r in result.results] == [r.email for r in batch.recipients]
    assert all(r.status == DeliveryStatus.SENT and r.message_id for r in result.results)
    assert postmark.reconcile(sample_issue(), sample_batch(1, key="never-sent")) is None
