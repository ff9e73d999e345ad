"""Every HTTP provider against the fake provider server: the same contract, six APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from newsletter import config
from newsletter.config import Secret, Settings
from newsletter.delivery.base import LONGEST_RETRY_AFTER, HttpProvider, HttpRequest
from newsletter.delivery.providers.registry import PROVIDERS, make_provider, provider_class
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import (
    ConfigError,
    PermanentProviderError,
    ProviderAuthError,
    TransientProviderError,
    UnknownOutcomeError,
)
from newsletter.models import DeliveryStatus
from tests.servers.fake_provider import (
    expected_copy,
    provider_settings,
    sample_batch,
    sample_issue,
)

NAMES = sorted(n for n in PROVIDERS if issubclass(provider_class(n), HttpProvider))
WRONG_KEYS = {
    "mailgun": {"mailgun_api_key": Secret("wrong")},
    "postmark": {"postmark_server_token": Secret("wrong")},
    "sendgrid": {"sendgrid_api_key": Secret("wrong")},
    "resend": {"resend_api_key": Secret("wrong")},
    "ses": {"ses_secret_access_key": Secret("wrong")},
    "brevo": {"brevo_api_key": Secret("wrong")},
}



@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def provider(server: FakeProviderServer, tmp_path: Path, name: str) -> Iterator[HttpProvider]:
    made = make_provider(provider_settings(server, tmp_path, name))
    assert isinstance(made, HttpProvider)
    yield made
    made.close()


def test_every_recipient_gets_exactly_one_merged_copy(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    batch = sample_batch(min(provider.max_batch, 12))

    result = provider.send_batch(sample_issue(), batch)

    assert [r.status for r in result.results] == [DeliveryStatus.SENT] * len(batch.recipients)
    assert all(r.message_id for r in result.results)
    copies = {c.recipient: c for c in server.recorder.copies(name)}
    assert sorted(copies) == sorted(r.email for r in batch.recipients)
    for recipient in batch.recipients:
        copy = copies[recipient.email]
        assert server.recorder.count(name, recipient.email) == 1
        content = copy.content
        got = {"subject": content.subject, "html": content.html, "text": content.text,
               "list_unsubscribe": content.list_unsubscribe}
        assert got == expected_copy(recipient)
        assert copy.metadata["nl_rid"] == str(recipient.recipient_id)
        assert content.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_batch_with_nothing_to_escape_merges_the_same(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    """Merging providers then get each value once, plain, and HTML that refers to it."""
    batch = sample_batch(min(provider.max_batch, 5), plain=True)

    provider.send_batch(sample_issue(), batch)

    copies = {c.recipient: c.content for c in server.recorder.copies(name)}
    for recipient in batch.recipients:
        content = copies[recipient.email]
        got = {"subject": content.subject, "html": content.html, "text": content.text,
               "list_unsubscribe": content.list_unsubscribe}
        assert got == expected_copy(recipient)


def test_wrong_credentials_raise_auth_error(
    server: FakeProviderServer, tmp_path: Path, name: str
) -> None:
    settings = provider_settings(server, tmp_path, name, **WRONG_KEYS[name])
    provider = make_provider(settings)
    assert isinstance(provider, HttpProvider)
    with pytest.raises(ProviderAuthError):
        provider.send_batch(sample_issue(), sample_batch(2))
    provider.close()
    assert server.recorder.copies() == []


@pytest.mark.parametrize(("announced", "honoured"), [(7, 7), (1e12, LONGEST_RETRY_AFTER)])
def test_rate_limit_is_transient(
    server: FakeProviderServer,
    provider: HttpProvider,
    name: str,
    announced: float,
    honoured: float,
) -> None:
    server.faults.push(name, Fault(FaultKind.RATE_LIMIT, retry_after=announced))

    with pytest.raises(TransientProviderError) as raised:
        provider.send_batch(sample_issue(), sample_batch(2))

    assert raised.value.status == 429
    if name not in ("ses", "postmark"):  # neither announces when to come back
        assert raised.value.retry_after == pytest.approx(honoured, abs=1.5)
    assert server.recorder.copies() == []


def test_server_error_is_transient(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    server.faults.push(name, Fault(FaultKind.SERVER_ERROR))
    with pytest.raises(TransientProviderError) as raised:
        provider.send_batch(sample_issue(), sample_batch(2))
    assert raised.value.status == 500
    assert provider.send_batch(sample_issue(), sample_batch(2)).results[0].status == "sent"


def test_unauthorized_fault_raises_auth_error(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    server.faults.push(name, Fault(FaultKind.UNAUTHORIZED, nth=2))
    provider.send_batch(sample_issue(), sample_batch(1))
    with pytest.raises(ProviderAuthError):
        provider.send_batch(sample_issue(), sample_batch(1, first_id=50))


@pytest.mark.parametrize("kind", [FaultKind.RESET, FaultKind.CLOSE])
def test_lost_answer_is_unknown_outcome_but_was_delivered(
    server: FakeProviderServer, provider: HttpProvider, name: str, kind: FaultKind
) -> None:
    batch = sample_batch(3)
    server.faults.push(name, Fault(kind, recipient=batch.recipients[1].email))

    with pytest.raises(UnknownOutcomeError):
        provider.send_batch(sample_issue(), batch)

    assert [server.recorder.count(name, r.email) for r in batch.recipients] == [1, 1, 1]


def test_answer_slower_than_timeout_is_unknown_outcome(
    server: FakeProviderServer, tmp_path: Path, name: str
) -> None:
    provider = make_provider(provider_settings(server, tmp_path, name, http_timeout=0.3))
    assert isinstance(provider, HttpProvider)
    server.faults.push(name, Fault(FaultKind.SLOW, delay=5))
    with pytest.raises(UnknownOutcomeError):
        provider.send_batch(sample_issue(), sample_batch(1))
    provider.close()
    assert server.recorder.count(name, "reader1@example.com") == 1


def test_batch_over_the_native_limit_is_refused_by_the_server(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        provider.send_batch(sample_issue(), sample_batch(provider.max_batch + 1))
    assert raised.value.status in (400, 422)
    assert server.recorder.copies() == []


def test_missing_credentials_fail_before_any_request(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_provider(Settings(home=tmp_path, provider=name))


def test_every_provider_name_loads_its_own_class() -> None:
    assert tuple(PROVIDERS) == config.PROVIDERS
    assert [provider_class(name).name for name in PROVIDERS] == list(PROVIDERS)
    with pytest.raises(ConfigError, match="'carrier-pigeon' has no delivery class"):
        provider_class("carrier-pigeon")


@pytest.mark.parametrize("name", ["brevo", "postmark", "resend", "sendgrid"])
def test_json_apis_refuse_a_body_not_labelled_as_json(
    server: FakeProviderServer, provider: HttpProvider, name: str
) -> None:
    request = provider.build_request(sample_issue(), sample_batch(2))
    headers, body = request.body()
    assert headers["Content-Type"] == "application/json"

    headers["Content-Type"] = "text/plain"
    answer = requests.post(request.url, headers=headers, data=body, timeout=10)

    assert answer.status_code in (400, 422), answer.text  # a bad request, not refused auth
    assert server.recorder.copies(name) == []


def test_a_json_body_keeps_a_content_type_given_and_data_passes_as_it_is() -> None:
    labelled = {"content-type": "application/x+json"}
    given = HttpRequest("POST", "http://x.test/", headers=labelled, json={"subject": "Caf\u00e9"})
    headers, body = given.body()
    assert headers == {"content-type": "application/x+json"}
    assert json.loads(body) == {"subject": "Caf\u00e9"}
    assert HttpRequest("POST", "http://127.0.0.1/x", data=b"raw").body() == ({}, b"raw")
