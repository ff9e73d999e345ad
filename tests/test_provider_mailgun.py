"""Mailgun: the batch request's shape, and reconciliation through the Events API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.delivery.base import OutgoingBatch
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import ProviderAuthError, RenderError, UnknownOutcomeError
from newsletter.models import DeliveryStatus
from tests.servers.fake_provider import (
    connected,
    provider_settings,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def mailgun(server: FakeProviderServer, tmp_path: Path) -> Iterator[MailgunProvider]:
    with connected(server, tmp_path, "mailgun") as provider:
        assert isinstance(provider, MailgunProvider)
        yield provider


def test_request_uses_recipient_variables_for_every_merge(mailgun: MailgunProvider) -> None:
    batch = sample_batch(2)
    request = mailgun.build_request(sample_issue(), batch)
    parts = [(name, value.decode("utf-8")) for name, (_, value) in request.files]
    fields = dict(parts)

    assert request.url.endswith("/v3/mg.example.org/messages")
    assert request.auth == ("api", "mg-test-key")
    assert request.data is None  # multipart/form-data: no percent-encoding of a large body
    assert [v for k, v in parts if k == "to"] == [", ".join(r.to_header for r in batch.recipients)]
    assert fields["subject"] == "Workers\u2013Internationalist weekly, for %recipient.name%"
    assert '<a href="%recipient.h_unsubscribe_url%">' in fields["html"]
    assert fields["h:List-Unsubscribe"] == "<%recipient.unsubscribe_url%>"
    assert fields["v:nl_batch"] == "batch-7-1"
    assert fields["v:nl_rid"] == "%recipient.nl_rid%"
    variables = json.loads(fields["recipient-variables"])
    first = variables["reader1@example.com"]
    assert first["name"] == batch.recipients[0].values["name"]
    assert first["h_unsubscribe_url"].endswith("list=weekly&amp;src=email")
    assert first["nl_rid"] == "1"


def variables_and_html(
    mailgun: MailgunProvider, batch: OutgoingBatch
) -> tuple[dict[str, dict[str, str]], str]:
    request = mailgun.build_request(sample_issue(), batch)
    fields = {name: value.decode() for name, (_, value) in request.files}
    return json.loads(fields["recipient-variables"]), fields["html"]


def test_values_with_nothing_to_escape_travel_once(mailgun: MailgunProvider) -> None:
    variables, html = variables_and_html(mailgun, sample_batch(3, plain=True))
    assert '<a href="%recipient.unsubscribe_url%">' in html
    assert "Hello %recipient.name%!" in html
    assert {name for v in variables.values() for name in v} == {
        "name", "unsubscribe_url", "nl_rid"
    }


def test_one_value_to_escape_brings_the_escaped_field_back_for_the_batch(
    mailgun: MailgunProvider,
) -> None:
    batch = sample_batch(3, plain=True)
    odd = batch.recipients[1]
    quoted = odd._replace(values={**odd.values, "name": 'Grace "Amazing" Hopper'})
    batch = replace(batch, recipients=[batch.recipients[0], quoted, batch.recipients[2]])

    variables, html = variables_and_html(mailgun, batch)

    assert "Hello %recipient.h_name%!" in html
    assert '<a href="%recipient.unsubscribe_url%">' in html  # still needs no escaping
    assert variables["reader2@example.com"]["h_name"] == "Grace &quot;Amazing&quot; Hopper"
    assert variables["reader1@example.com"]["h_name"] == "Reader 1"
    assert all("h_unsubscribe_url" not in v for v in variables.values())


def test_unknown_batch_is_reconciled_from_accepted_events(
    server: FakeProviderServer, mailgun: MailgunProvider
) -> None:
    batch = sample_batch(4)
    server.faults.push("mailgun", Fault(FaultKind.RESET))
    with pytest.raises(UnknownOutcomeError):
        mailgun.send_batch(sample_issue(), batch)

    result = mailgun.reconcile(sample_issue(), batch)

    assert result is not None
    assert {r.email: r.status for r in result.results} == {
        r.email: DeliveryStatus.SENT for r in batch.recipients
    }
    assert len({r.message_id for r in result.results}) == 1


@pytest.mark.parametrize(("sent", "found"), [(-30.0, True), (3600.0, False)])
def test_reconcile_searches_the_log_from_when_the_batch_went_out(
    server: FakeProviderServer, mailgun: MailgunProvider, sent: float, found: bool
) -> None:
    batch = replace(sample_batch(3), sent_after=time.time() + sent)
    server.faults.push("mailgun", Fault(FaultKind.RESET))
    with pytest.raises(UnknownOutcomeError):
        mailgun.send_batch(sample_issue(), batch)
    # A batch sent "in an hour" has no events yet: proof that ``begin`` reaches the API.
    assert (mailgun.reconcile(sample_issue(), batch) is not None) is found


def test_reconcile_ignores_other_batches(
    server: FakeProviderServer, mailgun: MailgunProvider
) -> None:
    mailgun.send_batch(sample_issue(), sample_batch(2, key="another-batch"))
    assert mailgun.reconcile(sample_issue(), sample_batch(2)) is None


def test_wrong_domain_pauses_with_auth_error(
    server: FakeProviderServer, tmp_path: Path
) -> None:
    settings = provider_settings(server, tmp_path, "mailgun", mailgun_domain="typo.example.org")
    provider = MailgunProvider(settings)
    with pytest.raises(ProviderAuthError, match="Domain not found"):
        provider.send_batch(sample_issue(), sample_batch(1))
    provider.close()


def test_a_recipient_without_a_value_the_templates_use_is_named(mailgun: MailgunProvider) -> None:
    batch = sample_batch(3, plain=True)
    odd = batch.recipients[1]
    lacking = odd._replace(values={"name": odd.name})
    batch = replace(batch, recipients=[batch.recipients[0], lacking, batch.recipients[2]])
    with pytest.raises(RenderError, match="recipient 2: no value for 'unsubscribe_url'"):
        mailgun.build_request(sample_issue(), batch)
