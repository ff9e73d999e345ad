"""The fake provider server itself: its control endpoints, fault targeting, CLI, modes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.devtools.fakeprovider import FakeProviderServer, Fault, FaultKind
from newsletter.errors import TransientProviderError
from tests.servers.fake_provider import (
    fake_provider_server,
    provider_settings,
    sample_batch,
    sample_issue,
)


@pytest.fixture
def mailgun(server: FakeProviderServer, tmp_path: Path) -> Iterator[MailgunProvider]:
    provider = MailgunProvider(provider_settings(server, tmp_path, "mailgun"))
    yield provider
    provider.close()


def test_faults_record_and_reset_over_http(
    server: FakeProviderServer, mailgun: MailgunProvider
) -> None:
    with requests.Session() as http:
        pushed = http.post(f"{server.url}/_fake/faults", json={
            "provider": "mailgun", "kind": "rate-limit", "nth": 2, "retry_after": 3})
        assert pushed.status_code == 201
        mailgun.send_batch(sample_issue(), sample_batch(2))
        with pytest.raises(TransientProviderError):
            mailgun.send_batch(sample_issue(), sample_batch(2, first_id=5))

        record = http.get(f"{server.url}/_fake/record", params={"provider": "mailgun"}).json()
        assert record["requests"] == {"mailgun": 2}
        assert record["accepted"] == {"mailgun": 2}
        assert {c["recipient"] for c in record["copies"]} == {
            "reader1@example.com", "reader2@example.com"}
        assert record["copies"][0]["subject"].startswith("Workers\u2013Internationalist")

        assert http.post(f"{server.url}/_fake/reset").status_code == 200
        assert http.get(f"{server.url}/_fake/record?summary=1").json()["accepted"] == {}
        bad = http.post(f"{server.url}/_fake/faults", json={"provider": "nope", "kind": "slow"})
        assert bad.status_code == 400


def test_fault_matching_a_recipient_waits_for_that_recipient(
    server: FakeProviderServer, mailgun: MailgunProvider
) -> None:
    server.faults.push("mailgun", Fault(FaultKind.SERVER_ERROR, recipient="reader9@example.com"))
    mailgun.send_batch(sample_issue(), sample_batch(3))
    with pytest.raises(TransientProviderError):
        mailgun.send_batch(sample_issue(), sample_batch(3, first_id=8))
    mailgun.send_batch(sample_issue(), sample_batch(3, first_id=8))
    assert server.recorder.count("mailgun", "reader9@example.com") == 1


def test_counts_only_mode_keeps_no_copies(tmp_path: Path) -> None:
    with fake_provider_server(details=False) as server:
        provider = MailgunProvider(provider_settings(server, tmp_path, "mailgun"))
        provider.send_batch(sample_issue(), sample_batch(1000))
        provider.close()
        assert server.recorder.summary()["accepted"] == {"mailgun": 1000}
        assert server.recorder.copies() == []
        assert server.recorder.count("mailgun", "reader1000@example.com") == 1


@pytest.mark.parametrize(
    "field",
    [
        "a@x.org",
        "Bob <b@y.org>, c@z.org",
        "  Bob Smith <b@y.org> ,c@z.org ",
        '"Smith, Bob" <b@y.org>, c@z.org',  # a quoted comma: the general parser
        '"Ann \\"A\\"" <a@x.org>, Jo (home) <j@x.org>',
        "a@b.org,,c@d.org",
        "not-an-address, c@d.org",  # a part that does not match: the general parser
        "",
    ],
)
def test_address_lists_read_like_the_email_package(field: str) -> None:
    from email.utils import getaddresses

    from newsletter.devtools.fakeprovider.common import addresses

    assert addresses(field) == [a for _, a in getaddresses([field]) if a]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_module_runs_as_a_process_until_interrupted(stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.devtools.fakeprovider", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        with requests.Session() as http:
            assert http.get(f"{url}/_fake/record?summary=1").json()["requests"] == {}
    finally:
        process.send_signal(stop)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in out


def test_cli_command_is_registered(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "dev", "fake-provider", "--help"])
    assert result.exit_code == 0
    assert "--counts-only" in result.output


def test_latency_holds_each_send_until_its_time_but_not_the_control_endpoints(
    tmp_path: Path,
) -> None:
    # An hour: the send is certainly still held when the record already counts it.
    with FakeProviderServer(latency=(3600.0, 3600.0)) as slow, ThreadPoolExecutor(1) as pool:
        provider = MailgunProvider(provider_settings(slow, tmp_path, "mailgun"))
        try:
            sending = pool.submit(provider.send_batch, sample_issue(), sample_batch(2))
            with requests.Session() as http:
                while not http.get(f"{slow.url}/_fake/record?summary=1").json()["requests"]:
                    threading.Event().wait(0.01)  # the control endpoint answers at once
            assert not sending.done()
            slow.stop()  # releases the held answer
            sending.exception(timeout=30)
        finally:
            provider.close()


@pytest.mark.parametrize(
    ("given", "problem"),
    [("fast", "is not LOW-HIGH in milliseconds"), ("400-150", "need 0 <= LOW <= HIGH")],
)
def test_a_wrong_latency_range_is_refused(tmp_path: Path, given: str, problem: str) -> None:
    args = ["--home", str(tmp_path), "dev", "fake-provider", "--latency-ms", given]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert problem in result.output
