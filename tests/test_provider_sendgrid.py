"""SendGrid: one personalization per recipient with its own substitutions and header."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Secret, Settings
from newsletter.delivery.providers.sendgrid import SendGridProvider
from tests.servers.fake_provider import sample_batch, sample_issue


def test_request_personalizes_each_recipient(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, provider="sendgrid", sendgrid_api_key=Secret("SG.k"))
    batch = sample_batch(2)

    request = SendGridProvider(settings).build_request(sample_issue(), batch)

    body = request.json
    assert request.url == "https://api.sendgrid.com/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.k"
    assert body["subject"] == "Workers\u2013Internationalist weekly, for %nl.name%"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "%nl.h_name%" in body["content"][1]["value"]
    assert body["custom_args"] == {"nl_batch": "batch-7-1", "nl_issue": "7"}
    first, second = body["personalizations"]
    assert first["to"] == [{"email": "reader1@example.com", "name": batch.recipients[0].name}]
    assert first["custom_args"] == {"nl_rid": "1"}
    assert first["substitutions"]["%nl.h_name%"] == "Zoë Ångström 1"
    assert second["substitutions"]["%nl.h_name%"] == 'Grace &quot;Amazing&quot; Hopper 2'
    assert second["substitutions"]["%nl.name%"] == 'Grace "Amazing" Hopper 2'
    assert second["headers"]["List-Unsubscribe"] == (
        "<https://news.example.org/u/tok2?list=weekly&src=email>"
    )
    assert "List-Unsubscribe" not in body["headers"]
