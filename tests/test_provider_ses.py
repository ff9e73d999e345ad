"""SES v2 bulk sends: SigV4 signing, inline templates and per-entry statuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from newsletter.delivery.providers.ses import SesProvider
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.models import DeliveryStatus
from tests.servers.fake_provider import (
    connected,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def ses(server: FakeProviderServer, tmp_path: Path) -> Iterator[SesProvider]:
    with connected(server, tmp_path, "ses") as provider:
        assert isinstance(provider, SesProvider)
        yield provider


def test_request_is_a_signed_inline_template(ses: SesProvider) -> None:
    request = ses.build_request(sample_issue(), sample_batch(2))
    body = json.loads(request.data)

    assert request.url.endswith("/v2/email/outbound-bulk-emails")
    assert request.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAFAKEPROVIDER/")
    assert "X-Amz-Date" in request.headers
    content = body["DefaultContent"]["Template"]["TemplateContent"]
    assert content["Subject"] == "Workers\u2013Internationalist weekly, for {{{name}}}"
    assert "{{{h_unsubscribe_url}}}" in content["Html"]
    assert body["FromEmailAddress"].startswith("=?utf-8?")
    entry = body["BulkEmailEntries"][1]
    data = json.loads(entry["ReplacementEmailContent"]["ReplacementTemplate"]
                      ["ReplacementTemplateData"])
    assert data["h_name"] == 'Grace &quot;Amazing&quot; Hopper 2'
    assert entry["ReplacementHeaders"][0]["Name"] == "List-Unsubscribe"


def test_entry_statuses_decide_each_recipient(
    server: FakeProviderServer, ses: SesProvider
) -> None:
    batch = sample_batch(3)
    throttled, rejected = batch.recipients[0].email, batch.recipients[1].email
    server.faults.push("ses", Fault(FaultKind.RECIPIENT, recipient=throttled))
    server.faults.push("ses", Fault(FaultKind.RECIPIENT, recipient=rejected,
                                    code="MESSAGE_REJECTED"))

    results = {r.email: r for r in ses.send_batch(sample_issue(), batch).results}

    assert results[throttled].status == DeliveryStatus.FAILED
    assert results[throttled].retryable
    assert results[rejected].status == DeliveryStatus.FAILED
    assert not results[rejected].retryable
    assert results[batch.recipients[2].email].status == DeliveryStatus.SENT
    assert server.recorder.count("ses", throttled) == 0


def test_unsigned_or_tampered_requests_are_refused(
    server: FakeProviderServer, ses: SesProvider
) -> None:
    url = f"{server.url}/v2/email/outbound-bulk-emails"
    signed = ses.build_request(sample_issue(), sample_batch(1))
    with requests.Session() as session:
        unsigned = session.post(url, data=signed.data)
        tampered = session.post(url, data=signed.data.replace(b"reader1", b"reader9"),
                                headers=dict(signed.headers))
        genuine = session.post(url, data=signed.data, headers=dict(signed.headers))

    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationToken")
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert genuine.status_code == 200
    assert server.recorder.count("ses", "reader9@example.com") == 0
