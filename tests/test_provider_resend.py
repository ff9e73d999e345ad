"""Resend: idempotent batches and its typed errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.providers.resend import ResendProvider
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import PermanentProviderError, UnknownOutcomeError
from tests.servers.fake_provider import (
    connected,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def resend(server: FakeProviderServer, tmp_path: Path) -> Iterator[ResendProvider]:
    with connected(server, tmp_path, "resend") as provider:
        assert isinstance(provider, ResendProvider)
        yield provider


def test_request_carries_the_idempotency_key_and_tags(resend: ResendProvider) -> None:
    request = resend.build_request(sample_issue(), sample_batch(1, key="issue 7/batch:1"))
    assert request.headers["Idempotency-Key"] == "issue 7/batch:1"
    tags = {t["name"]: t["value"] for t in request.json[0]["tags"]}
    assert tags == {"nl_batch": "issue_7_batch_1", "nl_issue": "7", "nl_rid": "1"}


def test_resent_batch_after_lost_answer_is_not_delivered_twice(
    server: FakeProviderServer, resend: ResendProvider
) -> None:
    batch = sample_batch(3)
    server.faults.push("resend", Fault(FaultKind.RESET))
    with pytest.raises(UnknownOutcomeError):
        resend.send_batch(sample_issue(), batch)

    first = resend.send_batch(sample_issue(), batch)
    again = resend.send_batch(sample_issue(), batch)

    assert [r.message_id for r in first.results] == [r.message_id for r in again.results]
    assert [server.recorder.count("resend", r.email) for r in batch.recipients] == [1, 1, 1]
    assert server.recorder.requests["resend"] == 3


def test_same_key_with_another_body_is_refused(
    server: FakeProviderServer, resend: ResendProvider
) -> None:
    resend.send_batch(sample_issue(), sample_batch(2))
    with pytest.raises(PermanentProviderError, match="invalid_idempotent_request"):
        resend.send_batch(sample_issue(tag="changed"), sample_batch(2, first_id=10))
    assert server.recorder.count("resend", "reader10@example.com") == 0
