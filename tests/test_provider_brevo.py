"""Brevo: one message version per recipient, idempotent by a body header."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.delivery.providers.brevo import BrevoProvider, idempotency_uuid
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import UnknownOutcomeError
from tests.servers.fake_provider import (
    connected,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def brevo(server: FakeProviderServer, tmp_path: Path) -> Iterator[BrevoProvider]:
    with connected(server, tmp_path, "brevo") as provider:
        assert isinstance(provider, BrevoProvider)
        yield provider


def test_idempotency_key_is_a_stable_uuid() -> None:
    key = "batch-7-1"
    assert idempotency_uuid(key) == idempotency_uuid(key) != idempotency_uuid("batch-7-2")
    assert uuid.UUID(idempotency_uuid(key))
    existing = str(uuid.uuid4())
    assert idempotency_uuid(existing) == existing


def test_each_recipient_has_its_own_version(brevo: BrevoProvider) -> None:
    batch = sample_batch(2)
    body = brevo.build_request(sample_issue(), batch).json

    assert body["headers"]["idempotencyKey"] == idempotency_uuid("batch-7-1")
    assert "{{ params.h_name }}" in body["htmlContent"]
    second = body["messageVersions"][1]
    assert second["to"] == [{"email": "reader2@example.com", "name": batch.recipients[1].name}]
    assert second["params"]["h_name"] == 'Grace &quot;Amazing&quot; Hopper 2'
    assert second["headers"]["List-Unsubscribe"].startswith("<https://news.example.org/u/tok2")
    assert json.loads(second["headers"]["X-Mailin-custom"])["nl_rid"] == "2"


def test_resent_batch_after_lost_answer_is_not_delivered_twice(
    server: FakeProviderServer, brevo: BrevoProvider
) -> None:
    batch = sample_batch(3)
    server.faults.push("brevo", Fault(FaultKind.CLOSE))
    with pytest.raises(UnknownOutcomeError):
        brevo.send_batch(sample_issue(), batch)

    result = brevo.send_batch(sample_issue(), batch)

    assert all(r.message_id for r in result.results)
    assert [server.recorder.count("brevo", r.email) for r in batch.recipients] == [1, 1, 1]
